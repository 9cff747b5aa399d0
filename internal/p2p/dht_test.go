package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// A provider record published by one node is found by a node that has
// never been connected to it, through a sparse network of real hosts on
// 127.0.0.1: twelve nodes in a ring (each dials only its successor), and
// a fetcher F that joins after the publication through a newcomer G
// attached to the far side of the ring, so F's lookup takes at least two
// hops and starts from a node that holds no record.
func TestDHTProviderLookup(t *testing.T) {
	checkLeaks(t)
	const (
		ringSize   = 12
		bucketSize = 4
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	cfg := func() Config {
		c := testConfig(t, t.TempDir())
		c.DHTOptions = []dht.Option{
			// No background refresh: the only lookups are the ones under
			// test, so who is connected to whom stays what the test built.
			dht.DisableAutoRefresh(),
			// Records go to the bucketSize peers closest to the key, so
			// most nodes hold none and the fetcher must walk to them.
			dht.BucketSize(bucketSize),
			// A lookup stops once the beta closest peers it has heard of
			// answered. In a sparse ring whose routing tables never
			// refresh, the default (3) stops at a local minimum (seen: the
			// publisher's records on one half of the ring, the fetcher's
			// walk on the other). Beta above the node count makes every
			// lookup walk on until it reaches the true closest peers.
			dht.Resiliency(ringSize + 2),
		}
		return c
	}
	connect := func(from, to *Node) {
		t.Helper()
		if _, err := from.Connect(ctx, p2pAddr(t, to)); err != nil {
			t.Fatalf("connect %s -> %s: %v", from.ID(), to.ID(), err)
		}
	}

	ring := make([]*Node, ringSize)
	for i := range ring {
		ring[i] = openNode(t, cfg())
	}
	for i := range ring {
		connect(ring[i], ring[(i+1)%ringSize])
	}
	for i, n := range ring {
		poll(t, ctx, "ring routing tables", func() bool { return n.DHT().RoutingTable().Size() >= 2 })
		if got := n.DHT().RoutingTable().Size(); got > 2 {
			t.Fatalf("ring node %d has %d routing-table peers before any lookup, want 2", i, got)
		}
	}

	key := cid.NewCidV1(cid.Raw, mustSum(t, "p2pshare dht provider test"))
	pub := ring[0]
	// Provide directly (kad-dht issue 1263: the sweeping reprovider can
	// drop keys in tiny networks).
	if err := pub.DHT().Provide(ctx, key, true); err != nil {
		t.Fatalf("Provide: %v", err)
	}

	holders := 0
	for _, n := range ring {
		if local, _ := n.DHT().ProviderStore().GetProviders(ctx, key.Hash()); len(local) > 0 {
			holders++
		}
	}
	if holders >= ringSize/2 {
		t.Fatalf("%d of %d ring nodes hold the record: the lookup would not need to walk", holders, ringSize)
	}

	g := openNode(t, cfg())
	connect(g, ring[ringSize/2])
	f := openNode(t, cfg())
	connect(f, g)
	// The DHT adds a peer to its routing table asynchronously after
	// identify: wait until the path F -> G -> ring is really in place.
	poll(t, ctx, "newcomer routing tables", func() bool {
		return f.DHT().RoutingTable().Find(g.ID()) != "" && g.DHT().RoutingTable().Find(ring[ringSize/2].ID()) != ""
	})

	// Nothing short-circuits the lookup.
	if c := f.Host().Network().Connectedness(pub.ID()); c == network.Connected {
		t.Fatal("fetcher is already connected to the publisher")
	}
	if addrs := f.Host().Peerstore().Addrs(pub.ID()); len(addrs) != 0 {
		t.Fatalf("fetcher already knows the publisher's addresses: %v", addrs)
	}
	for _, n := range []*Node{f, g} {
		if local, err := n.DHT().ProviderStore().GetProviders(ctx, key.Hash()); err != nil || len(local) != 0 {
			t.Fatalf("%s holds the provider record locally (%v, %v)", n.ID(), local, err)
		}
	}

	var found peer.AddrInfo
	for ai := range f.DHT().FindProvidersAsync(ctx, key, 1) {
		found = ai
	}
	if found.ID != pub.ID() {
		for i, n := range ring {
			local, _ := n.DHT().ProviderStore().GetProviders(ctx, key.Hash())
			t.Logf("ring[%d] %s: record=%v rt=%d", i, n.ID(), len(local) > 0, n.DHT().RoutingTable().Size())
		}
		t.Logf("G rt=%v", g.DHT().RoutingTable().ListPeers())
		t.Logf("F rt=%v conns=%v", f.DHT().RoutingTable().ListPeers(), f.Host().Network().Peers())
		t.Fatalf("FindProvidersAsync found %q, want the publisher %s", found.ID, pub.ID())
	}
	if len(found.Addrs) == 0 {
		t.Fatal("provider found without addresses")
	}

	// The returned addresses are enough to reach the publisher.
	f.Host().Peerstore().ClearAddrs(pub.ID())
	if err := f.Host().Connect(ctx, found); err != nil {
		t.Fatalf("connect to provider at %v: %v", found.Addrs, err)
	}
	waitPeer(t, ctx, f, pub.ID(), "online", isOnline)
}

func mustSum(t *testing.T, s string) multihash.Multihash {
	t.Helper()
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return mh
}
