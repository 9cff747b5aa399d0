package share

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	leveldb "github.com/ipfs/go-ds-leveldb"
)

// BenchmarkPublishFolder publishes a folder of 10,000 files of 4 KiB in
// 100 subfolders (issue 10's small-file workload) into a fresh index on
// leveldb, as the node keeps it, so every file is hashed and recorded.
// It reports files/s and, when tar and sha256sum are on PATH, the rate of
// `tar c DIR | sha256sum` over the same tree in the same run and the
// ratio (the target: pct_of_tar >= 50).
func BenchmarkPublishFolder(b *testing.B) {
	const dirs, perDir, size = 100, 100, 4 << 10
	dir := b.TempDir()
	data := make([]byte, size)
	for d := range dirs {
		sub := filepath.Join(dir, "tree", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range perDir {
			// Distinct contents: no deduplication helps.
			copy(data, fmt.Sprintf("file %d/%d\n", d, i))
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	const files = dirs * perDir

	var tarRate float64
	if _, err := exec.LookPath("tar"); err == nil {
		if _, err := exec.LookPath("sha256sum"); err == nil {
			start := time.Now()
			cmd := exec.Command("sh", "-c", "tar c -C \"$1\" tree | sha256sum >/dev/null", "sh", dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("tar | sha256sum: %v: %s", err, out)
			}
			tarRate = files / time.Since(start).Seconds()
		}
	}

	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		ds, err := leveldb.NewDatastore(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		f := newFakeNet(b)
		s, err := New(context.Background(), Config{
			Network: f, Datastore: ds, ShareDir: dir, OnChange: OnChangeIgnore,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := s.Publish(context.Background(), "tree")
		elapsed += time.Since(start)
		b.StopTimer()
		if err != nil || len(res) != 1 || res[0].Folder.Files != files || res[0].Folder.Hashed != files {
			b.Fatalf("publish: %+v, %v", res, err)
		}
		s.Close()
		ds.Close()
		b.StartTimer()
	}
	rate := float64(b.N*files) / elapsed.Seconds()
	b.ReportMetric(rate, "files/s")
	if tarRate > 0 {
		b.ReportMetric(tarRate, "tar_files/s")
		b.ReportMetric(100*rate/tarRate, "pct_of_tar")
	}
}
