package transfer

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// countSessions counts the fetch streams n's server completed a handshake
// on.
func countSessions(n *node) *atomic.Int32 {
	var k atomic.Int32
	n.svc.tapWire = func(_ peer.ID, w io.Writer) io.Writer {
		k.Add(1)
		return w
	}
	return &k
}

func (n *node) serving(p peer.ID) int {
	n.svc.mu.Lock()
	defer n.svc.mu.Unlock()
	return n.svc.serving[p]
}

func (n *node) kept(p peer.ID) int {
	n.svc.mu.Lock()
	defer n.svc.mu.Unlock()
	return len(n.svc.idle[p])
}

func TestSessionKeptAcrossGets(t *testing.T) {
	srv := newNode(t)
	sessions := countSessions(srv)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	sizes := []int64{4096, 0, 1, 5*testChunk + 3, testChunk}
	for i, size := range sizes {
		data := pattern(size, uint64(200+i))
		c := srv.publish(t, "k"+string(rune('a'+i)), data, testChunk)
		res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, res.Path, data)
	}
	if n := sessions.Load(); n != 1 {
		t.Errorf("%d handshakes for %d gets from one provider, want 1", n, len(sizes))
	}
	if k, s := cli.kept(srv.h.ID()), srv.serving(cli.h.ID()); k != 1 || s != 1 {
		t.Errorf("kept sessions %d, streams at the server %d; want 1 and 1", k, s)
	}
	// Close closes kept sessions: the server's handler sees the end.
	cli.svc.Close()
	waitFor(t, 10*time.Second, "the server to see the kept stream closed", func() bool { return srv.serving(cli.h.ID()) == 0 })
}

// A kept session that the provider has closed in the meantime is replaced
// within the same Get, without waiting for the Finder (retry interval of
// an hour here).
func TestKeptSessionClosedByProvider(t *testing.T) {
	srv := newNode(t)
	sessions := countSessions(srv)
	cli := newNode(t, func(c *Config) { c.RetryInterval = time.Hour })
	cli.fnd.set(addrInfo(srv.h))
	d1, d2 := pattern(4096, 210), pattern(3*testChunk, 211)
	c1, c2 := srv.publish(t, "a", d1, testChunk), srv.publish(t, "b", d2, testChunk)
	if _, err := cli.svc.Get(ctxT(t, time.Minute), c1, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.svc.mu.Lock()
	for st := range srv.svc.streams {
		st.Reset()
	}
	srv.svc.mu.Unlock()
	waitFor(t, 10*time.Second, "the server's handler to end", func() bool { return srv.serving(cli.h.ID()) == 0 })
	res, err := cli.svc.Get(ctxT(t, 20*time.Second), c2, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, d2)
	if n := sessions.Load(); n != 2 {
		t.Errorf("%d handshakes, want 2", n)
	}
}

func TestKeptSessionExpires(t *testing.T) {
	orig := poolIdle
	poolIdle = 20 * time.Millisecond
	t.Cleanup(func() { poolIdle = orig })
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	c := srv.publish(t, "e", pattern(4096, 220), testChunk)
	if _, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the kept session to expire", func() bool {
		return cli.kept(srv.h.ID()) == 0 && srv.serving(cli.h.ID()) == 0
	})
}

// A download that is cancelled or paused does not keep its session (its
// stream had a request in flight), nor does one dropped as bad.
func TestSessionNotKeptAfterInterruption(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	c := srv.publish(t, "i", pattern(4096, 230), testChunk)
	reached, _ := blockChunks(t, srv)
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	done := make(chan error, 1)
	go func() {
		_, err := cli.svc.Get(ctx, c, GetOptions{})
		done <- err
	}()
	<-reached
	cancel()
	if err := <-done; !errors.Is(err, ErrPaused) {
		t.Fatalf("Get: %v, want ErrPaused", err)
	}
	if k := cli.kept(srv.h.ID()); k != 0 {
		t.Fatalf("%d sessions kept after a paused download", k)
	}

	bad := newNode(t)
	bc := bad.publish(t, "b", pattern(4096, 231), testChunk)
	bad.svc.corrupt = func(_ int, b []byte) { b[0] ^= 1 }
	cli2 := newNode(t, func(c *Config) { c.RetryInterval = time.Hour })
	cli2.fnd.set(addrInfo(bad.h))
	if _, err := cli2.svc.Get(ctxT(t, 2*time.Second), bc, GetOptions{}); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("Get from a bad provider only: %v, want ErrNoProviders", err)
	}
	if k := cli2.kept(bad.h.ID()); k != 0 {
		t.Fatalf("%d sessions kept with a provider that sent bad data", k)
	}
}

// When the last chunk comes from one provider while another still has a
// request in flight, the other's stream is reset (not kept, and the Get
// does not wait for it); the idle one is kept.
func TestSessionKeptOnlyWhenInOrder(t *testing.T) {
	data := pattern(32*testChunk, 240)
	srvs, ais, c := providers(t, 2, data)
	stalledA, slowB := srvs[0], srvs[1]
	aStalled, release := make(chan struct{}), make(chan struct{})
	var onceA, onceR sync.Once
	var la, lb servedLog
	stalledA.svc.onServe = la.hook(func(int) {
		onceA.Do(func() { close(aStalled) })
		<-release
	})
	slowB.svc.onServe = lb.hook(func(int) { <-aStalled })
	t.Cleanup(func() { onceR.Do(func() { close(release) }) })
	cli := newNode(t, smallRequests)
	cli.fnd.set(ais...)
	res, err := cli.svc.Get(ctxT(t, 15*time.Second), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if k := cli.kept(stalledA.h.ID()); k != 0 {
		t.Errorf("the session with a request in flight was kept")
	}
	if k := cli.kept(slowB.h.ID()); k != 1 {
		t.Errorf("%d sessions kept with the provider that finished, want 1", k)
	}
}
