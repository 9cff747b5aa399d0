package transfer

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The buckets refuse past the burst, refill at the stated rate, keep
// addresses apart, and the table stays bounded.
func TestSessionAdmission(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := newSessionAdmission()
	a.now = func() time.Time { return now }
	for i := range sessionBurst {
		if !a.allow("192.0.2.1") {
			t.Fatalf("session %d of a burst of %d refused", i+1, sessionBurst)
		}
	}
	if a.allow("192.0.2.1") {
		t.Fatalf("session %d admitted at once; the burst is %d", sessionBurst+1, sessionBurst)
	}
	if !a.allow("192.0.2.2") {
		t.Fatal("another address refused because of the first one's sessions")
	}
	now = now.Add(time.Second)
	n := 0
	for a.allow("192.0.2.1") {
		n++
	}
	if n != sessionsPerSecond {
		t.Errorf("%d sessions admitted a second after the burst; want %d", n, sessionsPerSecond)
	}

	// Fill the table: the oldest buckets go, the busy one stays, and the
	// size never passes the bound.
	for i := range maxSessionBuckets + 10 {
		now = now.Add(time.Millisecond)
		a.allow(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255))
		if i%1000 == 0 {
			a.allow("192.0.2.1") // keep it recently used
		}
		if len(a.buckets) > maxSessionBuckets {
			t.Fatalf("%d buckets; the bound is %d", len(a.buckets), maxSessionBuckets)
		}
	}
	if _, ok := a.buckets["192.0.2.1"]; !ok {
		t.Error("a recently used bucket was dropped")
	}
}

// Sessions are counted per IPv4 address, per IPv6 /56, and per peer on a
// relayed connection.
func TestAdmissionKey(t *testing.T) {
	p := peer.ID("a-peer")
	for _, c := range []struct{ addr, want string }{
		{"/ip4/127.0.0.2/tcp/4001", "127.0.0.2"},
		{"/ip4/127.0.0.2/udp/4001/quic-v1", "127.0.0.2"},
		{"/ip6/2001:db8:1:2a::1/tcp/4001", "2001:db8:1::/56"},
		{"/ip6/2001:db8:1:100::1/tcp/4001", "2001:db8:1:100::/56"}, // the next /56
		{"/ip6/2001:db8:1:ff:5::1/tcp/4001", "2001:db8:1::/56"},
		{"/ip4/192.0.2.7/tcp/4001/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/p2p-circuit", "peer/" + p.String()},
	} {
		if got := addrKey(ma.StringCast(c.addr), p); got != c.want {
			t.Errorf("%s: key %q, want %q", c.addr, got, c.want)
		}
	}
}
