package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// openNodes starts n full nodes on loopback with mDNS off. They share one
// BBS key (made once: a 2048-bit modulus takes a while), which is harmless
// in a test and keeps it fast.
func openNodes(t *testing.T, n int) []*Node {
	t.Helper()
	return openNodesWith(t, n, nil)
}

// openNodesWith is openNodes with edit applied to node i's Config.
func openNodesWith(t *testing.T, n int, edit func(i int, c *Config)) []*Node {
	t.Helper()
	root := t.TempDir()
	keyPath := filepath.Join(root, "bbs.key")
	if _, err := bbsaes.LoadOrGenerateKey(keyPath, 2048); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*Node
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("n%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bbs.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := Config{
			DataDir:     dir,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			Keepalive:   -1,
			Logger:      slog.New(slog.DiscardHandler),
			// As in internal/p2p's lookup test: no background refresh, so
			// only the lookup under test connects anyone; small buckets so
			// most nodes hold no record; beta above the node count so a
			// lookup in this sparse, never-refreshed ring walks on to the
			// true closest peers instead of stopping at a local minimum.
			DHTOptions: []dht.Option{dht.DisableAutoRefresh(), dht.BucketSize(4), dht.Resiliency(n + 2)},
		}
		if edit != nil {
			edit(i, &cfg)
		}
		nd, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	return nodes
}

func connect(t *testing.T, ctx context.Context, a, b *Node) {
	t.Helper()
	addrs := b.P2P.Addrs()
	if len(addrs) == 0 {
		t.Fatal("node has no addresses")
	}
	if _, err := a.P2P.Connect(ctx, addrs[0]); err != nil {
		t.Fatal(err)
	}
}

// A file published on one node is fetched by a node that has never talked
// to it: the provider is found through DHT routing alone, then dialled, and
// the download is verified. Same topology as internal/p2p's lookup test: a
// ring of 12 nodes holds the provider record; the fetcher F joins later
// through G, which is connected to one ring node only, and background
// routing-table refresh is off, so nothing but the lookup connects F to the
// publisher.
func TestGetFromProviderFoundThroughDHT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 12
	nodes := openNodes(t, n+2)
	ring, g, fetch := nodes[:n], nodes[n], nodes[n+1]
	for i := range n {
		connect(t, ctx, ring[i], ring[(i+1)%n])
	}
	pub := ring[0]
	pubID := pub.P2P.Host().ID()

	data := make([]byte, 3<<20+1234)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(pub.Config.ShareDir, "far.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := pub.Share.Publish(ctx, "far.bin")
	if err != nil {
		t.Fatal(err)
	}
	c := res[0].Entry.CID
	// Publish provides in the background: wait until a ring node other than
	// the publisher holds the record.
	poll(t, ctx, "provider record stored in the ring", func() bool {
		for _, nd := range ring[1:] {
			if ps, err := nd.P2P.DHT().ProviderStore().GetProviders(ctx, c.Hash()); err == nil && len(ps) > 0 {
				return true
			}
		}
		return false
	})

	connect(t, ctx, g, ring[n/2])
	connect(t, ctx, fetch, g)
	poll(t, ctx, "newcomer routing tables", func() bool {
		return fetch.P2P.DHT().RoutingTable().Find(g.P2P.Host().ID()) != "" &&
			g.P2P.DHT().RoutingTable().Find(ring[n/2].P2P.Host().ID()) != ""
	})
	if fetch.P2P.Host().Network().Connectedness(pubID) == network.Connected {
		t.Fatal("fetcher already connected to the publisher")
	}
	if len(fetch.P2P.Host().Peerstore().Addrs(pubID)) != 0 {
		t.Fatal("fetcher already knows the publisher's addresses")
	}
	if len(fetch.Share.Providers(c)) != 0 {
		t.Fatal("fetcher already knows the publisher from announcements")
	}

	got, err := fetch.Transfer.Get(ctx, c, transfer.GetOptions{Name: "far.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Providers) != 1 || got.Providers[0] != pubID {
		t.Fatalf("fetched from %v, want the publisher %s", got.Providers, pubID)
	}
	b, err := os.ReadFile(got.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data) {
		t.Fatal("downloaded file differs")
	}
}

// poll checks cond every 20 ms until it holds or ctx ends.
func poll(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for: %s", what)
		case <-tick.C:
		}
	}
}
