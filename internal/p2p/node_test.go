package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

func TestOpenConnectClose(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := openNode(t, testConfig(t, t.TempDir()))
	b := openNode(t, testConfig(t, t.TempDir()))

	id, err := a.Connect(ctx, p2pAddr(t, b))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if id != b.ID() {
		t.Fatalf("Connect returned %s, want %s", id, b.ID())
	}
	if got := a.Host().Network().Connectedness(b.ID()); got != network.Connected {
		t.Fatalf("connectedness = %v", got)
	}
	p := waitPeer(t, ctx, a, b.ID(), "online with source manual", func(p PeerInfo) bool {
		return p.Online && p.Source == SourceManual
	})
	if len(p.Addrs) == 0 {
		t.Errorf("no addresses recorded for %s", b.ID())
	}
	// b sees an inbound p2pshare peer.
	waitPeer(t, ctx, b, a.ID(), "online with source inbound", func(p PeerInfo) bool {
		return p.Online && p.Source == SourceInbound
	})
	// Both DHTs put the other in their routing table once connected.
	poll(t, ctx, "routing tables", func() bool {
		return a.DHT().RoutingTable().Find(b.ID()) != "" && b.DHT().RoutingTable().Find(a.ID()) != ""
	})
}
