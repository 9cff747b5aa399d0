package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
)

// providers starts n serving nodes that all publish data.
func providers(t *testing.T, n int, data []byte) ([]*node, []peer.AddrInfo, cid.Cid) {
	var nodes []*node
	var ais []peer.AddrInfo
	var c cid.Cid
	for range n {
		s := newNode(t)
		c = s.publish(t, "f.bin", data, testChunk)
		nodes = append(nodes, s)
		ais = append(ais, addrInfo(s.h))
	}
	return nodes, ais, c
}

func smallRequests(c *Config) { c.ChunksPerRequest = 2; c.Window = 2 }

func TestGetFailover(t *testing.T) {
	data := pattern(128*testChunk, 10)
	srvs, ais, c := providers(t, 3, data)
	killed := make(chan struct{})
	// The others pause after their first answer until the victim is dead,
	// so it is killed mid-transfer whatever the scheduling.
	logs := make([]*servedLog, 3)
	for i := range srvs {
		logs[i] = &servedLog{}
		srvs[i].svc.onServe = logs[i].hook(func(int) { <-killed })
	}
	victim := srvs[0]
	var once sync.Once
	victim.svc.onServe = logs[0].hook(func(total int) {
		if total >= 6 {
			once.Do(func() {
				go func() {
					victim.h.Close()
					close(killed)
				}()
			})
		}
	})
	// Never leave the others blocked (Close waits for their handlers).
	t.Cleanup(func() { once.Do(func() { close(killed) }) })
	cli := newNode(t, smallRequests)
	cli.fnd.set(ais...)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "f.bin"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	select {
	case <-killed:
	default:
		t.Fatal("the victim was not killed during the download")
	}
	if n := logs[0].count(); n < 6 || n >= 128 {
		t.Errorf("the killed provider served %d chunks, want some but not all", n)
	}
	if others := logs[1].count() + logs[2].count(); others < 128-logs[0].count() {
		t.Errorf("the others served %d chunks, too few to complete", others)
	}
	if res.Fetched != 128 || len(res.Bad) != 0 {
		t.Errorf("fetched %d, bad %v", res.Fetched, res.Bad)
	}
}

func TestGetBadProvider(t *testing.T) {
	data := pattern(64*testChunk, 11)
	srvs, ais, c := providers(t, 3, data)
	bad := srvs[2]
	// Corrupt after the server's own verification, as a malicious or
	// broken peer would. The good providers pause after their first answer
	// until the bad one has sent a corrupted chunk, so it surely does.
	corrupted := make(chan struct{})
	var once sync.Once
	bad.svc.corrupt = func(_ int, b []byte) {
		b[len(b)/2] ^= 0x10
		once.Do(func() { close(corrupted) })
	}
	for _, s := range srvs[:2] {
		var l servedLog
		s.svc.onServe = l.hook(func(int) { <-corrupted })
	}
	t.Cleanup(func() { once.Do(func() { close(corrupted) }) })
	cli := newNode(t, func(c *Config) { c.ChunksPerRequest = 4; c.Window = 2 })
	cli.fnd.set(ais...)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "f.bin"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if !slices.Equal(res.Bad, []peer.ID{bad.h.ID()}) {
		t.Errorf("bad providers %v, want [%s]", res.Bad, bad.h.ID())
	}
	if slices.Contains(res.Providers, bad.h.ID()) {
		t.Errorf("the bad provider is listed among the good ones: %v", res.Providers)
	}
}

// gated makes a server stop answering after it served `after` chunks, until
// the returned release func is called (also called at cleanup).
func gated(t *testing.T, n *node, log *servedLog, after int) (release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	n.svc.onServe = log.hook(func(total int) {
		if total >= after {
			<-ch
		}
	})
	t.Cleanup(release) // runs before the service's Close, which waits for handlers
	return release
}

func TestResume(t *testing.T) {
	const total = 64
	data := pattern(total*testChunk, 12)
	srv := newNode(t)
	c := srv.publish(t, "r.bin", data, testChunk)
	var served servedLog
	release := gated(t, srv, &served, 16)
	ais := []peer.AddrInfo{addrInfo(srv.h)}

	dl := filepath.Join(t.TempDir(), "downloads")
	cli := newNode(t, smallRequests, func(c *Config) { c.DownloadDir = dl })
	cli.fnd.set(ais...)
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	_, err := cli.svc.Get(ctx, c, GetOptions{Name: "r.bin", Progress: func(p Progress) {
		if p.Done >= 16*testChunk {
			cancel()
		}
	}})
	if !errors.Is(err, ErrPaused) {
		t.Fatalf("cancelled Get: %v, want ErrPaused", err)
	}
	dir := partialDir(dl, c)
	st, _, err := readState(dir, c)
	if err != nil {
		t.Fatalf("partial state: %v", err)
	}
	var before []int
	for i, d := range st.done {
		if d {
			before = append(before, i)
		}
	}
	if len(before) < 16 || len(before) == total {
		t.Fatalf("%d chunks verified before the pause", len(before))
	}
	tr := cli.svc.Transfers()
	if len(tr) != 1 || tr[0].State != StatePaused || tr[0].Done != int64(len(before))*testChunk || tr[0].Name != "r.bin" {
		t.Fatalf("Transfers() = %+v, want one paused transfer", tr)
	}
	if _, err := os.Stat(filepath.Join(dl, "r.bin")); !os.IsNotExist(err) {
		t.Fatal("an interrupted download left a file under its final name")
	}

	// Simulate a crash that lost the last bitmap update: the last two
	// verified chunks are on disk but not marked. They must be re-verified
	// from the data file, not fetched again.
	lost := before[len(before)-2:]
	for _, i := range lost {
		st.done[i] = false
	}
	bm := make([]byte, bitmapLen(len(st.done)))
	encodeBitmap(bm, st.done)
	if err := atomicfile.Write(filepath.Join(dir, doneName), bm, 0o600); err != nil {
		t.Fatal(err)
	}

	// "Restart": a new node with the same download folder.
	release()
	cli.svc.Close()
	cli2 := newNode(t, smallRequests, func(c *Config) { c.DownloadDir = dl })
	cli2.fnd.set(ais...)
	if tr := cli2.svc.Transfers(); len(tr) != 1 || tr[0].State != StatePaused {
		t.Fatalf("after restart Transfers() = %+v, want the paused transfer", tr)
	}
	served.mu.Lock()
	served.chunks, served.total = nil, 0
	served.mu.Unlock()
	res, err := cli2.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Path != filepath.Join(dl, "r.bin") {
		t.Errorf("resumed download saved as %s, want the name from the state", res.Path)
	}
	if res.Resumed != len(before) || res.Fetched != total-len(before) {
		t.Errorf("resumed %d fetched %d, want %d and %d", res.Resumed, res.Fetched, len(before), total-len(before))
	}
	served.mu.Lock()
	defer served.mu.Unlock()
	for i := range total {
		want := 1
		if slices.Contains(before, i) {
			want = 0
		}
		if served.chunks[i] != want {
			t.Errorf("chunk %d served %d times after resume, want %d", i, served.chunks[i], want)
		}
	}
	if len(cli2.svc.Transfers()) != 0 {
		t.Errorf("finished download still listed: %+v", cli2.svc.Transfers())
	}
}

func TestWaitForProviders(t *testing.T) {
	data := pattern(64*testChunk, 13)
	srv := newNode(t)
	c := srv.publish(t, "w.bin", data, testChunk)
	var served servedLog
	gated(t, srv, &served, 8)
	cli := newNode(t, smallRequests)
	cli.fnd.set(addrInfo(srv.h))
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	defer cancel()
	progressed := make(chan struct{})
	var once sync.Once
	type ret struct {
		err error
	}
	done := make(chan ret, 1)
	go func() {
		_, err := cli.svc.Get(ctx, c, GetOptions{Progress: func(p Progress) {
			if p.Done >= 8*testChunk {
				once.Do(func() { close(progressed) })
			}
		}})
		done <- ret{err}
	}()
	<-progressed
	srv.h.Close() // the only provider goes away
	waitFor(t, 20*time.Second, "state "+StateWaiting, func() bool {
		tr := cli.svc.Transfers()
		return len(tr) == 1 && tr[0].State == StateWaiting && tr[0].Done >= 8*testChunk
	})
	calls := func() int { cli.fnd.mu.Lock(); defer cli.fnd.mu.Unlock(); return cli.fnd.calls }
	n := calls()
	waitFor(t, 20*time.Second, "the Finder to be asked again", func() bool { return calls() > n })
	cancel()
	r := <-done
	if !errors.Is(r.err, ErrPaused) || !errors.Is(r.err, ErrNoProviders) {
		t.Fatalf("Get without providers: %v, want ErrPaused and ErrNoProviders", r.err)
	}
	if _, err := os.Stat(filepath.Join(partialDir(cli.svc.cfg.DownloadDir, c), dataName)); err != nil {
		t.Fatalf("partial data not kept: %v", err)
	}
	if tr := cli.svc.Transfers(); len(tr) != 1 || tr[0].State != StatePaused {
		t.Fatalf("Transfers() = %+v, want one paused", tr)
	}
}

func TestCancel(t *testing.T) {
	data := pattern(64*testChunk, 14)
	srv := newNode(t)
	c := srv.publish(t, "c.bin", data, testChunk)
	var served servedLog
	gated(t, srv, &served, 8)
	cli := newNode(t, smallRequests)
	cli.fnd.set(addrInfo(srv.h))
	progressed := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Progress: func(p Progress) {
			if p.Done >= 8*testChunk {
				once.Do(func() { close(progressed) })
			}
		}})
		done <- err
	}()
	<-progressed
	if tr := cli.svc.Transfers(); len(tr) != 1 || tr[0].State != StateRunning {
		t.Fatalf("Transfers() = %+v, want one running", tr)
	}
	if err := cli.svc.Cancel(c); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrCanceled) {
		t.Fatalf("cancelled Get returned %v, want ErrCanceled", err)
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !os.IsNotExist(err) {
		t.Fatalf("partial data not removed: %v", err)
	}
	if err := cli.svc.Cancel(c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Cancel of nothing: %v, want ErrNotFound", err)
	}
}

func TestCancelPaused(t *testing.T) {
	data := pattern(8*testChunk, 15)
	srv := newNode(t)
	c := srv.publish(t, "p.bin", data, testChunk)
	var served servedLog
	gated(t, srv, &served, 2)
	cli := newNode(t, smallRequests)
	cli.fnd.set(addrInfo(srv.h))
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	if _, err := cli.svc.Get(ctx, c, GetOptions{Progress: func(p Progress) {
		if p.Done > 0 {
			cancel()
		}
	}}); !errors.Is(err, ErrPaused) {
		t.Fatalf("Get: %v, want ErrPaused", err)
	}
	if err := cli.svc.Cancel(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !os.IsNotExist(err) {
		t.Fatalf("partial data not removed: %v", err)
	}
	if tr := cli.svc.Transfers(); len(tr) != 0 {
		t.Fatalf("Transfers() = %+v after Cancel", tr)
	}
}

// wireTap records what a server writes on its fetch streams.
type wireTap struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

type tapWriter struct {
	w   io.Writer
	tap *wireTap
}

func (t tapWriter) Write(p []byte) (int, error) {
	t.tap.mu.Lock()
	t.tap.buf.Write(p)
	t.tap.mu.Unlock()
	return t.w.Write(p)
}

func TestWireCarriesNoPlaintext(t *testing.T) {
	marker := []byte("PLAINTEXT-MARKER-must-never-cross-the-wire-in-clear;")
	data := bytes.Repeat(marker, 3*testChunk/len(marker)+1)
	srv := newNode(t)
	c := srv.publish(t, "m.txt", data, testChunk)
	tap := &wireTap{}
	srv.svc.tapWire = func(_ peer.ID, w io.Writer) io.Writer { return tapWriter{w, tap} }
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	tap.mu.Lock()
	defer tap.mu.Unlock()
	if tap.buf.Len() < len(data) {
		t.Fatalf("tapped only %d bytes for a %d-byte file", tap.buf.Len(), len(data))
	}
	if bytes.Contains(tap.buf.Bytes(), marker[:16]) {
		t.Fatal("plaintext found on the wire")
	}
}

func TestChangedFileNotServed(t *testing.T) {
	data := pattern(4*testChunk, 16)
	srv := newNode(t)
	c := srv.publish(t, "ch.bin", data, testChunk)
	// The file changes on disk after it was published (same size).
	rewrite(t, filepath.Join(srv.dir, "share", "ch.bin"), 0)
	var served servedLog
	srv.svc.onServe = served.hook(nil)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	// Source.Open answers CHANGED from the first request (the manifest)
	// on, as share.Service does; with no other provider, the Get ends
	// with that answer instead of waiting. (A change after the manifest
	// was sent: TestChangedBetweenRequestsOnOneStream,
	// TestChangedDuringRequest.)
	_, err := cli.svc.Get(ctxT(t, 30*time.Second), c, GetOptions{})
	if err == nil || errors.Is(err, ErrNoProviders) || errors.Is(err, ErrPaused) ||
		!strings.Contains(err.Error(), srv.h.ID().String()) || !strings.Contains(err.Error(), "CHANGED") {
		t.Fatalf("Get of a changed file: %v, want an error naming the provider and its answer CHANGED", err)
	}
	if served.count() != 0 {
		t.Fatalf("the server sent %d chunks of a changed file", served.count())
	}
}

func TestEndgameFinishesAStalledProvider(t *testing.T) {
	data := pattern(32*testChunk, 17)
	srvs, ais, c := providers(t, 2, data)
	stalledA, slowB := srvs[0], srvs[1]
	aStalled, release := make(chan struct{}), make(chan struct{})
	var onceA, onceR sync.Once
	var la, lb servedLog
	// A answers one request, then stops answering with the rest of its
	// window still in flight; B waits for that before going on.
	stalledA.svc.onServe = la.hook(func(int) {
		onceA.Do(func() { close(aStalled) })
		<-release
	})
	slowB.svc.onServe = lb.hook(func(int) { <-aStalled })
	t.Cleanup(func() { onceR.Do(func() { close(release) }) })
	cli := newNode(t, smallRequests)
	cli.fnd.set(ais...)
	// Without the endgame, A's unanswered request would hold the download
	// until the 30 s I/O timeout; the deadline is well below that.
	res, err := cli.svc.Get(ctxT(t, 15*time.Second), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if la.count() != 2 || res.Fetched != 32 {
		t.Fatalf("A served %d chunks (want its first request only), fetched %d", la.count(), res.Fetched)
	}
}

func TestGetFromOnly(t *testing.T) {
	data := pattern(16*testChunk, 18)
	srvs, ais, c := providers(t, 2, data)
	var la, lb servedLog
	srvs[0].svc.onServe = la.hook(nil)
	srvs[1].svc.onServe = lb.hook(nil)
	cli := newNode(t, smallRequests)
	cli.fnd.set(ais...)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{From: []peer.ID{srvs[1].h.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if la.count() != 0 || lb.count() != 16 {
		t.Fatalf("served %d by the excluded provider and %d by the chosen one", la.count(), lb.count())
	}
	if !slices.Equal(res.Providers, []peer.ID{srvs[1].h.ID()}) {
		t.Fatalf("providers %v", res.Providers)
	}
}

// A Get that starts while Cancel is removing a paused download's partial
// data is refused: it must not open (resume) files that are being deleted.
func TestGetDuringCancelOfPaused(t *testing.T) {
	data := pattern(8*testChunk, 16)
	srv := newNode(t)
	c := srv.publish(t, "g.bin", data, testChunk)
	var served servedLog
	release := gated(t, srv, &served, 2)
	cli := newNode(t, smallRequests)
	cli.fnd.set(addrInfo(srv.h))
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	if _, err := cli.svc.Get(ctx, c, GetOptions{Progress: func(p Progress) {
		if p.Done > 0 {
			cancel()
		}
	}}); !errors.Is(err, ErrPaused) {
		t.Fatalf("Get: %v, want ErrPaused", err)
	}
	release()
	var during error
	hooked := false
	cli.svc.beforeCancelRemove = func(cid.Cid) {
		hooked = true
		_, during = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	}
	if err := cli.svc.Cancel(c); err != nil {
		t.Fatal(err)
	}
	if !hooked {
		t.Fatal("Cancel did not reach the removal")
	}
	if !errors.Is(during, ErrInProgress) {
		t.Fatalf("Get while Cancel removes the partial: %v, want ErrInProgress", during)
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !os.IsNotExist(err) {
		t.Fatalf("partial data not removed: %v", err)
	}
	// After Cancel returned, a Get starts afresh.
	cli.svc.beforeCancelRemove = nil
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Resumed != 0 {
		t.Errorf("resumed %d chunks of a cancelled download", res.Resumed)
	}
}
