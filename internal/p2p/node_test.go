package p2p

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
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

// Connecting to an already-connected peer at a wrong address succeeds
// (the peer is connected) but must not record that address: only
// addresses a connection uses, or that the peer announced, are kept.
func TestConnectAgainAtWrongAddressKeepsRecordedAddresses(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := openNode(t, testConfig(t, t.TempDir()))
	b := openNode(t, testConfig(t, t.TempDir()))
	good := p2pAddr(t, b)
	if _, err := a.Connect(ctx, good); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	goodTransport, _ := peer.SplitAddr(good)
	// Port 1 on loopback: nothing listens there.
	wrong := multiaddr.StringCast("/ip4/127.0.0.1/tcp/1/p2p/" + b.ID().String())
	if _, err := a.Connect(ctx, wrong); err != nil {
		t.Fatalf("Connect to a connected peer at another address: %v", err)
	}
	p, _ := a.Peers().Get(b.ID())
	for _, addr := range p.Addrs {
		if addr.Equal(multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")) {
			t.Fatalf("the wrong address was recorded: %v", p.Addrs)
		}
	}
	if !slices.ContainsFunc(p.Addrs, goodTransport.Equal) {
		t.Fatalf("the working address %s is no longer recorded: %v", goodTransport, p.Addrs)
	}
}

func TestConnectRefusesBadAddressesAndForeignPeers(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := openNode(t, testConfig(t, t.TempDir()))

	noID := multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")
	if _, err := a.Connect(ctx, noID); err == nil {
		t.Error("Connect accepted an address without /p2p/<id>")
	}
	if _, err := a.Connect(ctx, p2pAddr(t, a)); err == nil {
		t.Error("Connect to itself succeeded")
	}

	// A plain libp2p host speaks no p2pshare protocol: reachable, not recorded.
	plain, err := libp2p.New(libp2p.ListenAddrStrings(loopbackListen...), libp2p.ConnectionGater(loopbackGater{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	plainAddr := plain.Addrs()[0].Encapsulate(multiaddr.StringCast("/p2p/" + plain.ID().String()))
	id, err := a.Connect(ctx, plainAddr)
	if !errors.Is(err, ErrNotP2PShare) || id != plain.ID() {
		t.Fatalf("Connect to a plain libp2p host = %s, %v; want its ID and ErrNotP2PShare", id, err)
	}
	// Nor when it is the one that dials.
	if err := plain.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	a.RefreshPeers(ctx)
	if _, ok := a.Peers().Get(plain.ID()); ok {
		t.Error("a non-p2pshare peer entered the peer table")
	}
}

func TestPubSubBetweenNodes(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := openNode(t, testConfig(t, t.TempDir()))
	b := openNode(t, testConfig(t, t.TempDir()))

	const topic = "/p2pshare/test/1"
	ta, err := a.PubSub().Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	tb, err := b.PubSub().Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	sub, err := tb.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()

	if _, err := a.Connect(ctx, p2pAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "gossipsub mesh", func() bool { return len(ta.ListPeers()) > 0 })
	if err := ta.Publish(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "hello" || msg.GetFrom() != a.ID() {
		t.Fatalf("got %q from %s", msg.Data, msg.GetFrom())
	}
}
