package hostile

import (
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// blackHole is a loopback TCP address that completes TCP handshakes (the
// kernel does, into the listen backlog) and never says anything more: a
// libp2p dial to it hangs until its timeout.
func blackHole(t *testing.T) multiaddr.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Class 5, peer table: throwaway identities that identify as p2pshare
// peers, advertise an address that swallows dials (and an unspecified
// one, which would reach the victim itself), and go away. The table stays
// within its bound, keeps the peer the victim exchanged files with, records
// no unspecified address, and keeps pinging that peer every interval
// however many black holes are due.
func TestPeerTableFlood(t *testing.T) {
	const maxPeers, identities = 40, 80
	const interval = 500 * time.Millisecond
	victim := newNode(t, "victim", func(c *node.Config) {
		c.MaxPeers = maxPeers
		c.Keepalive = interval
	})
	honest := newNode(t, "honest", nil)
	c, data := publishRandom(t, victim, "a.bin", 1<<20+7)
	mustFetch(t, honest, victim, c, data, 30*time.Second)
	// The victim's keepalive sees the honest node's fetch session.
	waitFor(t, 10*time.Second, "the honest peer to count as one we exchange files with", func() bool {
		p, ok := victim.P2P.Peers().Get(honest.P2P.ID())
		return ok && !p.LastExchange.IsZero()
	})
	heapBefore := heapInUse()

	hole := blackHole(t)
	unspecified := multiaddr.StringCast("/ip4/0.0.0.0/tcp/1")
	kad := protocol.ID(proto.Prefix + "/kad/1.0.0")
	maxRows := 0
	for range identities {
		a := newAttacker(t, libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
			libp2p.AddrsFactory(func([]multiaddr.Multiaddr) []multiaddr.Multiaddr {
				return []multiaddr.Multiaddr{hole, unspecified}
			}))
		a.SetStreamHandler(kad, func(s network.Stream) { s.Reset() }) // identify lists it: a p2pshare peer
		connect(t, a, victim)
		waitFor(t, 10*time.Second, "the identity in the victim's table", func() bool {
			_, ok := victim.P2P.Peers().Get(a.ID())
			return ok
		})
		maxRows = max(maxRows, victim.P2P.Peers().Len())
		a.Close() // gone: only the black hole is left to dial
	}

	// The honest peer is pinged every interval while the black holes are
	// due: count its LastSeen advancing over ten intervals.
	last := func() time.Time {
		p, _ := victim.P2P.Peers().Get(honest.P2P.ID())
		return p.LastSeen
	}
	advances, prev := 0, last()
	end := time.Now().Add(10 * interval)
	for time.Now().Before(end) {
		if l := last(); !l.Equal(prev) {
			advances++
			prev = l
		}
		maxRows = max(maxRows, victim.P2P.Peers().Len())
		time.Sleep(20 * time.Millisecond) // sampling, not synchronisation
	}
	heapAfter := heapInUse()
	rows := victim.P2P.Peers().List()
	t.Logf("%d throwaway identities: table at most %d rows (bound %d); honest peer pinged %d times in %v (interval %v)",
		identities, maxRows, maxPeers, advances, 10*interval, interval)
	t.Logf("heap in use: %d MiB before, %d MiB after", heapBefore>>20, heapAfter>>20)

	if maxRows > maxPeers {
		t.Errorf("peer table reached %d rows; bound %d", maxRows, maxPeers)
	}
	if _, ok := victim.P2P.Peers().Get(honest.P2P.ID()); !ok {
		t.Error("the peer the victim exchanged files with was evicted")
	}
	for _, p := range rows {
		for _, a := range p.Addrs {
			if manet.IsIPUnspecified(a) {
				t.Errorf("peer %s recorded at unspecified address %s", p.ID, a)
			}
		}
	}
	if advances < 5 {
		t.Errorf("honest peer pinged %d times in %v; want at least 5 (one per interval, black holes notwithstanding)", advances, 10*interval)
	}
	if heapAfter > heapBefore+32<<20 {
		t.Errorf("heap grew by %d MiB; want at most 32 MiB", (heapAfter-heapBefore)>>20)
	}
}
