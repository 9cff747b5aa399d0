package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// pausedDownload starts a 32-chunk download and pauses it after at least 8
// chunks are verified on disk; it returns the client, the CID, the data,
// the partial directory, the chunks marked in its state and the server's
// log of what it served (reset).
func pausedDownload(t *testing.T, seed uint64) (*node, cid.Cid, []byte, string, []int, *servedLog) {
	t.Helper()
	const total = 32
	data := pattern(total*testChunk, seed)
	srv := newNode(t)
	c := srv.publish(t, "d.bin", data, testChunk)
	served := &servedLog{}
	release := gated(t, srv, served, 8)
	cli := newNode(t, smallRequests)
	cli.fnd.set(addrInfo(srv.h))
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	_, err := cli.svc.Get(ctx, c, GetOptions{Name: "d.bin", Progress: func(p Progress) {
		if p.Done >= 8*testChunk {
			cancel()
		}
	}})
	if !errors.Is(err, ErrPaused) {
		t.Fatalf("first Get: %v, want ErrPaused", err)
	}
	release()
	dir := partialDir(cli.svc.cfg.DownloadDir, c)
	st, _, err := readState(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	var marked []int
	for i, d := range st.done {
		if d {
			marked = append(marked, i)
		}
	}
	if len(marked) < 8 || len(marked) == total {
		t.Fatalf("%d chunks marked after the pause", len(marked))
	}
	served.mu.Lock()
	served.chunks, served.total = nil, 0
	served.mu.Unlock()
	return cli, c, data, dir, marked, served
}

// A partial whose data file vanished (state still marking chunks) is
// started over, not trusted and then blamed on the provider.
func TestResumeDataFileDeleted(t *testing.T) {
	cli, c, data, dir, _, _ := pausedDownload(t, 42)
	if err := os.Remove(filepath.Join(dir, dataName)); err != nil {
		t.Fatal(err)
	}
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatalf("Get after the data file was deleted: %v", err)
	}
	checkFile(t, res.Path, data)
	if res.Resumed != 0 {
		t.Errorf("resumed %d chunks from a deleted data file", res.Resumed)
	}
}

// A partial whose data file has the wrong size is started over.
func TestResumeDataFileTruncated(t *testing.T) {
	cli, c, data, dir, _, _ := pausedDownload(t, 43)
	if err := os.Truncate(filepath.Join(dir, dataName), 3*testChunk); err != nil {
		t.Fatal(err)
	}
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatalf("Get after the data file was truncated: %v", err)
	}
	checkFile(t, res.Path, data)
	if res.Resumed != 0 {
		t.Errorf("resumed %d chunks from a truncated data file", res.Resumed)
	}
}

// A marked chunk damaged on disk is found when the download finishes (the
// chunks the bitmap vouched for are verified again), unmarked and fetched
// again; the download completes.
func TestResumeMarkedChunkCorrupted(t *testing.T) {
	cli, c, data, dir, marked, served := pausedDownload(t, 44)
	bad := marked[len(marked)/2]
	f, err := os.OpenFile(filepath.Join(dir, dataName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("damaged on disk"), int64(bad)*testChunk+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatalf("Get after a marked chunk was damaged: %v", err)
	}
	checkFile(t, res.Path, data)
	served.mu.Lock()
	defer served.mu.Unlock()
	if served.chunks[bad] != 1 {
		t.Errorf("damaged chunk %d served %d times after the resume, want 1", bad, served.chunks[bad])
	}
	for _, i := range marked {
		if i != bad && served.chunks[i] != 0 {
			t.Errorf("intact chunk %d served %d times after the resume, want 0", i, served.chunks[i])
		}
	}
	if res.Resumed != len(marked)-1 {
		t.Errorf("resumed %d, want %d (the damaged chunk is not counted)", res.Resumed, len(marked)-1)
	}
}
