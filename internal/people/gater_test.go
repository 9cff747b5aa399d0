package people

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func loopbackHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestGaterRefusesBothWays: a node that blocked a peer neither reaches it
// nor lets it in, on TCP and QUIC, and unblocking lets both through.
func TestGaterRefusesBothWays(t *testing.T) {
	b, err := Open(context.Background(), datastore.NewMapDatastore(), "")
	if err != nil {
		t.Fatal(err)
	}
	us := loopbackHost(t, libp2p.ConnectionGater(b.Gater()))
	them := loopbackHost(t)
	b.SetSelf(us.ID())
	if err := b.Block(them.ID()); err != nil {
		t.Fatal(err)
	}
	connect := func(from, to host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		from.Peerstore().ClearAddrs(to.ID())
		from.Network().Peerstore().RemovePeer(to.ID())
		return from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()})
	}
	if err := connect(us, them); err == nil {
		t.Error("dialled a blocked peer")
	}
	// Inbound, we learn who it is only at the end of the security
	// handshake, which the dialler may see succeed (in TLS 1.3 the client
	// finishes first): what counts is that the connection never reaches
	// our host (no connectedness event) and dies on its side too.
	sub, err := us.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	connect(them, us)
	deadline := time.Now().Add(10 * time.Second)
	for them.Network().Connectedness(us.ID()) == network.Connected {
		if time.Now().After(deadline) {
			t.Fatal("the blocked peer's connection to us stayed open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(us.Network().ConnsToPeer(them.ID())); n != 0 {
		t.Errorf("%d connection(s) with the blocked peer", n)
	}
	select {
	case ev := <-sub.Out():
		if e := ev.(event.EvtPeerConnectednessChanged); e.Peer == them.ID() {
			t.Errorf("our host saw the blocked peer: %v", e.Connectedness)
		}
	default:
	}
	if err := b.Unblock(them.ID()); err != nil {
		t.Fatal(err)
	}
	if err := connect(them, us); err != nil {
		t.Errorf("after unblock, inbound: %v", err)
	}
	us.Network().ClosePeer(them.ID())
	if err := connect(us, them); err != nil {
		t.Errorf("after unblock, outbound: %v", err)
	}
}
