package limiter

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The buckets refuse past the burst, refill at the stated rate, keep keys
// apart, and the table stays bounded.
func TestKeyed(t *testing.T) {
	const burst, perSecond, max = 32, 16, 4096
	now := time.Unix(1_000_000, 0)
	k := NewKeyed(perSecond, burst, max)
	k.Now = func() time.Time { return now }
	for i := range burst {
		if !k.Allow("192.0.2.1") {
			t.Fatalf("token %d of a burst of %d refused", i+1, burst)
		}
	}
	if k.Allow("192.0.2.1") {
		t.Fatalf("token %d granted at once; the burst is %d", burst+1, burst)
	}
	if !k.Allow("192.0.2.2") {
		t.Fatal("another key refused because of the first one's use")
	}
	now = now.Add(time.Second)
	n := 0
	for k.Allow("192.0.2.1") {
		n++
	}
	if n != perSecond {
		t.Errorf("%d tokens granted a second after the burst; want %d", n, perSecond)
	}
	for i := range max + 10 {
		now = now.Add(time.Millisecond)
		k.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255))
		if i%1000 == 0 {
			k.Allow("192.0.2.1") // keep it recently used
		}
		if k.Len() > max {
			t.Fatalf("%d buckets; the bound is %d", k.Len(), max)
		}
	}
	if !k.Has("192.0.2.1") {
		t.Error("a recently used bucket was dropped")
	}
}

// Reserve says how long to wait once the burst is spent, and a cancelled
// reservation gives its token back.
func TestKeyedReserve(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := NewKeyed(10, 2, 16)
	k.Now = func() time.Time { return now }
	for range 2 {
		if wait, _ := k.Reserve("p"); wait != 0 {
			t.Fatalf("wait %v within the burst", wait)
		}
	}
	wait, cancel := k.Reserve("p")
	if wait != 100*time.Millisecond {
		t.Fatalf("wait %v for the third token at 10/s; want 100ms", wait)
	}
	cancel()
	if wait, _ := k.Reserve("p"); wait != 100*time.Millisecond {
		t.Fatalf("wait %v after a cancelled reservation; want 100ms again", wait)
	}
}

// Keys: per IPv4 address, per IPv6 /56, and per peer on a relayed
// connection.
func TestAddrKey(t *testing.T) {
	p := peer.ID("a-peer")
	for _, c := range []struct{ addr, want string }{
		{"/ip4/127.0.0.2/tcp/4001", "127.0.0.2"},
		{"/ip4/127.0.0.2/udp/4001/quic-v1", "127.0.0.2"},
		{"/ip6/2001:db8:1:2a::1/tcp/4001", "2001:db8:1::/56"},
		{"/ip6/2001:db8:1:100::1/tcp/4001", "2001:db8:1:100::/56"}, // the next /56
		{"/ip6/2001:db8:1:ff:5::1/tcp/4001", "2001:db8:1::/56"},
		{"/ip4/192.0.2.7/tcp/4001/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/p2p-circuit", PeerKey(p)},
	} {
		if got := AddrKey(ma.StringCast(c.addr), p); got != c.want {
			t.Errorf("%s: key %q, want %q", c.addr, got, c.want)
		}
	}
}
