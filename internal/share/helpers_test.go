package share

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

const testTimeout = 15 * time.Second

// checkLeaks verifies, after every other cleanup of t, that t started no
// goroutine that outlives it. Call it first in a test.
func checkLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	opts = append(opts, goleak.IgnoreCurrent())
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// fakeRouting records Provide calls.
type fakeRouting struct {
	mu    sync.Mutex
	calls []cid.Cid
	fail  bool
	wake  chan struct{}
}

func newFakeRouting() *fakeRouting { return &fakeRouting{wake: make(chan struct{}, 1)} }

func (f *fakeRouting) Provide(_ context.Context, c cid.Cid, announce bool) error {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	fail := f.fail
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	if !announce {
		return errors.New("fake: announce=false")
	}
	if fail {
		return errors.New("fake: failed to find any peer in table")
	}
	return nil
}

func (f *fakeRouting) FindProvidersAsync(context.Context, cid.Cid, int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo)
	close(ch)
	return ch
}

func (f *fakeRouting) FindPeer(_ context.Context, p peer.ID) (peer.AddrInfo, error) {
	return peer.AddrInfo{}, errors.New("fake: no DHT lookups")
}

func (f *fakeRouting) count(c cid.Cid) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, x := range f.calls {
		if x.Equals(c) {
			n++
		}
	}
	return n
}

// waitProvided waits until c was provided at least n times.
func (f *fakeRouting) waitProvided(t *testing.T, c cid.Cid, n int) {
	t.Helper()
	deadline := time.After(testTimeout)
	for f.count(c) < n {
		select {
		case <-f.wake:
		case <-deadline:
			t.Fatalf("%s provided %d times, want at least %d", c, f.count(c), n)
		}
	}
}

// loopbackHost is a real libp2p host listening on TCP loopback only.
func loopbackHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

type testNode struct {
	h   host.Host
	ps  *pubsub.PubSub
	ds  datastore.Batching
	rt  *fakeRouting
	dir string
	cfg Config // of the running Service
	s   *Service
}

type nodeOpt func(*Config)

// newNode starts a Service on h, with GossipSub when withPubSub.
func newNode(t *testing.T, h host.Host, withPubSub bool, opts ...nodeOpt) *testNode {
	t.Helper()
	n := &testNode{h: h, ds: dssync.MutexWrap(datastore.NewMapDatastore()), rt: newFakeRouting(), dir: t.TempDir()}
	if withPubSub {
		ctx, cancel := context.WithCancel(context.Background())
		ps, err := pubsub.NewGossipSub(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		n.ps = ps
	}
	cfg := Config{
		Network:         HostNetwork(h, nil),
		Routing:         n.rt,
		Broadcast:       GossipSub(n.ps),
		Datastore:       n.ds,
		ShareDir:        n.dir,
		ChunkSize:       1024,
		CatalogInterval: time.Hour, // pulls only on connect and Refresh
		// Tests that change published files check Open's own detection;
		// watch_test.go turns the watcher on.
		OnChange: OnChangeIgnore,
		Logger:   slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	n.start(t, cfg)
	return n
}

func (n *testNode) start(t *testing.T, cfg Config) {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	n.s, n.cfg = s, cfg
}

func (n *testNode) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) publish(t *testing.T, name, content string) Entry {
	t.Helper()
	n.write(t, name, content)
	res, err := n.s.Publish(context.Background(), name)
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	if len(res) != 1 || res[0].Already {
		t.Fatalf("publish %s: %+v", name, res)
	}
	return res[0].Entry
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// waitView waits on s.Changes until cond holds for s.Available().
func waitView(t *testing.T, s *Service, what string, cond func([]Remote) bool) []Remote {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		ch := s.Changes()
		av := s.Available()
		if cond(av) {
			return av
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; Available = %v", what, av)
		}
	}
}

// pubsubTopic is n's announce topic.
func pubsubTopic(n *testNode) *pubsub.Topic { return n.s.topic.(*gossipTopic).t }

// waitTopicPeers polls (with a deadline) until n's announce topic has
// every peer in ps, so a message published now reaches them.
func waitTopicPeers(t *testing.T, n *testNode, ps ...peer.ID) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		have := pubsubTopic(n).ListPeers()
		ok := true
		for _, p := range ps {
			if !slices.Contains(have, p) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("announce topic of %s has peers %v, want %v", n.h.ID(), have, ps)
		}
		<-tick.C
	}
	waitMesh(t, n, len(ps))
}

// waitMesh waits until n's GossipSub mesh for the announce topic has k
// peers. GossipSub v0.19 drops a message published before the first
// heartbeat grafted the topic's mesh (flood publishing does not cover
// it), so tests that count on an announcement wait for the mesh. Pubsub
// exposes no mesh query; a publish WithReadiness waits for it, and the
// probe (not an Announcement) is then refused by our own validator, so
// nothing is sent.
func waitMesh(t *testing.T, n *testNode, k int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ready := func(rt pubsub.PubSubRouter, topic string) (bool, error) { return rt.EnoughPeers(topic, k), nil }
	err := pubsubTopic(n).Publish(ctx, []byte{0xff}, pubsub.WithReadiness(ready))
	var verr pubsub.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("waiting for the announce mesh of %s to reach %d peers: %v", n.h.ID(), k, err)
	}
}

func hasCID(av []Remote, c cid.Cid) bool {
	return slices.ContainsFunc(av, func(r Remote) bool { return r.CID.Equals(c) })
}

func findCID(av []Remote, c cid.Cid) (Remote, bool) {
	i := slices.IndexFunc(av, func(r Remote) bool { return r.CID.Equals(c) })
	if i < 0 {
		return Remote{}, false
	}
	return av[i], true
}

// pollUntil polls cond until it holds or the test deadline passes.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// testWriter sends log lines to t.Log (shown for failed tests and -v),
// and drops them once the test's cleanups ran: a libp2p stream handler may
// still log after the Service closed, and t.Log after the test panics.
type testWriter struct {
	t    *testing.T
	mu   *sync.Mutex
	done *bool
}

func newTestWriter(t *testing.T) testWriter {
	w := testWriter{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() { w.mu.Lock(); *w.done = true; w.mu.Unlock() })
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// someone is a fetcher that is not this node: public entries are served
// to anyone.
const someone = peer.ID("someone")
