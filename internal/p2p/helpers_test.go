package p2p

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"
)

// Every test host listens on loopback only. Nothing a test does may reach
// the machine's real interface.
var loopbackListen = []string{
	"/ip4/127.0.0.1/tcp/0",
	"/ip4/127.0.0.1/udp/0/quic-v1",
}

// loopbackGater refuses every dial to, and every connection from, a
// non-loopback address: belt and braces on top of loopback-only listening.
type loopbackGater struct{}

func (loopbackGater) InterceptPeerDial(peer.ID) bool { return true }
func (loopbackGater) InterceptAddrDial(_ peer.ID, a multiaddr.Multiaddr) bool {
	return manet.IsIPLoopback(a)
}
func (loopbackGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return manet.IsIPLoopback(c.RemoteMultiaddr())
}
func (loopbackGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (loopbackGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// testConfig is a loopback-only, mDNS-off configuration in dir.
func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("P2P_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return Config{
		DataDir:         dir,
		ListenAddrs:     loopbackListen,
		Keepalive:       -1, // tests that want the keepalive set it
		PingTimeout:     2 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level})),
		ConnectionGater: loopbackGater{},
	}
}

// testWriter sends log lines to t.Log, which shows them only on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

// openNode opens a node and closes it when the test ends.
func openNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

// checkLeaks registers, first, a cleanup that runs after every other
// cleanup and fails the test if goroutines started during it are still
// running. leveldb and QUIC release some goroutines a moment after Close,
// so it polls for a few seconds before reporting.
func checkLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find(ignore)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond) // polling, not synchronisation
		}
	})
}

// waitPeer waits until n's table has a row for id satisfying ok, watching
// the table's events and re-reading the row on each, so a dropped event
// cannot make it miss the state.
func waitPeer(t testing.TB, ctx context.Context, n *Node, id peer.ID, what string, ok func(PeerInfo) bool) PeerInfo {
	t.Helper()
	events, stop := n.Peers().Subscribe()
	defer stop()
	// A slow tick as a safety net: it bounds a wait for a state that changes
	// without an event (e.g. RTT), it does not pace the test.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, found := n.Peers().Get(id); found && ok(p) {
			return p
		}
		select {
		case <-events:
		case <-tick.C:
		case <-ctx.Done():
			p, found := n.Peers().Get(id)
			t.Fatalf("%s: peer %s never became %s (in table: %v, row: %+v)", n.ID(), id, what, found, p)
		}
	}
}

func isOnline(p PeerInfo) bool  { return p.Online }
func isOffline(p PeerInfo) bool { return !p.Online }

// poll calls cond until it is true or ctx ends.
func poll(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// p2pAddr returns n's first TCP address with /p2p/<id>.
func p2pAddr(t testing.TB, n *Node) multiaddr.Multiaddr {
	t.Helper()
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			return a
		}
	}
	t.Fatalf("node %s has no TCP address: %v", n.ID(), n.Addrs())
	return nil
}
