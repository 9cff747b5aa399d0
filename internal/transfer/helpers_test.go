package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/manifest"
)

// testKeyBits: tests use a 1024-bit BBS modulus (with Config.MinModulusBits
// set to match on both sides) because 2048-bit keys take seconds to make;
// it is generated once per test binary. TestGet2048BitKey uses a full
// 2048-bit key with the production minimum.
const testKeyBits = 1024

var (
	keyOnce sync.Once
	testKey *bbsaes.Key
	key2048 = sync.OnceValue(func() *bbsaes.Key {
		k, err := bbsaes.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func bbsKey(tb testing.TB) *bbsaes.Key {
	keyOnce.Do(func() {
		k, err := bbsaes.GenerateKey(rand.Reader, testKeyBits)
		if err != nil {
			tb.Fatal(err)
		}
		testKey = k
	})
	return testKey
}

// newHost starts a libp2p host listening on loopback TCP only.
func newHost(tb testing.TB, unlimited bool) host.Host {
	tb.Helper()
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(tls.ID, tls.New),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	if unlimited {
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
		if err != nil {
			tb.Fatal(err)
		}
		opts = append(opts, libp2p.ResourceManager(rm))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// testSource serves files from a map CID -> path, like share.Service.
type testSource struct {
	mu    sync.Mutex
	files map[cid.Cid]testFile
	// only, per CID, the peers it is served to (an audience); no entry:
	// everyone.
	only map[cid.Cid]map[peer.ID]bool
}

// restrict serves c only to peers (none: to no one).
func (s *testSource) restrict(c cid.Cid, peers ...peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.only == nil {
		s.only = make(map[cid.Cid]map[peer.ID]bool)
	}
	s.only[c] = make(map[peer.ID]bool)
	for _, p := range peers {
		s.only[c][p] = true
	}
}

type testFile struct {
	m     *manifest.Manifest
	path  string
	size  int64
	mtime time.Time
}

type notServedError struct{}

func (notServedError) Error() string { return "not published" }

// changedError is what share.Service answers for a file whose size or
// mtime differ from when it was published.
type changedError struct{}

func (changedError) Error() string { return "file changed since it was published" }
func (changedError) Changed() bool { return true }

func (s *testSource) Open(c cid.Cid, p peer.ID) (*manifest.Manifest, *os.File, error) {
	s.mu.Lock()
	f, ok := s.files[c]
	if only, restricted := s.only[c]; restricted && !only[p] {
		ok = false // like share: as if not published
	}
	s.mu.Unlock()
	if !ok {
		return nil, nil, notServedError{}
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, nil, err
	}
	// Like share.Service.Open: size and mtime must be those recorded at
	// publish time.
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	if fi.Size() != f.size || !fi.ModTime().Equal(f.mtime) {
		fh.Close()
		return nil, nil, changedError{}
	}
	return f.m, fh, nil
}

func (s *testSource) add(tb testing.TB, path string, chunkSize int) cid.Cid {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	m, err := manifest.Build(context.Background(), f, fi.Size(), chunkSize)
	if err != nil {
		tb.Fatal(err)
	}
	s.mu.Lock()
	if s.files == nil {
		s.files = make(map[cid.Cid]testFile)
	}
	s.files[m.CID()] = testFile{m: m, path: path, size: fi.Size(), mtime: fi.ModTime()}
	s.mu.Unlock()
	return m.CID()
}

// staticFinder returns a fixed provider list; the list can change.
type staticFinder struct {
	mu    sync.Mutex
	peers []peer.AddrInfo
	calls int
}

func (f *staticFinder) FindProviders(ctx context.Context, c cid.Cid) <-chan peer.AddrInfo {
	f.mu.Lock()
	ps := append([]peer.AddrInfo(nil), f.peers...)
	f.calls++
	f.mu.Unlock()
	ch := make(chan peer.AddrInfo, len(ps))
	for _, p := range ps {
		ch <- p
	}
	close(ch)
	return ch
}

func (f *staticFinder) set(ps ...peer.AddrInfo) {
	f.mu.Lock()
	f.peers = ps
	f.mu.Unlock()
}

func addrInfo(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// node is one test node: host, service, its source and download folder.
type node struct {
	h    host.Host
	svc  *Service
	src  *testSource
	csrc *collSource // newCollNode: the source, which publishes collections
	fnd  *staticFinder
	dir  string
}

type nodeOpt func(*Config)

func newNode(tb testing.TB, opts ...nodeOpt) *node {
	tb.Helper()
	return newNodeOn(tb, newHost(tb, false), opts...)
}

// newNodeOn is newNode on the host h.
func newNodeOn(tb testing.TB, h host.Host, opts ...nodeOpt) *node {
	tb.Helper()
	n := &node{h: h, src: &testSource{}, fnd: &staticFinder{}, dir: tb.TempDir()}
	cfg := Config{
		Host: n.h, Source: n.src, BBSKey: bbsKey(tb), Finder: n.fnd,
		DownloadDir: filepath.Join(n.dir, "downloads"), MinModulusBits: testKeyBits,
		RetryInterval: 50 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close() })
	n.svc = svc
	return n
}

// pattern returns size deterministic pseudo-random bytes.
func pattern(size int64, seed uint64) []byte {
	r := mrand.New(mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// publish writes data to a file on n and publishes it.
func (n *node) publish(tb testing.TB, name string, data []byte, chunkSize int) cid.Cid {
	tb.Helper()
	p := filepath.Join(n.dir, "share", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return n.src.add(tb, p, chunkSize)
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func checkFile(tb testing.TB, path string, want []byte) {
	tb.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		tb.Fatalf("%s: %d bytes differ from the %d bytes published", path, len(got), len(want))
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// servedLog records, per serving peer, the chunks it sent.
type servedLog struct {
	mu     sync.Mutex
	chunks map[int]int // chunk -> times served
	total  int
}

func (l *servedLog) hook(gate func(total int)) func(peer.ID, int, int) {
	return func(_ peer.ID, first, count int) {
		l.mu.Lock()
		if l.chunks == nil {
			l.chunks = make(map[int]int)
		}
		for i := first; i < first+count; i++ {
			l.chunks[i]++
		}
		l.total += count
		t := l.total
		l.mu.Unlock()
		if gate != nil {
			gate(t)
		}
	}
}

func (l *servedLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

var _ = network.DirInbound
