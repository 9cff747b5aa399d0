package share

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// recBroadcast records every message that passes a node's topic
// validator: those it publishes and those it receives.
type recBroadcast struct {
	inner Broadcast
	mu    sync.Mutex
	seen  [][]byte
}

func (r *recBroadcast) Join(topic string, validate Validator) (Topic, error) {
	return r.inner.Join(topic, func(origin, via peer.ID, data []byte) (any, error) {
		r.mu.Lock()
		r.seen = append(r.seen, bytes.Clone(data))
		r.mu.Unlock()
		return validate(origin, via, data)
	})
}

// carries reports whether any message seen holds b.
func (r *recBroadcast) carries(b []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.seen, func(m []byte) bool { return bytes.Contains(m, b) })
}

func recording(r *recBroadcast) nodeOpt {
	return func(c *Config) { r.inner = c.Broadcast; c.Broadcast = r }
}

func withGroups(g *Groups, changes *atomic.Int32) nodeOpt {
	return func(c *Config) {
		c.Audience = g
		c.OnAudienceChange = func() { changes.Add(1) }
	}
}

// trio is A (the publisher), B and C, all connected, on one topic.
type trio struct {
	a, b, c        *testNode
	recA, recC     *recBroadcast
	groups         *Groups
	audienceEvents atomic.Int32
}

func newTrio(t *testing.T) *trio {
	t.Helper()
	x := &trio{recA: &recBroadcast{}, recC: &recBroadcast{}, groups: &Groups{}}
	x.a = newNode(t, loopbackHost(t), true, recording(x.recA), withGroups(x.groups, &x.audienceEvents))
	x.b = newNode(t, loopbackHost(t), true)
	x.c = newNode(t, loopbackHost(t), true, recording(x.recC))
	connect(t, x.b.h, x.a.h)
	connect(t, x.c.h, x.a.h)
	connect(t, x.c.h, x.b.h)
	waitTopicPeers(t, x.a, x.b.h.ID(), x.c.h.ID())
	waitTopicPeers(t, x.c, x.a.h.ID())
	return x
}

func (n *testNode) publishTo(t *testing.T, aud Audience, names ...string) []PublishResult {
	t.Helper()
	res, err := n.s.PublishWith(context.Background(), PublishOptions{Audience: &aud}, names...)
	if err != nil {
		t.Fatalf("publish %v to %s: %v", names, aud, err)
	}
	return res
}

func hasWire(resp *proto.CatalogResponse, c cid.Cid) bool {
	return slices.ContainsFunc(resp.GetEntries(), func(e *proto.CatalogEntry) bool { return bytes.Equal(e.GetCid(), c.Bytes()) })
}

// sameRefusal checks that Open of c by p fails exactly as Open of a CID
// nobody publishes: the refusal says nothing about c.
func sameRefusal(t *testing.T, n *testNode, c cid.Cid, p peer.ID) {
	t.Helper()
	_, _, err := n.s.Open(c, p)
	unknown := manifest.CIDOf([]byte("a CID nobody publishes"))
	_, _, uerr := n.s.Open(unknown, p)
	if err == nil || !errors.Is(err, ErrNotPublished) || isChangedErr(err) {
		t.Fatalf("Open(restricted, outsider) = %v, want ErrNotPublished", err)
	}
	if got, want := strings.ReplaceAll(err.Error(), c.String(), "X"), strings.ReplaceAll(uerr.Error(), unknown.String(), "X"); got != want {
		t.Fatalf("refusal %q differs from the unknown CID's %q", got, want)
	}
}

func isChangedErr(err error) bool {
	var ch interface{ Changed() bool }
	return errors.As(err, &ch) && ch.Changed()
}

// A file published to B: B sees it (directed announcement, catalog) and
// may open it; C sees it nowhere (not in its view after a catalog pull,
// not in A's catalog answer to C, not on the topic), cannot open it, and
// it is not provided on the DHT. A public file published at the same time
// reaches C, so C was listening.
func TestAudienceRestrictedEntry(t *testing.T) {
	checkLeaks(t)
	x := newTrio(t)
	a, b, c := x.a, x.b, x.c
	a.write(t, "secret.txt", "for B only")
	sec := x.a.publishTo(t, Audience{Peers: []peer.ID{b.h.ID()}}, "secret.txt")[0].Entry
	pub := a.publish(t, "public.txt", "for everyone")
	if !slices.Equal(sec.Audience.Peers, []peer.ID{b.h.ID()}) {
		t.Fatalf("entry audience %v", sec.Audience)
	}

	waitView(t, b.s, "secret and public on B", func(av []Remote) bool { return hasCID(av, sec.CID) && hasCID(av, pub.CID) })
	waitView(t, c.s, "public on C", func(av []Remote) bool { return hasCID(av, pub.CID) })
	if err := c.s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hasCID(c.s.Available(), sec.CID) {
		t.Fatal("C lists the file published to B")
	}
	if hasWire(a.s.catalogResponse(c.h.ID()), sec.CID) || !hasWire(a.s.catalogResponse(b.h.ID()), sec.CID) {
		t.Fatal("catalog answers not filtered by audience")
	}
	if !hasWire(a.s.catalogResponse(c.h.ID()), pub.CID) {
		t.Fatal("the public file is missing from C's catalog answer")
	}
	for _, r := range []*recBroadcast{x.recA, x.recC} {
		if r.carries(sec.CID.Bytes()) || r.carries([]byte("secret.txt")) {
			t.Fatal("the restricted entry went on the announce topic")
		}
		if !r.carries(pub.CID.Bytes()) {
			t.Fatal("the public entry did not go on the announce topic: the recorder sees nothing")
		}
	}

	sameRefusal(t, a, sec.CID, c.h.ID())
	m, f, err := a.s.Open(sec.CID, b.h.ID())
	if err != nil || m == nil {
		t.Fatalf("Open by B: %v", err)
	}
	f.Close()

	a.rt.waitProvided(t, pub.CID, 1)
	if a.rt.count(sec.CID) != 0 || slices.Contains(a.s.provided(), sec.CID) {
		t.Fatal("the restricted entry is provided on the DHT")
	}
	if p := a.s.Published(); len(p) != 2 || p[1].Name != "secret.txt" || p[1].Audience.String() != b.h.ID().String() || !p[0].Audience.Public() {
		t.Fatalf("Published() = %+v", p)
	}
}

// Changing a file's audience reaches peers: the revoked peer drops it (a
// directed UNPUBLISH), the newly allowed one gets it; made public it goes
// on the topic and the DHT; made restricted again it leaves the topic's
// peers and the DHT queue. An edited restricted file keeps its audience.
func TestAudienceChange(t *testing.T) {
	checkLeaks(t)
	x := newTrio(t)
	a, b, c := x.a, x.b, x.c
	a.write(t, "secret.txt", "first for B")
	sec := a.publishTo(t, Audience{Peers: []peer.ID{b.h.ID()}}, "secret.txt")[0].Entry
	waitView(t, b.s, "secret on B", func(av []Remote) bool { return hasCID(av, sec.CID) })

	res := a.publishTo(t, Audience{Peers: []peer.ID{c.h.ID()}}, "secret.txt")
	if !res[0].Already || !res[0].Retargeted {
		t.Fatalf("retarget result %+v", res[0])
	}
	waitView(t, b.s, "secret gone from B", func(av []Remote) bool { return !hasCID(av, sec.CID) })
	waitView(t, c.s, "secret on C", func(av []Remote) bool { return hasCID(av, sec.CID) })
	if x.audienceEvents.Load() != 1 {
		t.Fatalf("OnAudienceChange called %d times, want 1", x.audienceEvents.Load())
	}
	sameRefusal(t, a, sec.CID, b.h.ID())
	if hasWire(a.s.catalogResponse(b.h.ID()), sec.CID) {
		t.Fatal("B still gets the revoked entry in its catalog")
	}
	// The same audience again changes nothing.
	if res := a.publishTo(t, Audience{Peers: []peer.ID{c.h.ID()}}, "secret.txt"); res[0].Retargeted {
		t.Fatal("same audience reported as a change")
	}

	// Public: on the topic and the DHT, so B sees it again.
	a.publishTo(t, Audience{}, "secret.txt")
	waitView(t, b.s, "public secret on B", func(av []Remote) bool { return hasCID(av, sec.CID) })
	a.rt.waitProvided(t, sec.CID, 1)

	// Restricted to B again: C drops it (withdrawn on the topic), B keeps it.
	a.publishTo(t, Audience{Peers: []peer.ID{b.h.ID()}}, "secret.txt")
	waitView(t, c.s, "secret gone from C", func(av []Remote) bool { return !hasCID(av, sec.CID) })
	if !hasCID(b.s.Available(), sec.CID) {
		// B heard the topic withdrawal and then the directed publish,
		// dated after it.
		waitView(t, b.s, "secret back on B", func(av []Remote) bool { return hasCID(av, sec.CID) })
	}
	if a.s.provides(sec.CID) {
		t.Fatal("a restricted entry stays in the DHT queue")
	}

	// An edit keeps the audience: the new version goes to B only.
	a.write(t, "secret.txt", "second for B, longer")
	res2, err := a.s.Publish(context.Background(), "secret.txt")
	if err != nil {
		t.Fatal(err)
	}
	v2 := res2[0].Entry
	if !slices.Equal(v2.Audience.Peers, []peer.ID{b.h.ID()}) {
		t.Fatalf("new version audience %v, want B", v2.Audience)
	}
	waitView(t, b.s, "new version on B", func(av []Remote) bool { return hasCID(av, v2.CID) && !hasCID(av, sec.CID) })
	if x.recC.carries(v2.CID.Bytes()) {
		t.Fatal("the new version went on the topic")
	}
}

// A group audience is evaluated when checked: a peer added to the group
// may fetch and list at once, and AudiencesChanged tells the peers that
// left and joined.
func TestAudienceGroup(t *testing.T) {
	checkLeaks(t)
	x := newTrio(t)
	a, b, c := x.a, x.b, x.c
	x.groups.Set("friends", b.h.ID())
	a.write(t, "party.txt", "friends only")
	e := a.publishTo(t, Audience{Groups: []string{"friends"}}, "party.txt")[0].Entry
	waitView(t, b.s, "party on B", func(av []Remote) bool { return hasCID(av, e.CID) })
	sameRefusal(t, a, e.CID, c.h.ID())

	x.groups.Set("friends", c.h.ID())
	if !hasWire(a.s.catalogResponse(c.h.ID()), e.CID) || hasWire(a.s.catalogResponse(b.h.ID()), e.CID) {
		t.Fatal("group membership not evaluated at check time")
	}
	sameRefusal(t, a, e.CID, b.h.ID())
	a.s.AudiencesChanged()
	waitView(t, b.s, "party gone from B", func(av []Remote) bool { return !hasCID(av, e.CID) })
	waitView(t, c.s, "party on C", func(av []Remote) bool { return hasCID(av, e.CID) })
	if x.audienceEvents.Load() != 1 {
		t.Fatalf("OnAudienceChange called %d times, want 1", x.audienceEvents.Load())
	}
}

// sendDirect sends m from h to p on the directed announcement protocol.
func sendDirectFrom(t *testing.T, h host.Host, p peer.ID, m *proto.Announcement) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, proto.DirectAnnounceID)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteMsg(st, m); err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// A directed announcement is its sender's: C cannot withdraw A's entry
// on B, and what C publishes directly is listed as C's alone.
func TestDirectedAnnouncementOnlyFromPublisher(t *testing.T) {
	checkLeaks(t)
	x := newTrio(t)
	a, b, c := x.a, x.b, x.c
	a.write(t, "secret.txt", "for B only")
	sec := a.publishTo(t, Audience{Peers: []peer.ID{b.h.ID()}}, "secret.txt")[0].Entry
	waitView(t, b.s, "secret on B", func(av []Remote) bool { return hasCID(av, sec.CID) })

	// C withdraws A's CID, then claims a file of its own (after, so once
	// B lists C's file it has handled the withdrawal).
	sendDirectFrom(t, c.h, b.h.ID(), &proto.Announcement{Kind: proto.Announcement_UNPUBLISH,
		Entries: []*proto.CatalogEntry{{Cid: sec.CID.Bytes()}}, TimeUnixNano: 1})
	sendDirectFrom(t, c.h, b.h.ID(), &proto.Announcement{Kind: proto.Announcement_UNPUBLISH_ALL, TimeUnixNano: 2})
	fake := Entry{Name: "fake.txt", Size: 3, CID: manifest.CIDOf([]byte("fake")), ChunkSize: 1024}
	sendDirectFrom(t, c.h, b.h.ID(), &proto.Announcement{Kind: proto.Announcement_PUBLISH,
		Entries: []*proto.CatalogEntry{toWire(fake)}, TimeUnixNano: 3})
	av := waitView(t, b.s, "C's file on B", func(av []Remote) bool { return hasCID(av, fake.CID) })
	r, _ := findCID(av, fake.CID)
	if len(r.Providers) != 1 || r.Providers[0].ID != c.h.ID() {
		t.Fatalf("C's directed entry attributed to %+v", r.Providers)
	}
	r, ok := findCID(av, sec.CID)
	if !ok || len(r.Providers) != 1 || r.Providers[0].ID != a.h.ID() {
		t.Fatalf("A's entry after C's withdrawals: %+v (present %v)", r, ok)
	}

	// A malformed directed announcement is refused and counted.
	before := b.s.Stats().Rejected
	sendDirectFrom(t, c.h, b.h.ID(), &proto.Announcement{Kind: proto.Announcement_PUBLISH,
		Entries: []*proto.CatalogEntry{{Name: "../x", Cid: []byte("bad")}}, TimeUnixNano: 4})
	pollUntil(t, "the malformed message rejected", func() bool { return b.s.Stats().Rejected > before })
}

// An audience survives a restart of the Library.
func TestAudiencePersisted(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	bob := randPeer(t)
	n.write(t, "secret.txt", "kept for bob")
	e := n.publishTo(t, Audience{Peers: []peer.ID{bob}, Groups: []string{"team"}}, "secret.txt")[0].Entry
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	n.start(t, n.cfg)
	p := n.s.Published()
	if len(p) != 1 || !p[0].Audience.equal(e.Audience) || p[0].Audience.Public() {
		t.Fatalf("after restart Published() = %+v, want audience %v", p, e.Audience)
	}
	sameRefusal(t, n, e.CID, someone)
	_, f, err := n.s.Open(e.CID, bob)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if slices.Contains(n.s.provided(), e.CID) {
		t.Fatal("restricted entry provided after restart")
	}
}

// Bad audiences are refused before anything is published.
func TestAudienceRefused(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	n.write(t, "a.txt", "x")
	for _, aud := range []Audience{
		{Peers: []peer.ID{"not a peer id"}},
		{Groups: []string{" "}},
		{Peers: []peer.ID{n.h.ID()}},
	} {
		if _, err := n.s.PublishWith(context.Background(), PublishOptions{Audience: &aud}, "a.txt"); err == nil {
			t.Errorf("audience %v accepted", aud)
		}
	}
	if len(n.s.Published()) != 0 {
		t.Fatal("published despite a bad audience")
	}
}
