package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A restarted node keeps its peer ID and its peer table; peers loaded from
// the table are offline until a keepalive reaches them.
func TestRestartKeepsIdentityAndPeers(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dirA := t.TempDir()
	a := openNode(t, testConfig(t, dirA))
	b := openNode(t, testConfig(t, t.TempDir()))
	if _, err := a.Connect(ctx, p2pAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	first := waitPeer(t, ctx, a, b.ID(), "online", isOnline)
	idA := a.ID()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	a2 := openNode(t, testConfig(t, dirA))
	if a2.ID() != idA {
		t.Fatalf("peer ID changed across restart: %s -> %s", idA, a2.ID())
	}
	p, ok := a2.Peers().Get(b.ID())
	if !ok {
		t.Fatal("peer table lost across restart")
	}
	if p.Online {
		t.Error("peer loaded from the datastore is online before any keepalive")
	}
	if p.Source != SourceManual || !p.FirstSeen.Equal(first.FirstSeen) || len(p.Addrs) == 0 {
		t.Errorf("reloaded row %+v does not match %+v", p, first)
	}

	a2.RefreshPeers(ctx) // one keepalive round, dialling b at its stored addresses
	p = waitPeer(t, ctx, a2, b.ID(), "online after a keepalive round", isOnline)
	if p.RTT <= 0 {
		t.Errorf("RTT = %v after a successful ping", p.RTT)
	}
}

// With a short keepalive, stopping a node flips it offline in the others'
// tables and restarting it (same data dir, same ports) flips it back.
func TestKeepaliveFlipsOfflineAndBack(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	cfg := func(dir string) Config {
		c := testConfig(t, dir)
		c.Keepalive = 200 * time.Millisecond
		c.PingTimeout = time.Second
		return c
	}
	a := openNode(t, cfg(t.TempDir()))
	b := openNode(t, cfg(t.TempDir()))
	dirC := t.TempDir()
	c := openNode(t, cfg(dirC))

	for _, pair := range [][2]*Node{{a, b}, {a, c}, {b, c}} {
		if _, err := pair[0].Connect(ctx, p2pAddr(t, pair[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Node{a, b, c} {
		for _, m := range []*Node{a, b, c} {
			if n != m {
				waitPeer(t, ctx, n, m.ID(), "online", isOnline)
			}
		}
	}

	// Restart c on the very ports it had, so the others' stored
	// addresses still reach it.
	restartCfg := cfg(dirC)
	restartCfg.ListenAddrs = nil
	for _, a := range c.Host().Network().ListenAddresses() {
		if manet.IsIPLoopback(a) { // not the relay transport's /p2p-circuit
			restartCfg.ListenAddrs = append(restartCfg.ListenAddrs, a.String())
		}
	}
	idC := c.ID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, ctx, a, idC, "offline after c stopped", isOffline)
	waitPeer(t, ctx, b, idC, "offline after c stopped", isOffline)

	c2 := openNode(t, restartCfg)
	if c2.ID() != idC {
		t.Fatalf("restarted c has ID %s, want %s", c2.ID(), idC)
	}
	if !sameAddrs(c2.Host().Network().ListenAddresses(), restartCfg.ListenAddrs) {
		t.Fatalf("restarted c listens on %v, want %v", c2.Host().Network().ListenAddresses(), restartCfg.ListenAddrs)
	}
	waitPeer(t, ctx, a, idC, "online after c restarted", isOnline)
	waitPeer(t, ctx, b, idC, "online after c restarted", isOnline)
	waitPeer(t, ctx, c2, a.ID(), "online in the restarted c's table", isOnline)
	waitPeer(t, ctx, c2, b.ID(), "online in the restarted c's table", isOnline)
}

func sameAddrs(got []multiaddr.Multiaddr, want []string) bool {
	seen := make(map[string]bool)
	for _, a := range got {
		if manet.IsIPLoopback(a) {
			seen[a.String()] = true
		}
	}
	if len(seen) != len(want) {
		return false
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}
