package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// askRaw sends one request for c on cn and returns the refusal, failing
// the test if the server answered OK (it would then send file bytes).
func askRaw(t *testing.T, cn *conn, kind proto.FetchRequest_Kind, c cid.Cid) *refusedError {
	t.Helper()
	req := &proto.FetchRequest{Kind: kind, Cid: c.Bytes()}
	if kind == proto.FetchRequest_CHUNKS {
		req.FirstChunk, req.Count = 0, 2
	}
	if err := cn.send(req); err != nil {
		t.Fatal(err)
	}
	cn.st.SetReadDeadline(time.Now().Add(ioTimeout))
	var resp proto.FetchResponse
	if err := cn.r.ReadMsg(&resp); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	if resp.GetStatus() == proto.FetchResponse_OK || resp.GetLength() != 0 {
		t.Fatalf("%s of a file kept from this peer answered %v, length %d", kind, resp.GetStatus(), resp.GetLength())
	}
	return &refusedError{resp.GetStatus(), resp.GetMessage()}
}

// A peer outside a file's audience gets, for its manifest and its chunks,
// exactly the answer given for a CID nobody publishes, and no byte; a
// peer inside it is served on the same server.
func TestServerRefusesOutsidePeer(t *testing.T) {
	data := pattern(4*testChunk, 40)
	srv := newNode(t)
	c := srv.publish(t, "secret.bin", data, testChunk)
	insider, outsider := newNode(t), newNode(t)
	srv.src.restrict(c, insider.h.ID())
	unknown := manifest.CIDOf([]byte("published by nobody"))

	cn, err := outsider.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	for _, kind := range []proto.FetchRequest_Kind{proto.FetchRequest_MANIFEST, proto.FetchRequest_CHUNKS} {
		got := askRaw(t, cn, kind, c)
		want := askRaw(t, cn, kind, unknown)
		if *got != *want || got.status != proto.FetchResponse_NOT_SERVED {
			t.Fatalf("%s: refusal %v, for an unknown CID %v", kind, got, want)
		}
	}
	// A refusal does not reveal a change on disk either (CHANGED would).
	rewrite(t, srv.src.files[c].path, 0)
	if got := askRaw(t, cn, proto.FetchRequest_MANIFEST, c); got.status != proto.FetchResponse_NOT_SERVED {
		t.Fatalf("changed file kept from this peer answered %v", got)
	}

	c2 := srv.publish(t, "secret2.bin", data[:3*testChunk], testChunk)
	srv.src.restrict(c2, insider.h.ID())
	insider.fnd.set(addrInfo(srv.h))
	res, err := insider.svc.Get(ctxT(t, time.Minute), c2, GetOptions{Name: "s.bin"})
	if err != nil {
		t.Fatalf("insider: %v", err)
	}
	checkFile(t, res.Path, data[:3*testChunk])

	outsider.fnd.set(addrInfo(srv.h))
	if _, err := outsider.svc.Get(ctxT(t, time.Minute), c2, GetOptions{Name: "s.bin"}); err == nil {
		t.Fatal("outsider's Get succeeded")
	}
	if _, err := os.Stat(filepath.Join(outsider.dir, "downloads", "s.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("outsider has a file: %v", err)
	}
}

// A peer revoked while it downloads stops receiving at once: Recheck
// resets its session in the middle of a request, the fetcher asks the
// provider (still connected) again and is refused, so the download ends
// with the refusal and without the file. This holds whether or not the
// Finder still finds the provider: a node's Finder forgets it as soon as
// the directed withdrawal arrives, and no search brings it back.
func TestRevokedDownloadStops(t *testing.T) {
	t.Run("finder still finds it", func(t *testing.T) { testRevokedDownloadStops(t, false) })
	t.Run("finder forgets it", func(t *testing.T) { testRevokedDownloadStops(t, true) })
}

func testRevokedDownloadStops(t *testing.T, forget bool) {
	const chunks = 64
	data := pattern(chunks*testChunk, 41)
	srv := newNode(t)
	c := srv.publish(t, "big.bin", data, testChunk)
	cli := newNode(t, func(cfg *Config) { cfg.ChunksPerRequest = chunks; cfg.Window = 1 })
	srv.src.restrict(c, cli.h.ID())
	cli.fnd.set(addrInfo(srv.h))

	reached, proceed := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	revoked := false
	readAfter := 0 // chunks the server read after the revocation
	srv.svc.corrupt = func(i int, _ []byte) {
		mu.Lock()
		if revoked {
			readAfter++
		}
		mu.Unlock()
		if i == 2 {
			close(reached)
			<-proceed
		}
	}
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "big.bin"})
		done <- result{res, err}
	}()
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("the download never reached chunk 2")
	}
	mu.Lock()
	revoked = true
	mu.Unlock()
	srv.src.restrict(c, peer.ID("someone else"))
	if forget {
		cli.fnd.set()
	}
	srv.svc.Recheck()
	close(proceed)

	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the revoked download did not end")
	}
	var re *refusedError
	if !errors.As(r.err, &re) || re.status != proto.FetchResponse_NOT_SERVED {
		t.Fatalf("revoked download ended with %v (result %+v), want a NOT_SERVED refusal", r.err, r.res)
	}
	if _, err := os.Stat(filepath.Join(cli.dir, "downloads", "big.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("revoked peer has the file: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if readAfter > 0 {
		t.Fatalf("the server read %d more chunks for the revoked peer", readAfter)
	}
}

// gatedSource is a Source whose Open, once armed, stops after the
// wrapped Open returned, until released: a change of audience can then
// happen between the check and the answer.
type gatedSource struct {
	Source
	mu      sync.Mutex
	armed   bool
	inOpen  chan struct{}
	release chan struct{}
}

func (g *gatedSource) Open(c cid.Cid, p peer.ID) (*manifest.Manifest, *os.File, error) {
	m, f, err := g.Source.Open(c, p)
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.inOpen)
		<-g.release
	}
	return m, f, err
}

// A Recheck that runs while a request is inside Source.Open, which let
// the peer in under the old audience, makes the request open again: it
// is answered NOT_SERVED (not reset, which the fetcher would take for a
// lost connection, and not served).
func TestRecheckDuringOpen(t *testing.T) {
	data := pattern(4*testChunk, 42)
	var gate *gatedSource
	srv := newNode(t, func(cfg *Config) {
		gate = &gatedSource{Source: cfg.Source, armed: true, inOpen: make(chan struct{}), release: make(chan struct{})}
		cfg.Source = gate
	})
	c := srv.publish(t, "s.bin", data, testChunk)
	cli := newNode(t)
	srv.src.restrict(c, cli.h.ID())
	cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	go func() {
		<-gate.inOpen
		srv.src.restrict(c, peer.ID("someone else"))
		srv.svc.Recheck()
		close(gate.release)
	}()
	if got := askRaw(t, cn, proto.FetchRequest_CHUNKS, c); got.status != proto.FetchResponse_NOT_SERVED {
		t.Fatalf("revoked during Open: answered %v, want NOT_SERVED", got)
	}
}

// A folder download whose peer is taken out of the folder's audience
// (the folder's document and every file it lists, as share.Library
// serves them) ends with a NOT_SERVED refusal, like a file's, and leaves
// no tree behind: through the pipelined small files and through a large
// file's own Get.
func TestRevokedFolderDownloadStops(t *testing.T) {
	small := tree{name: "many", files: map[string]tfile{}}
	for i := range 300 {
		small.files[fmt.Sprintf("f%03d.txt", i)] = tfile{data: pattern(900, uint64(100+i))}
	}
	t.Run("small files", func(t *testing.T) { testRevokedFolderDownloadStops(t, small, 40) })
	large := tree{name: "large", files: map[string]tfile{
		"a.txt":   {data: []byte("first")},
		"big.bin": {data: pattern(6*smallMax+77, 43)},
	}}
	// The 20th chunk read is well inside the large file (97 chunks).
	t.Run("large file", func(t *testing.T) { testRevokedFolderDownloadStops(t, large, 20) })
}

func testRevokedFolderDownloadStops(t *testing.T, tr tree, stopAt int) {
	srv, cli := pair(t)
	c := srv.publishTree(t, tr, testChunk)
	// Everything the folder lists, and the folder, served to cli only.
	var all []cid.Cid
	doc, _ := srv.csrc.Collection(c, "")
	coll, err := collection.Verify(c, doc)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, c)
	for _, e := range coll.Entries {
		if !e.Dir {
			all = append(all, e.CID)
		}
	}
	for _, x := range all {
		srv.src.restrict(x, cli.h.ID())
	}

	reached, proceed := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	reads, readAfter := 0, 0 // chunks read; chunks read after the revocation
	revoked := false
	srv.svc.corrupt = func(int, []byte) {
		mu.Lock()
		reads++
		n := reads
		if revoked {
			readAfter++
		}
		mu.Unlock()
		if n == stopAt {
			close(reached)
			<-proceed
		}
	}
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
		done <- result{res, err}
	}()
	select {
	case <-reached:
	case r := <-done:
		t.Fatalf("the download ended before chunk read %d: %+v, %v", stopAt, r.res, r.err)
	case <-time.After(time.Minute):
		t.Fatalf("the download never reached chunk read %d", stopAt)
	}
	for _, x := range all {
		srv.src.restrict(x, peer.ID("someone else"))
	}
	cli.fnd.set() // the directed withdrawal: no search finds it again
	srv.svc.Recheck()
	mu.Lock()
	revoked = true // from now on, nothing may be read for cli
	mu.Unlock()
	close(proceed)

	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the revoked folder download did not end")
	}
	var re *refusedError
	if !errors.As(r.err, &re) || re.status != proto.FetchResponse_NOT_SERVED {
		t.Fatalf("revoked folder download ended with %v (result %+v), want a NOT_SERVED refusal", r.err, r.res)
	}
	if _, err := os.Stat(filepath.Join(cli.dir, "downloads", tr.name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("revoked peer has the folder: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if readAfter > 0 {
		t.Fatalf("the server read %d more chunks for the revoked peer", readAfter)
	}
}
