package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"
)

// BenchmarkBuild hashes 64 MiB into a manifest (chunk hashes + whole-file
// hash). Compare with BenchmarkSHA256Baseline, one plain SHA-256 pass over
// the same bytes in the same run: the ratio is what publishing costs over
// the cheapest possible check of the file.
func BenchmarkBuild(b *testing.B) {
	data := randomBytes(64<<20, 9)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := Build(context.Background(), bytes.NewReader(data), int64(len(data)), DefaultChunkSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSHA256Baseline(b *testing.B) {
	data := randomBytes(64<<20, 9)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		h := sha256.New()
		if _, err := io.Copy(h, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
	}
}
