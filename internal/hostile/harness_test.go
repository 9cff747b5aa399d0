package hostile

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// bbsKey is one 2048-bit BBS key for every node of the package's tests
// (making a modulus takes a while; sharing it is harmless in a test).
var (
	bbsKeyOnce sync.Once
	bbsKeyFile []byte
	bbsKeyErr  error
)

func sharedBBSKey(t testing.TB) []byte {
	t.Helper()
	bbsKeyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hostile-bbs")
		if err != nil {
			bbsKeyErr = err
			return
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "bbs.key")
		if _, bbsKeyErr = bbsaes.LoadOrGenerateKey(p, 2048); bbsKeyErr == nil {
			bbsKeyFile, bbsKeyErr = os.ReadFile(p)
		}
	})
	if bbsKeyErr != nil {
		t.Fatal(bbsKeyErr)
	}
	return bbsKeyFile
}

// newNode starts a real p2pshare node on loopback (TCP and QUIC), mDNS
// off, keepalive as given (negative: off). Its share folder is
// <dir>/files, its downloads <dir>/downloads.
func newNode(t *testing.T, name string, mod func(*node.Config)) *node.Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bbs.key"), sharedBBSKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{
		DataDir:     dir,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		Keepalive:   -1,
		Logger:      slog.New(slog.DiscardHandler),
		DHTOptions:  []dht.Option{dht.DisableAutoRefresh()},
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// newAttacker is a plain libp2p host on loopback with a fresh identity:
// it speaks whatever the test makes it speak.
func newAttacker(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	return newAttackerAt(t, "127.0.0.1", opts...)
}

// newAttackerAt is newAttacker listening on TCP at ip, another loopback
// address: its TCP connections to other nodes then come from ip too (the
// TCP transport binds outgoing sockets to the listening address, reuseport),
// so the victim sees a peer from another IP address.
func newAttackerAt(t *testing.T, ip string, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/" + ip + "/tcp/0"),
		libp2p.DisableRelay(),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// connect dials to from a host.
func connect(t *testing.T, from host.Host, to *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.P2P.ID(), Addrs: to.P2P.Host().Addrs()}); err != nil {
		t.Fatalf("connect %s: %v", to.P2P.ID(), err)
	}
}

// publishRandom writes size random bytes to name in n's share folder and
// publishes it.
func publishRandom(t *testing.T, n *node.Node, name string, size int) (cid.Cid, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(n.Config.ShareDir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := n.Share.Publish(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Entry.CID, b
}

// mustFetch has the honest node get c from provider within d, and checks
// the bytes.
func mustFetch(t *testing.T, honest, provider *node.Node, c cid.Cid, want []byte, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("fetched-%s", c))
	res, err := honest.Transfer.Get(ctx, c, transfer.GetOptions{
		Output: out,
		Hints:  []peer.AddrInfo{{ID: provider.P2P.ID(), Addrs: provider.P2P.Host().Addrs()}},
		From:   []peer.ID{provider.P2P.ID()},
	})
	if err != nil {
		t.Fatalf("honest get of %s from %s: %v", c, provider.P2P.ID(), err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("honest get: content differs")
	}
}

// heapInUse is the Go heap in use after a collection: the memory a test
// bounds (the victim runs in the test process).
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func TestHarness(t *testing.T) {
	provider := newNode(t, "provider", nil)
	honest := newNode(t, "honest", nil)
	c, b := publishRandom(t, provider, "a.bin", 3<<20+5)
	mustFetch(t, honest, provider, c, b, 30*time.Second)
}
