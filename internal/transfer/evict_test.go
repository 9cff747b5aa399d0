package transfer

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// liveSessions counts the sessions n serves that are not evicted, in all
// and from p.
func (n *node) liveSessions(p peer.ID) (all, from int) {
	n.svc.mu.Lock()
	defer n.svc.mu.Unlock()
	for _, ss := range n.svc.sessions.all {
		if !ss.evicted {
			all++
			if ss.remote == p {
				from++
			}
		}
	}
	return all, from
}

// waitIdle waits until n has a session from p that went idle after t0:
// the one just dialled, waiting for its first request.
func (n *node) waitIdle(t *testing.T, p peer.ID, t0 time.Time) {
	t.Helper()
	waitFor(t, 10*time.Second, "the session to go idle", func() bool {
		n.svc.mu.Lock()
		defer n.svc.mu.Unlock()
		for _, ss := range n.svc.sessions.all {
			if ss.remote == p && ss.state == sessionIdle && !ss.evicted && ss.since.After(t0) {
				return true
			}
		}
		return false
	})
}

// fetchOn asks for the first chunk of c on cn and checks the answer.
func fetchOn(t *testing.T, cn *conn, want []byte) error {
	t.Helper()
	if err := cn.requestChunks(0, 1); err != nil {
		return err
	}
	sr, err := cn.response(0, uint64(len(want)))
	if err != nil {
		return err
	}
	got := make([]byte, len(want))
	if err := cn.readFull(sr, got); err != nil {
		return err
	}
	if err := cn.finish(sr); err != nil {
		return err
	}
	if string(got) != string(want) {
		t.Fatal("wrong chunk")
	}
	return nil
}

// One peer keeps at most maxIdleSessionsPerPeer idle sessions: opening
// more evicts its longest idle ones, and the newest still work.
func TestIdleSessionsPerPeerCapped(t *testing.T) {
	data := pattern(2*testChunk, 7)
	srv := newNode(t)
	c := srv.publish(t, "a.bin", data, testChunk)
	cli := newNode(t)
	var conns []*conn
	for range maxServerStreamsPerPeer {
		t0 := time.Now()
		cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.reset()
		conns = append(conns, cn)
		// Each session goes idle before the next opens, so "longest idle"
		// is the order of opening.
		srv.waitIdle(t, cli.h.ID(), t0)
	}
	waitFor(t, 10*time.Second, "idle sessions beyond the cap to be evicted", func() bool {
		_, from := srv.liveSessions(cli.h.ID())
		return from == maxIdleSessionsPerPeer
	})
	for i, cn := range conns {
		err := fetchOn(t, cn, data[:testChunk])
		kept := i >= len(conns)-maxIdleSessionsPerPeer
		if kept && err != nil {
			t.Errorf("session %d (kept): %v", i, err)
		}
		if !kept && err == nil {
			t.Errorf("session %d (evicted) still served a request", i)
		}
	}
}

// When the sessions reach the high-water mark below the fetch protocol's
// inbound limit, the longest idle sessions of any peer are evicted, so a
// new session always finds a slot.
func TestIdleSessionsEvictedUnderPressure(t *testing.T) {
	data := pattern(2*testChunk, 8)
	srv := newNode(t)
	c := srv.publish(t, "a.bin", data, testChunk)
	const limit = 12
	hw := sessionHighWater(limit)
	srv.svc.mu.Lock()
	srv.svc.sessions.limit = limit
	srv.svc.mu.Unlock()

	var first *conn
	for i := range hw + 3 {
		cli := newNode(t) // a peer of its own each: the per-peer cap does not apply
		t0 := time.Now()
		cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.reset()
		if i == 0 {
			first = cn
		}
		srv.waitIdle(t, cli.h.ID(), t0)
	}
	waitFor(t, 10*time.Second, "sessions above the high-water mark to be evicted", func() bool {
		all, _ := srv.liveSessions("")
		return all <= hw
	})
	if err := fetchOn(t, first, data[:testChunk]); err == nil {
		t.Error("the longest idle session still served a request")
	}
	// A newcomer is served.
	cli := newNode(t)
	cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.reset()
	if err := fetchOn(t, cn, data[:testChunk]); err != nil {
		t.Fatalf("new session under pressure: %v", err)
	}
	if all, _ := srv.liveSessions(""); all > hw {
		t.Errorf("%d live sessions, high-water mark %d", all, hw)
	}
}
