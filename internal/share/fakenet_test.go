package share

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/multiformats/go-multiaddr"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// fakeNet is a Network, Routing and Broadcast in memory, with no libp2p
// host: it records what share asks of the network and answers lookups
// from its maps.
type fakeNet struct {
	id  peer.ID
	bus event.Bus

	mu        sync.Mutex
	handlers  map[protocol.ID]network.StreamHandler
	provided  []cid.Cid
	sent      [][]byte // messages published on the topic
	addrs     map[peer.ID][]multiaddr.Multiaddr
	dhtPeers  map[peer.ID]peer.AddrInfo   // FindPeer
	dhtProvs  map[cid.Cid][]peer.AddrInfo // FindProvidersAsync
	topic     *fakeTopic
	wake      chan struct{} // a provide or a publish happened
	findPeers []peer.ID     // FindPeer calls
}

func newFakeNet(t testing.TB) *fakeNet {
	return &fakeNet{
		id:       randPeer(t),
		bus:      eventbus.NewBus(),
		handlers: make(map[protocol.ID]network.StreamHandler),
		addrs:    make(map[peer.ID][]multiaddr.Multiaddr),
		dhtPeers: make(map[peer.ID]peer.AddrInfo),
		dhtProvs: make(map[cid.Cid][]peer.AddrInfo),
		wake:     make(chan struct{}, 1),
	}
}

func (f *fakeNet) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds (checked under f.mu after every provide
// or publish).
func (f *fakeNet) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.wake:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// Network

func (f *fakeNet) ID() peer.ID { return f.id }
func (f *fakeNet) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[pid] = h
}
func (f *fakeNet) RemoveStreamHandler(pid protocol.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.handlers, pid)
}
func (f *fakeNet) NewStream(context.Context, peer.ID, ...protocol.ID) (network.Stream, error) {
	return nil, errors.New("fake network: no streams")
}
func (f *fakeNet) ConnectedPeers(protocol.ID) []peer.ID { return nil }
func (f *fakeNet) Online(peer.ID) bool                  { return true }
func (f *fakeNet) Addrs(p peer.ID) []multiaddr.Multiaddr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs[p]
}
func (f *fakeNet) EventBus() event.Bus { return f.bus }

// Routing

func (f *fakeNet) Provide(_ context.Context, c cid.Cid, _ bool) error {
	f.mu.Lock()
	f.provided = append(f.provided, c)
	f.mu.Unlock()
	f.signal()
	return nil
}
func (f *fakeNet) FindProvidersAsync(_ context.Context, c cid.Cid, _ int) <-chan peer.AddrInfo {
	f.mu.Lock()
	ps := f.dhtProvs[c]
	f.mu.Unlock()
	ch := make(chan peer.AddrInfo, len(ps))
	for _, ai := range ps {
		ch <- ai
	}
	close(ch)
	return ch
}
func (f *fakeNet) FindPeer(_ context.Context, p peer.ID) (peer.AddrInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.findPeers = append(f.findPeers, p)
	if ai, ok := f.dhtPeers[p]; ok {
		return ai, nil
	}
	return peer.AddrInfo{}, errors.New("fake DHT: peer not found")
}

// Broadcast

func (f *fakeNet) Join(_ string, validate Validator) (Topic, error) {
	t := &fakeTopic{f: f, validate: validate, in: make(chan fakeMsg, 16), closed: make(chan struct{})}
	f.mu.Lock()
	f.topic = t
	f.mu.Unlock()
	return t, nil
}

type fakeMsg struct {
	origin peer.ID
	val    any
}

type fakeTopic struct {
	f         *fakeNet
	validate  Validator
	in        chan fakeMsg
	closed    chan struct{}
	closeOnce sync.Once
}

// Publish validates data as our own message and records it.
func (t *fakeTopic) Publish(_ context.Context, data []byte) error {
	if _, err := t.validate(t.f.id, t.f.id, data); err != nil {
		return err
	}
	t.f.mu.Lock()
	t.f.sent = append(t.f.sent, data)
	t.f.mu.Unlock()
	t.f.signal()
	return nil
}

// receive delivers a message signed by origin, as if from the network.
func (t *fakeTopic) receive(origin peer.ID, data []byte) error {
	val, err := t.validate(origin, origin, data)
	if err != nil {
		return err
	}
	t.in <- fakeMsg{origin, val}
	return nil
}

func (t *fakeTopic) Next(ctx context.Context) (peer.ID, any, error) {
	select {
	case m := <-t.in:
		return m.origin, m.val, nil
	case <-ctx.Done():
		return "", nil, ctx.Err()
	case <-t.closed:
		return "", nil, errors.New("fake topic closed")
	}
}

func (t *fakeTopic) Close() error {
	t.closeOnce.Do(func() { close(t.closed) })
	return nil
}

// newFakeService starts a Service on f.
func newFakeService(t *testing.T, f *fakeNet) *Service {
	t.Helper()
	s, err := New(context.Background(), Config{
		Network:         f,
		Routing:         f,
		Broadcast:       f,
		Datastore:       dssync.MutexWrap(datastore.NewMapDatastore()),
		ShareDir:        t.TempDir(),
		ChunkSize:       1024,
		CatalogInterval: time.Hour,
		OnChange:        OnChangeIgnore,
		Logger:          slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// The Library reaches the network only through the interfaces: a publish
// provides the CID and announces the entry; a withdrawal announces it.
func TestLibraryOnFakeNetwork(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	s := newFakeService(t, f)
	f.mu.Lock()
	_, serving := f.handlers[proto.CatalogID]
	f.mu.Unlock()
	if !serving {
		t.Fatal("the Library does not serve the catalog protocol")
	}

	n := &testNode{dir: s.ShareDir(), s: s}
	e := n.publish(t, "song.ogg", "la la la")
	f.waitFor(t, "the CID is provided", func() bool { return slices.Contains(f.provided, e.CID) })

	// announcements returns the parsed announcements sent so far.
	announcements := func() []*announcement {
		var out []*announcement
		for _, data := range f.sent {
			a, err := parseAnnouncement(data)
			if err != nil {
				t.Errorf("sent a malformed announcement: %v", err)
				continue
			}
			out = append(out, a)
		}
		return out
	}
	f.waitFor(t, "the publish is announced", func() bool {
		return slices.ContainsFunc(announcements(), func(a *announcement) bool {
			if a.kind != proto.Announcement_PUBLISH || len(a.entries) != 1 {
				return false
			}
			got := a.entries[0]
			return got.CID.Equals(e.CID) && got.Name == e.Name && got.Size == e.Size && got.SHA256 == e.SHA256
		})
	})

	if _, err := s.Unpublish(context.Background(), "song.ogg"); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "the withdrawal is announced", func() bool {
		return slices.ContainsFunc(announcements(), func(a *announcement) bool {
			return a.kind == proto.Announcement_UNPUBLISH && slices.Equal(a.cids, []cid.Cid{e.CID})
		})
	})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	_, serving = f.handlers[proto.CatalogID]
	f.mu.Unlock()
	if serving {
		t.Fatal("the catalog is still served after Close")
	}
}

// The Directory learns of providers from announcements, and
// FindProviders gives them first (looking up the addresses of one we never
// met on the DHT), then the DHT's own, each once, never this node.
func TestDirectoryFindProvidersOnFakeNetwork(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	s := newFakeService(t, f)
	c := manifest.CIDOf([]byte("a manifest"))
	known, stranger, dhtOnly := randPeer(t), randPeer(t), randPeer(t)
	addr := func(s string) []multiaddr.Multiaddr { return []multiaddr.Multiaddr{multiaddr.StringCast(s)} }
	f.mu.Lock()
	f.addrs[known] = addr("/ip4/127.0.0.1/tcp/4001")
	f.dhtPeers[stranger] = peer.AddrInfo{ID: stranger, Addrs: addr("/ip4/127.0.0.1/tcp/4002")}
	f.dhtProvs[c] = []peer.AddrInfo{
		{ID: dhtOnly, Addrs: addr("/ip4/127.0.0.1/tcp/4003")},
		{ID: known, Addrs: f.addrs[known]}, // already given: not again
		{ID: f.id},                         // this node: never a provider
	}
	topic := f.topic
	f.mu.Unlock()

	for i, p := range []peer.ID{known, stranger} {
		m, err := gproto.Marshal(&proto.Announcement{Kind: proto.Announcement_PUBLISH, TimeUnixNano: int64(i + 1),
			Entries: []*proto.CatalogEntry{{Name: "a.txt", Cid: c.Bytes(), Sha256: make([]byte, 32), ChunkSize: 1024, Size: 10}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := topic.receive(p, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := topic.receive(randPeer(t), []byte{0xff}); err == nil {
		t.Fatal("the Directory's validator accepted garbage")
	}
	waitView(t, s, "both announced providers", func(av []Remote) bool {
		return len(av) == 1 && len(av[0].Providers) == 2
	})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var got []peer.ID
	for ai := range s.Directory.FindProviders(ctx, c) {
		if len(ai.Addrs) == 0 {
			t.Errorf("provider %s without addresses", ai.ID)
		}
		got = append(got, ai.ID)
	}
	announced := []peer.ID{known, stranger}
	slices.SortFunc(announced, func(a, b peer.ID) int { return strings.Compare(string(a), string(b)) })
	if want := append(announced, dhtOnly); !slices.Equal(got, want) {
		t.Fatalf("FindProviders = %v, want %v (announced, by ID as both are online and name the file alike, then the DHT's)", got, want)
	}
	f.mu.Lock()
	lookups := slices.Clone(f.findPeers)
	f.mu.Unlock()
	if !slices.Equal(lookups, []peer.ID{stranger}) {
		t.Fatalf("DHT FindPeer calls %v, want only the provider without addresses %s", lookups, stranger)
	}

	// `get` by a CID nobody announced still fetches it (providers may be
	// on the DHT); by an unknown name it fails.
	unknown := manifest.CIDOf([]byte("nobody announced this"))
	if r, err := s.ResolveFetch(unknown.String()); err != nil || !r.CID.Equals(unknown) || r.Name != "" {
		t.Fatalf("ResolveFetch(unknown CID) = %+v, %v", r, err)
	}
	if r, err := s.ResolveFetch("a.txt"); err != nil || !r.CID.Equals(c) || r.Name != "a.txt" {
		t.Fatalf("ResolveFetch(name) = %+v, %v", r, err)
	}
	if _, err := s.ResolveFetch("no such file"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ResolveFetch(unknown name) = %v, want ErrNotFound", err)
	}
}

// Once Close waits, no goroutine starts: an announcement racing Close
// must not Add to a WaitGroup being waited on.
func TestTasksRefuseAfterWait(t *testing.T) {
	var ts tasks
	ran := make(chan struct{})
	if !ts.Go(func() { close(ran) }) {
		t.Fatal("Go refused before Wait")
	}
	ts.Wait()
	select {
	case <-ran:
	default:
		t.Fatal("Wait returned before the task ended")
	}
	if ts.Go(func() { t.Error("task started after Wait") }) {
		t.Fatal("Go accepted a task after Wait")
	}
}
