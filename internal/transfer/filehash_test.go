package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// hasherFixture is a file of n chunks (the last one short), its manifest
// and a data file the chunks are "stored" into before they are added.
type hasherFixture struct {
	data []byte
	m    *manifest.Manifest
	f    *os.File
	svc  *Service
}

func newHasherFixture(t *testing.T, n int) *hasherFixture {
	t.Helper()
	data := pattern(int64(n*testChunk-testChunk/3), uint64(n))
	m, err := manifest.Build(context.Background(), bytes.NewReader(data), int64(len(data)), testChunk)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(m.Size); err != nil {
		t.Fatal(err)
	}
	return &hasherFixture{data: data, m: m, f: f, svc: &Service{}}
}

func (x *hasherFixture) chunk(i int) []byte {
	off := x.m.ChunkOffset(i)
	return x.data[off : off+int64(x.m.ChunkLen(i))]
}

// store writes chunk i to the data file and adds a scratch copy of it to
// fh, scribbled over afterwards (add must not keep the caller's buffer).
func (x *hasherFixture) store(t *testing.T, fh *fileHasher, i int) {
	if _, err := x.f.WriteAt(x.chunk(i), x.m.ChunkOffset(i)); err != nil {
		t.Error(err)
		return
	}
	b := append([]byte(nil), x.chunk(i)...)
	fh.add(i, b)
	for j := range b {
		b[j] = 0xAA
	}
}

func (x *hasherFixture) check(t *testing.T, fh *fileHasher) {
	t.Helper()
	sum, err := fh.sum()
	if err != nil {
		t.Fatal(err)
	}
	if sum != sha256.Sum256(x.data) || sum != x.m.FileHash {
		t.Fatal("whole-file hash differs from the file's SHA-256")
	}
}

// Chunks arrive out of order: some within the reorder window (kept in
// memory), some beyond it (hashed from the data file when their turn
// comes). The hash is the file's whatever the order.
func TestFileHasherOutOfOrder(t *testing.T) {
	const n = 40
	for _, tc := range []struct {
		name  string
		order func(r *rand.Rand) []int
	}{
		{"in order", func(*rand.Rand) []int {
			o := make([]int, n)
			for i := range o {
				o[i] = i
			}
			return o
		}},
		{"reversed", func(*rand.Rand) []int {
			o := make([]int, n)
			for i := range o {
				o[i] = n - 1 - i
			}
			return o
		}},
		{"shuffled", func(r *rand.Rand) []int { return r.Perm(n) }},
		{"interleaved ranges", func(*rand.Rand) []int {
			// three providers with requests of 4 chunks, in lock step
			var o []int
			for base := 0; base < n; base += 12 {
				for k := range 4 {
					for p := range 3 {
						if i := base + 4*p + k; i < n {
							o = append(o, i)
						}
					}
				}
			}
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(5) {
				x := newHasherFixture(t, n)
				fh := newFileHasher(x.svc, x.m, x.f, nil, 3)
				for _, i := range tc.order(rand.New(rand.NewPCG(seed, 1))) {
					x.store(t, fh, i)
				}
				fh.stop()
				if tc.name == "in order" && fh.next != n {
					t.Fatalf("in order: %d of %d chunks hashed before sum, want all (no read back)", fh.next, n)
				}
				if len(fh.slots) > 3 {
					t.Fatalf("window holds %d chunks, more than its 3", len(fh.slots))
				}
				x.check(t, fh)
			}
		})
	}
}

// Several sinks add concurrently (run with -race); a resumed prefix is on
// disk before the start and hashed by kick.
func TestFileHasherConcurrentAndResumed(t *testing.T) {
	const n, resumed = 64, 10
	x := newHasherFixture(t, n)
	onDisk := make([]bool, n)
	for i := range resumed {
		x.f.WriteAt(x.chunk(i), x.m.ChunkOffset(i))
		onDisk[i] = true
	}
	fh := newFileHasher(x.svc, x.m, x.f, onDisk, 4)
	var wg sync.WaitGroup
	wg.Go(fh.kick)
	next := make(chan int)
	for range 3 {
		wg.Go(func() {
			for i := range next {
				x.store(t, fh, i)
			}
		})
	}
	for i := resumed; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	x.check(t, fh)
}

// A download that stops unfinished gives the window's buffers back.
func TestFileHasherRelease(t *testing.T) {
	x := newHasherFixture(t, 8)
	fh := newFileHasher(x.svc, x.m, x.f, nil, 4)
	x.store(t, fh, 2)
	x.store(t, fh, 3)
	if len(fh.slots) != 2 {
		t.Fatalf("window holds %d chunks, want 2", len(fh.slots))
	}
	fh.release()
	if len(fh.slots) != 0 {
		t.Fatalf("window holds %d chunks after release", len(fh.slots))
	}
}
