package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Two nodes that listen on TCP and QUIC, one dialling the other with both
// addresses known (as after mDNS), connect over TCP on a LAN: the
// transport that carries file bytes faster here. go-libp2p alone would
// connect over QUIC.
func TestLANDialPrefersTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := openNode(t, testConfig(t, t.TempDir()))
	b := openNode(t, testConfig(t, t.TempDir()))
	var tcp, quic bool
	for _, addr := range b.Host().Addrs() {
		tcp = tcp || isPlainTCP(addr)
		quic = quic || isQUICAddr(addr)
	}
	if !tcp || !quic {
		t.Fatalf("premise: b listens on %v, want TCP and QUIC", b.Host().Addrs())
	}
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !isPlainTCP(conns[0].RemoteMultiaddr()) {
		var got []multiaddr.Multiaddr
		for _, c := range conns {
			got = append(got, c.RemoteMultiaddr())
		}
		t.Errorf("connected over %v, want one TCP connection", got)
	}
}

// Public and relayed addresses keep go-libp2p's order: QUIC first.
func TestDialRankerKeepsPublicOrder(t *testing.T) {
	addrs := []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/192.168.1.2/tcp/4001"),
		multiaddr.StringCast("/ip4/192.168.1.2/udp/4001/quic-v1"),
		multiaddr.StringCast("/ip4/1.2.3.4/tcp/4001"),
		multiaddr.StringCast("/ip4/1.2.3.4/udp/4001/quic-v1"),
	}
	delay := map[string]time.Duration{}
	for _, d := range dialRanker(addrs) {
		delay[d.Addr.String()] = d.Delay
	}
	if len(delay) != len(addrs) {
		t.Fatalf("ranked %d addresses of %d: %v", len(delay), len(addrs), delay)
	}
	if delay["/ip4/192.168.1.2/tcp/4001"] >= delay["/ip4/192.168.1.2/udp/4001/quic-v1"] {
		t.Errorf("LAN: TCP at %v, QUIC at %v; want TCP first", delay["/ip4/192.168.1.2/tcp/4001"], delay["/ip4/192.168.1.2/udp/4001/quic-v1"])
	}
	if delay["/ip4/1.2.3.4/udp/4001/quic-v1"] >= delay["/ip4/1.2.3.4/tcp/4001"] {
		t.Errorf("public: QUIC at %v, TCP at %v; want QUIC first", delay["/ip4/1.2.3.4/udp/4001/quic-v1"], delay["/ip4/1.2.3.4/tcp/4001"])
	}
}
