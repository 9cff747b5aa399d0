package transfer

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// rewrite flips one byte of the file at off, keeping its size, and moves
// its mtime a second on: the change the server detects without hashing.
// (The explicit mtime keeps the test independent of the file system's
// timestamp granularity.)
func rewrite(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Time{}, fi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
}

// A file that changes on disk between two requests on one fetch stream is
// answered CHANGED on the second request: nothing of the new content is
// sent under the old CID.
func TestChangedBetweenRequestsOnOneStream(t *testing.T) {
	data := pattern(8*testChunk, 30)
	srv := newNode(t)
	c := srv.publish(t, "b.bin", data, testChunk)
	var served servedLog
	srv.svc.onServe = served.hook(nil)
	cli := newNode(t)
	cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()

	if err := cn.requestChunks(0, 2); err != nil {
		t.Fatal(err)
	}
	sr, err := cn.response(0, 2*testChunk)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*testChunk)
	if err := cn.readFull(sr, got); err != nil {
		t.Fatal(err)
	}
	if err := cn.finish(sr); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data[:2*testChunk]) {
		t.Fatal("first request: wrong data")
	}

	rewrite(t, srv.src.files[c].path, 3*testChunk)
	if err := cn.requestChunks(2, 2); err != nil {
		t.Fatal(err)
	}
	_, err = cn.response(2, 2*testChunk)
	var re *refusedError
	if !errors.As(err, &re) || re.status != proto.FetchResponse_CHANGED {
		t.Fatalf("second request after the file changed: %v, want a CHANGED answer", err)
	}
	if n := served.count(); n != 2 {
		t.Fatalf("served %d chunks, want the 2 of the first request", n)
	}
}

// A file that changes on disk while a request is being served: the server
// stops at the next chunk and resets the stream; the fetcher sees a lost
// stream, not bad data, and gets no chunk read after the change.
func TestChangedDuringRequest(t *testing.T) {
	data := pattern(8*testChunk, 31)
	srv := newNode(t)
	c := srv.publish(t, "d.bin", data, testChunk)
	path := srv.src.files[c].path
	srv.svc.corrupt = func(i int, _ []byte) {
		if i == 1 { // chunk 1 was read before the change: it is still sent
			rewrite(t, path, 6*testChunk)
		}
	}
	var served servedLog
	srv.svc.onServe = served.hook(nil)
	cli := newNode(t)
	cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	if err := cn.requestChunks(0, 8); err != nil {
		t.Fatal(err)
	}
	// The reset may overtake the answer and chunks 0 and 1 (read before
	// the change, so sent), but chunk 2 and later are never delivered.
	sr, err := cn.response(0, 8*testChunk)
	got := make([]byte, testChunk)
	n := 0
	for ; err == nil && n < 8; n++ {
		if err = cn.readFull(sr, got); err != nil {
			break
		}
		if string(got) != string(data[n*testChunk:(n+1)*testChunk]) {
			t.Fatalf("chunk %d: wrong data", n)
		}
	}
	if n > 2 {
		t.Fatalf("%d chunks received; chunk 2 on, read after the file changed, must not be sent", n)
	}
	if err == nil || errors.Is(err, errBadData) {
		t.Fatalf("chunk %d: %v; want a reset stream, not bad data", n, err)
	}
	if n := served.count(); n != 0 {
		t.Fatalf("the request was reported served (%d chunks)", n)
	}
}
