package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// A file already downloaded, still there and unchanged, is the answer to
// a Get of its CID (nothing fetched, no "x (1).bin"); one changed since,
// even keeping its size and modification time, is not; Again makes
// another copy; -o is always a new copy.
func TestGetAlreadyDownloaded(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(3*testChunk+5, 21)
	c := srv.publish(t, "x.bin", data, testChunk)
	var served atomic.Int64
	srv.svc.tapCID = func(cid.Cid) { served.Add(1) }
	dl := cli.svc.cfg.DownloadDir

	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "x.bin"})
	if err != nil || res.Already {
		t.Fatalf("first get: %+v, %v", res, err)
	}
	first := res.Path
	n := served.Load()
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "x.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Already || res.Path != first || res.Verified != VerifiedHash || res.Size != int64(len(data)) || res.SHA256 != sha256.Sum256(data) {
		t.Fatalf("second get: %+v, want the first download, hashed again", res)
	}
	if served.Load() != n {
		t.Fatal("the second get asked the provider")
	}
	if _, err := os.Stat(filepath.Join(dl, "x (1).bin")); err == nil {
		t.Fatal("the second get made a copy")
	}

	// Again: another copy.
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "x.bin", Again: true})
	if err != nil || res.Already || res.Path != filepath.Join(dl, "x (1).bin") {
		t.Fatalf("get again: %+v, %v", res, err)
	}
	checkFile(t, res.Path, data)
	// The newest copy answers now.
	if res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{}); err != nil || !res.Already || res.Path != filepath.Join(dl, "x (1).bin") {
		t.Fatalf("get after again: %+v, %v", res, err)
	}

	// Both copies changed, one byte, size and modification time kept:
	// the hash says so, and the get fetches a new copy.
	for _, p := range []string{first, filepath.Join(dl, "x (1).bin")} {
		fi, _ := os.Stat(p)
		b := bytes.Clone(data)
		b[100] ^= 1
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "x.bin"})
	if err != nil || res.Already || res.Path != filepath.Join(dl, "x (2).bin") {
		t.Fatalf("get after the copies changed: %+v, %v", res, err)
	}
	checkFile(t, res.Path, data)

	// Moved away: not there, so fetched again.
	os.Rename(filepath.Join(dl, "x (2).bin"), filepath.Join(dl, "moved.bin"))
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "x.bin"})
	if err != nil || res.Already {
		t.Fatalf("get after the copy moved: %+v, %v", res, err)
	}

	// An explicit output is a new copy.
	out := filepath.Join(t.TempDir(), "o.bin")
	if res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: out}); err != nil || res.Already || res.Path != out {
		t.Fatalf("get -o: %+v, %v", res, err)
	}
	checkFile(t, out, data)
}

// A folder already downloaded, unchanged, is the answer to a Get of its
// collection with the same selection; a file of it written since makes
// the next Get a new copy, as does another selection.
func TestGetFolderAlreadyDownloaded(t *testing.T) {
	srv, cli := pair(t)
	tr := sampleTree()
	c := srv.publishTree(t, tr, 4096)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil || res.Already {
		t.Fatalf("first get: %+v, %v", res, err)
	}
	first := res.Path
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Already || !res.Collection || res.Path != first || res.Files != len(tr.files) || res.Verified != VerifiedMtime {
		t.Fatalf("second get: %+v, want the first download", res)
	}
	// Another selection is another download.
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Only: []string{"sub/"}})
	if err != nil || res.Already || res.Path != first+" (1)" {
		t.Fatalf("get --only: %+v, %v", res, err)
	}
	// ... and is found again itself.
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Only: []string{"sub/"}})
	if err != nil || !res.Already || res.Path != first+" (1)" {
		t.Fatalf("get --only again: %+v, %v", res, err)
	}
	// A file written after the download: a new copy.
	p := filepath.Join(first, "a.txt")
	later := time.Now().Add(2 * time.Second)
	os.WriteFile(p, []byte("HELLO"), 0o644)
	os.Chtimes(p, later, later)
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil || res.Already || res.Path != first+" (2)" {
		t.Fatalf("get after a file changed: %+v, %v", res, err)
	}
	checkTree(t, res.Path, tr, nil)
	// An empty folder removed: a new copy too.
	os.Remove(filepath.Join(res.Path, "nothing"))
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil || res.Already || res.Path != first+" (3)" {
		t.Fatalf("get after an empty folder was removed: %+v, %v", res, err)
	}
}

// The completed log stays bounded: past completedMax it is rewritten
// with the records whose files exist, newest first, and the newest
// record still answers.
func TestCompletedLogBounded(t *testing.T) {
	cli := newNode(t)
	s := cli.svc
	dir := t.TempDir()
	keep := filepath.Join(dir, "kept")
	os.WriteFile(keep, []byte("x"), 0o644)
	rec := func(p string, i int) []byte {
		b, _ := json.Marshal(completedRec{CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Size: int64(i), Path: p, ChunkSize: 4096})
		return append(b, '\n')
	}
	var batch []byte
	for i := 0; len(batch) < 1<<20; i++ {
		batch = append(batch, rec(filepath.Join(dir, fmt.Sprintf("gone-%d", i)), i)...)
	}
	for range completedMax/(1<<20) + 2 {
		if err := s.appendCompleted(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.appendCompleted(rec(keep, 1)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.completedPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > completedMax {
		t.Fatalf("completed log is %d bytes, bound %d", fi.Size(), completedMax)
	}
	var found bool
	for _, rs := range s.readCompleted() {
		for _, r := range rs {
			found = found || r.Path == keep
		}
	}
	if !found {
		t.Fatal("the newest record was lost")
	}
}
