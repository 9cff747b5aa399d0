package invite

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

const testTimeout = 20 * time.Second

// checkLeaks verifies, after every other cleanup of t, that t started no
// goroutine that outlives it. Call it first in a test.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
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

// connect connects a to b and waits for identify, so each knows the
// other's protocols.
func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "identify both ways", func() bool {
		pa, _ := a.Peerstore().GetProtocols(b.ID())
		pb, _ := b.Peerstore().GetProtocols(a.ID())
		return len(pa) > 0 && len(pb) > 0
	})
}

func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// contact is one AddContact call.
type contact struct {
	p           peer.ID
	nick, group string
}

// fakeContacts records AddContact calls; refuse, if set, is CheckContact's
// answer.
type fakeContacts struct {
	mu     sync.Mutex
	added  []contact
	refuse error
}

func (f *fakeContacts) AddContact(p peer.ID, nick, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, contact{p, nick, group})
	return nil
}

func (f *fakeContacts) CheckContact(nick, group string) error { return f.refuse }

func (f *fakeContacts) list() []contact {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.added)
}

// clock is a test clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeRouting is a shared in-memory DHT: Provide records the provider's
// current addresses under the key.
type fakeRouting struct {
	h      host.Host // the host this view belongs to
	shared *fakeDHT
}

type fakeDHT struct {
	mu        sync.Mutex
	providers map[cid.Cid][]peer.AddrInfo
	provided  chan cid.Cid
}

func newFakeDHT() *fakeDHT {
	return &fakeDHT{providers: map[cid.Cid][]peer.AddrInfo{}, provided: make(chan cid.Cid, 16)}
}

func (d *fakeDHT) view(h host.Host) *fakeRouting { return &fakeRouting{h: h, shared: d} }

func (f *fakeRouting) Provide(_ context.Context, c cid.Cid, _ bool) error {
	d := f.shared
	d.mu.Lock()
	d.providers[c] = append(d.providers[c], peer.AddrInfo{ID: f.h.ID(), Addrs: f.h.Addrs()})
	d.mu.Unlock()
	d.provided <- c
	return nil
}

func (f *fakeRouting) FindProvidersAsync(ctx context.Context, c cid.Cid, _ int) <-chan peer.AddrInfo {
	d := f.shared
	d.mu.Lock()
	found := slices.Clone(d.providers[c])
	d.mu.Unlock()
	out := make(chan peer.AddrInfo, len(found))
	for _, ai := range found {
		out <- ai
	}
	close(out)
	return out
}

// node is a host with a Service.
type node struct {
	h        host.Host
	s        *Service
	contacts *fakeContacts
	mu       sync.Mutex
	recorded []peer.ID
}

func (n *node) records() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.recorded)
}

type opt func(*Config)

func newNode(t *testing.T, opts ...opt) *node {
	t.Helper()
	n := &node{h: loopbackHost(t), contacts: &fakeContacts{}}
	level := slog.LevelWarn
	if os.Getenv("INVITE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	var w io.Writer = testWriter{t}
	cfg := Config{
		Host:     n.h,
		Contacts: n.contacts,
		Record: func(_ context.Context, p peer.ID) error {
			n.mu.Lock()
			n.recorded = append(n.recorded, p)
			n.mu.Unlock()
			return nil
		},
		Logger:      slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})),
		acceptRound: 50 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n.s = s
	return n
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// accept runs Accept with a short deadline.
func (n *node) accept(t *testing.T, code, nick string, d time.Duration) (AcceptResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return n.s.Accept(ctx, code, nick)
}

// invite creates an invitation or fails the test.
func (n *node) invite(t *testing.T, o Options) Invite {
	t.Helper()
	inv, err := n.s.Create(o)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// get returns the inviter's view of one invitation.
func (n *node) get(t *testing.T, np string) Invite {
	t.Helper()
	for _, inv := range n.s.List() {
		if inv.Nameplate == np {
			return inv
		}
	}
	t.Fatalf("invitation %s not listed", np)
	return Invite{}
}

// wrongCode is code with its last word changed.
func wrongCode(t *testing.T, code string) string {
	t.Helper()
	c, err := ParseCode(code)
	if err != nil {
		t.Fatal(err)
	}
	i := wordIndex[c.Words[CodeWords-1]]
	c.Words[CodeWords-1] = wordList[(i+1)%len(wordList)]
	return c.String()
}
