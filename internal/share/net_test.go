package share

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

func TestCatalogPulledOnConnect(t *testing.T) {
	checkLeaks(t)
	a := newNode(t, loopbackHost(t), false)
	b := newNode(t, loopbackHost(t), false)
	x := a.publish(t, "Holiday Photos.zip", "pretend this is a zip")
	y := a.publish(t, "notes.txt", "some notes")
	own := b.publish(t, "mine.txt", "b's own file")

	connect(t, b.h, a.h)
	av := waitView(t, b.s, "A's catalog on B", func(av []Remote) bool { return len(av) == 2 })
	if av[0].Name != "Holiday Photos.zip" || av[1].Name != "notes.txt" {
		t.Fatalf("Available() not sorted by name: %+v", av)
	}
	r := av[0]
	if !r.CID.Equals(x.CID) || r.Size != x.Size || r.SHA256 != x.SHA256 || r.ChunkSize != x.ChunkSize ||
		r.Published.Unix() != x.Published.Unix() {
		t.Fatalf("remote entry %+v, published %+v", r.Entry, x)
	}
	if len(r.Providers) != 1 || r.Providers[0].ID != a.h.ID() || !r.Providers[0].Online || r.Providers[0].Name != x.Name {
		t.Fatalf("providers %+v", r.Providers)
	}
	if hasCID(b.s.Available(), own.CID) {
		t.Fatal("B lists its own file in Available")
	}
	// A sees B's file the same way (B pulled on connect, A on identify).
	waitView(t, a.s, "B's catalog on A", func(av []Remote) bool { return hasCID(av, own.CID) })

	if got := b.s.Providers(y.CID); !slices.Equal(got, []peer.ID{a.h.ID()}) {
		t.Fatalf("Providers = %v", got)
	}
	if got := b.s.Search("holiday"); len(got) != 1 || !got[0].CID.Equals(x.CID) {
		t.Fatalf("Search(holiday) = %+v", got)
	}
	if got := b.s.Search(y.CID.String()[:20]); len(got) != 1 || !got[0].CID.Equals(y.CID) {
		t.Fatalf("Search(CID prefix) = %+v", got)
	}
	if got := b.s.Search("zzz"); len(got) != 0 {
		t.Fatalf("Search(zzz) = %+v", got)
	}
	if res, err := b.s.Resolve("notes.txt"); err != nil || !res.CID.Equals(y.CID) {
		t.Fatalf("Resolve(name) = %+v, %v", res, err)
	}
	if res, err := b.s.Resolve(x.CID.String()); err != nil || res.Name != x.Name {
		t.Fatalf("Resolve(CID) = %+v, %v", res, err)
	}
	if res, err := b.s.Resolve(own.CID.String()); err != nil || len(res.Providers) != 1 || res.Providers[0].ID != b.h.ID() {
		t.Fatalf("Resolve(own CID) = %+v, %v", res, err)
	}
	if _, err := b.s.Resolve("mine.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve(own name) = %v, want ErrNotFound (names resolve among others' files)", err)
	}
	unknown := manifest.CIDOf([]byte("nobody has this"))
	if res, err := b.s.Resolve(unknown.String()); !errors.Is(err, ErrNotFound) || !res.CID.Equals(unknown) {
		t.Fatalf("Resolve(unknown CID) = %+v, %v", res, err)
	}

	// Without announcements (no PubSub), a withdrawal shows on the next pull:
	// the pulled catalog replaces A's entries.
	if _, err := a.s.Unpublish(context.Background(), "notes.txt"); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if av := b.s.Available(); len(av) != 1 || !av[0].CID.Equals(x.CID) {
		t.Fatalf("after unpublish + Refresh: %+v", av)
	}

	// A goes away: its entry stays, shown offline.
	if err := b.h.Network().ClosePeer(a.h.ID()); err != nil {
		t.Fatal(err)
	}
	waitView(t, b.s, "A shown offline", func(av []Remote) bool {
		return len(av) == 1 && !av[0].Providers[0].Online
	})
}

// linkedNodes makes n Services with GossipSub on a fully connected mocknet.
func linkedNodes(t *testing.T, n int) []*testNode {
	t.Helper()
	_, nodes := linkedNet(t, n)
	return nodes
}

func linkedNet(t *testing.T, n int) (mocknet.Mocknet, []*testNode) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var nodes []*testNode
	for range n {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, newNode(t, h, true))
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes {
		var others []peer.ID
		for _, y := range nodes {
			if y != x {
				others = append(others, y.h.ID())
			}
		}
		waitTopicPeers(t, x, others...)
	}
	return mn, nodes
}

// heardAnnouncement reports whether s applied an announcement from p:
// only announcements leave stamps, catalog pulls do not.
func heardAnnouncement(s *Service, p peer.ID) bool {
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	pc := s.remote.peers[p]
	return pc != nil && len(pc.stamps) > 0
}

func TestAnnouncementsOverLoopback(t *testing.T) {
	checkLeaks(t)
	a := newNode(t, loopbackHost(t), true)
	b := newNode(t, loopbackHost(t), true)
	connect(t, b.h, a.h)
	waitTopicPeers(t, a, b.h.ID())
	waitTopicPeers(t, b, a.h.ID())

	x := a.publish(t, "x.txt", "x")
	y := a.publish(t, "y.txt", "y")
	z := a.publish(t, "z.txt", "z")
	waitView(t, b.s, "announced files on B", func(av []Remote) bool { return len(av) == 3 })
	if !heardAnnouncement(b.s, a.h.ID()) {
		t.Fatal("B saw the files without applying an announcement")
	}

	if _, err := a.s.Unpublish(context.Background(), x.CID.String()); err != nil {
		t.Fatal(err)
	}
	waitView(t, b.s, "x withdrawn on B", func(av []Remote) bool { return len(av) == 2 && !hasCID(av, x.CID) })

	// A file changed on disk is withdrawn when it is next opened.
	a.write(t, "z.txt", "z, longer now")
	if _, _, err := a.s.Open(z.CID, someone); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open = %v", err)
	}
	waitView(t, b.s, "changed z withdrawn on B", func(av []Remote) bool { return len(av) == 1 && hasCID(av, y.CID) })

	// Republishing z announces the new CID.
	res, err := a.s.Publish(context.Background(), "z.txt")
	if err != nil {
		t.Fatal(err)
	}
	waitView(t, b.s, "new z on B", func(av []Remote) bool { return len(av) == 2 && hasCID(av, res[0].Entry.CID) })

	if got, err := a.s.UnpublishAll(context.Background()); err != nil || len(got) != 2 {
		t.Fatalf("UnpublishAll = %+v, %v", got, err)
	}
	waitView(t, b.s, "everything withdrawn on B", func(av []Remote) bool { return len(av) == 0 })
	if len(a.s.Published()) != 0 {
		t.Fatal("A still publishes after UnpublishAll")
	}
}

func TestChangedContentWithdrawsOldCID(t *testing.T) {
	checkLeaks(t)
	nodes := linkedNodes(t, 2)
	a, b := nodes[0], nodes[1]
	old := a.publish(t, "doc.txt", "version 1")
	waitView(t, b.s, "v1 on B", func(av []Remote) bool { return hasCID(av, old.CID) })
	a.write(t, "doc.txt", "version 2!")
	res, err := a.s.Publish(context.Background(), "doc.txt")
	if err != nil {
		t.Fatal(err)
	}
	waitView(t, b.s, "v2 replacing v1 on B", func(av []Remote) bool {
		return len(av) == 1 && av[0].CID.Equals(res[0].Entry.CID)
	})
}

// publishRaw publishes data on n's announce topic, signed by n.
func publishRaw(t *testing.T, n *testNode, data []byte) error {
	t.Helper()
	return pubsubTopic(n).Publish(context.Background(), data)
}

func unpublishMsg(t int64, cs ...cid.Cid) []byte {
	m := &proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: t}
	for _, c := range cs {
		m.Entries = append(m.Entries, &proto.CatalogEntry{Cid: c.Bytes()})
	}
	b, _ := gproto.Marshal(m)
	return b
}

func TestForgedUnpublishDoesNotRemoveOthersEntries(t *testing.T) {
	checkLeaks(t)
	nodes := linkedNodes(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	x := a.publish(t, "a-file", "published by A")
	z := c.publish(t, "c-file", "published by C")
	waitView(t, b.s, "both files on B", func(av []Remote) bool { return hasCID(av, x.CID) && hasCID(av, z.CID) })

	// C, signing as itself, claims to withdraw A's file and its own.
	if err := publishRaw(t, c, unpublishMsg(c.s.nextAnnTime(), x.CID, z.CID)); err != nil {
		t.Fatal(err)
	}
	av := waitView(t, b.s, "C's own file withdrawn on B", func(av []Remote) bool { return !hasCID(av, z.CID) })
	r, ok := findCID(av, x.CID)
	if !ok || len(r.Providers) != 1 || r.Providers[0].ID != a.h.ID() {
		t.Fatalf("A's entry after C's forged unpublish: %+v (found %v)", r, ok)
	}

	// UNPUBLISH_ALL from C clears only C's entries too.
	w := c.publish(t, "c-file-2", "another of C's")
	waitView(t, b.s, "C's second file on B", func(av []Remote) bool { return hasCID(av, w.CID) })
	all, _ := gproto.Marshal(&proto.Announcement{Kind: proto.Announcement_UNPUBLISH_ALL, TimeUnixNano: c.s.nextAnnTime()})
	if err := publishRaw(t, c, all); err != nil {
		t.Fatal(err)
	}
	av = waitView(t, b.s, "C's files withdrawn on B", func(av []Remote) bool { return !hasCID(av, w.CID) })
	if !hasCID(av, x.CID) {
		t.Fatal("UNPUBLISH_ALL from C removed A's entry")
	}
}

func TestMalformedAnnouncementsAreRejected(t *testing.T) {
	checkLeaks(t)
	mn, nodes := linkedNet(t, 2)
	a, b := nodes[0], nodes[1]
	// Our own validator refuses to publish garbage locally.
	for _, bad := range [][]byte{{0xff, 0xff, 0xff}, unpublishMsg(1, cid.Cid{})} {
		if err := publishRaw(t, a, bad); err == nil {
			t.Fatalf("local publish of %x accepted", bad)
		}
	}

	// A raw GossipSub peer without our validator sends garbage to B.
	hd, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	psd, err := pubsub.NewGossipSub(ctx, hd)
	if err != nil {
		t.Fatal(err)
	}
	td, err := psd.Join(proto.AnnounceTopic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := td.Subscribe() // so B adds D to its topic peers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(hd.ID(), b.h.ID()); err != nil {
		t.Fatal(err)
	}
	waitTopicPeers(t, b, hd.ID())
	pollUntil(t, "D sees B on the topic", func() bool { return slices.Contains(td.ListPeers(), b.h.ID()) })
	good := manifest.CIDOf([]byte("raw"))
	before := b.s.rejected.Load()
	for _, bad := range [][]byte{
		{0xff, 0xff, 0xff},
		unpublishMsg(1, cid.Cid{}),
		func() []byte {
			m, _ := gproto.Marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{
				{Name: "../../x", Cid: good.Bytes(), Sha256: make([]byte, 32), ChunkSize: 1024}}})
			return m
		}(),
	} {
		if err := td.Publish(ctx, bad, pubsub.WithReadiness(pubsub.MinTopicSize(1))); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, "B rejects the three bad messages", func() bool { return b.s.rejected.Load() >= before+3 })
	valid, _ := gproto.Marshal(&proto.Announcement{TimeUnixNano: 2, Entries: []*proto.CatalogEntry{
		{Name: "raw.txt", Cid: good.Bytes(), Sha256: make([]byte, 32), ChunkSize: 1024, Size: 3}}})
	if err := td.Publish(ctx, valid); err != nil {
		t.Fatal(err)
	}
	av := waitView(t, b.s, "D's valid announcement on B", func(av []Remote) bool { return hasCID(av, good) })
	if r, _ := findCID(av, good); len(av) != 1 || r.Providers[0].ID != hd.ID() || r.Name != "raw.txt" {
		t.Fatalf("Available on B: %+v", av)
	}
}

func TestParseAnnouncement(t *testing.T) {
	good := manifest.CIDOf([]byte("m"))
	entry := func(name string, c []byte, sha []byte, cs uint32) *proto.CatalogEntry {
		return &proto.CatalogEntry{Name: name, Cid: c, Sha256: sha, ChunkSize: cs, Size: 10}
	}
	sha := make([]byte, 32)
	v0 := cid.NewCidV0(good.Hash())
	marshal := func(m *proto.Announcement) []byte { b, _ := gproto.Marshal(m); return b }
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"publish", marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{entry("a", good.Bytes(), sha, 1024)}}), true},
		{"unpublish", marshal(&proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: 1, Entries: []*proto.CatalogEntry{{Cid: good.Bytes()}}}), true},
		{"unpublish all", marshal(&proto.Announcement{Kind: proto.Announcement_UNPUBLISH_ALL, TimeUnixNano: 1}), true},
		{"garbage", []byte{0xff, 0xff, 0xff}, false},
		{"no time", marshal(&proto.Announcement{Kind: proto.Announcement_UNPUBLISH_ALL}), false},
		{"unknown kind", marshal(&proto.Announcement{Kind: 7, TimeUnixNano: 1}), false},
		{"traversal name", marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{entry("../etc/passwd", good.Bytes(), sha, 1024)}}), false},
		{"CIDv0", marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{entry("a", v0.Bytes(), sha, 1024)}}), false},
		{"unpublish CIDv0", marshal(&proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: 1, Entries: []*proto.CatalogEntry{{Cid: v0.Bytes()}}}), false},
		{"cid garbage", marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{entry("a", []byte{1, 2, 3}, sha, 1024)}}), false},
		{"short sha", marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{entry("a", good.Bytes(), sha[:5], 1024)}}), false},
		{"chunk size 0", marshal(&proto.Announcement{TimeUnixNano: 1, Entries: []*proto.CatalogEntry{entry("a", good.Bytes(), sha, 0)}}), false},
		{"oversized", make([]byte, proto.MaxAnnouncementSize+1), false},
	} {
		_, err := parseAnnouncement(tc.data)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestAnnouncementsAppliedInOrderPerCID(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	p := peer.ID("some-publisher")
	c := manifest.CIDOf([]byte("x"))
	d := manifest.CIDOf([]byte("y"))
	e := Entry{Name: "x", CID: c, ChunkSize: 1024}
	f := Entry{Name: "y", CID: d, ChunkSize: 1024}
	apply := func(kind proto.Announcement_Kind, tm int64, es ...Entry) {
		a := &announcement{kind: kind, time: tm}
		for _, x := range es {
			if kind == proto.Announcement_PUBLISH {
				a.entries = append(a.entries, x)
			} else {
				a.cids = append(a.cids, x.CID)
			}
		}
		n.s.applyAnnouncement(p, a)
	}
	has := func(c cid.Cid) bool { return hasCID(n.s.Available(), c) }

	apply(proto.Announcement_PUBLISH, 10, e)
	apply(proto.Announcement_UNPUBLISH, 5, e) // older, same CID: dropped
	if !has(c) {
		t.Fatal("an older unpublish was applied after a newer publish")
	}
	// A newer publish of another CID arriving first does not hide an older
	// withdrawal of this one (how "replace content" looks out of order).
	apply(proto.Announcement_PUBLISH, 20, f)
	apply(proto.Announcement_UNPUBLISH, 15, e)
	if has(c) || !has(d) {
		t.Fatalf("out-of-order replace: x present %v (want false), y present %v (want true)", has(c), has(d))
	}
	apply(proto.Announcement_PUBLISH, 12, e) // sent before the withdrawal at 15: dropped
	if has(c) {
		t.Fatal("a publish older than the withdrawal was applied")
	}
	apply(proto.Announcement_UNPUBLISH_ALL, 30)
	apply(proto.Announcement_PUBLISH, 25, e) // older than the unpublish-all
	if has(c) || has(d) {
		t.Fatal("entries survived UNPUBLISH_ALL")
	}
	apply(proto.Announcement_PUBLISH, 31, e)
	if !has(c) {
		t.Fatal("a publish after UNPUBLISH_ALL was dropped")
	}
	n.s.applyAnnouncement(n.h.ID(), &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{f}, time: 40})
	if has(d) {
		t.Fatal("our own announcement shows in Available")
	}
}

// catalogServer answers catalog requests with fixed bytes.
func catalogServer(h host.Host, respond func(s network.Stream)) {
	h.SetStreamHandler(proto.CatalogID, func(s network.Stream) {
		defer s.Close()
		var req proto.CatalogRequest
		if err := proto.NewReader(s, proto.MaxRequestSize).ReadMsg(&req); err != nil {
			s.Reset()
			return
		}
		respond(s)
	})
}

func TestMalformedCatalogResponses(t *testing.T) {
	checkLeaks(t)
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	hb, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	b := newNode(t, hb, false)
	good := manifest.CIDOf([]byte("good"))
	sha := make([]byte, 32)
	mixed := &proto.CatalogResponse{Entries: []*proto.CatalogEntry{
		{Name: "good.txt", Cid: good.Bytes(), Sha256: sha, ChunkSize: 1024, Size: 3},
		{Name: "../../etc/passwd", Cid: manifest.CIDOf([]byte("a")).Bytes(), Sha256: sha, ChunkSize: 1024},
		{Name: "bad-cid", Cid: []byte("nonsense"), Sha256: sha, ChunkSize: 1024},
		{Name: "short-sha", Cid: manifest.CIDOf([]byte("b")).Bytes(), Sha256: sha[:3], ChunkSize: 1024},
	}}
	for _, tc := range []struct {
		name    string
		respond func(network.Stream)
		wantErr bool
		want    int // entries kept
	}{
		{"garbage", func(s network.Stream) { s.Write([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff}) }, true, 0},
		{"oversized length", func(s network.Stream) { s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}) }, true, 0},
		{"truncated", func(s network.Stream) { s.Write([]byte{0x40, 0x0a}) }, true, 0},
		{"closed without answer", func(s network.Stream) {}, true, 0},
		{"mixed good and bad entries", func(s network.Stream) { proto.WriteMsg(s, mixed) }, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hm, err := mn.GenPeer()
			if err != nil {
				t.Fatal(err)
			}
			catalogServer(hm, tc.respond)
			if err := mn.LinkAll(); err != nil {
				t.Fatal(err)
			}
			if _, err := mn.ConnectPeers(hb.ID(), hm.ID()); err != nil {
				t.Fatal(err)
			}
			// Refresh only pulls peers known to speak the protocol.
			hb.Peerstore().AddProtocols(hm.ID(), proto.CatalogID)
			err = b.s.pull(context.Background(), hm.ID())
			if tc.wantErr != (err != nil) {
				t.Fatalf("pull = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), hm.ID().String()) {
				t.Errorf("error %q does not name the peer", err)
			}
			n := 0
			for _, r := range b.s.Available() {
				for _, p := range r.Providers {
					if p.ID == hm.ID() {
						n++
					}
				}
			}
			if n != tc.want {
				t.Fatalf("kept %d entries from the peer, want %d: %+v", n, tc.want, b.s.Available())
			}
			if err := hm.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestManyNodesMergedView(t *testing.T) {
	checkLeaks(t)
	nodes := linkedNodes(t, 6)
	v1 := nodes[0].publish(t, "same.txt", "one content")
	v2 := nodes[1].publish(t, "same.txt", "another content")
	s2 := nodes[2].publish(t, "Shared.iso", "identical bytes")
	s3 := nodes[3].publish(t, "shared-copy.iso", "identical bytes")
	if !s2.CID.Equals(s3.CID) {
		t.Fatal("same bytes, different CIDs")
	}
	viewer := nodes[5]
	waitView(t, viewer.s, "every file on the viewer", func(av []Remote) bool {
		r, ok := findCID(av, s2.CID)
		return len(av) == 3 && ok && len(r.Providers) == 2
	})
	_, err := viewer.s.Resolve("same.txt")
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), v1.CID.String()) || !strings.Contains(err.Error(), v2.CID.String()) {
		t.Fatalf("Resolve(same.txt) = %v, want ErrAmbiguous listing both CIDs", err)
	}
	r, err := viewer.s.Resolve("shared-copy.iso") // the name one provider gave
	if err != nil || !r.CID.Equals(s2.CID) || len(r.Providers) != 2 {
		t.Fatalf("Resolve(shared-copy.iso) = %+v, %v", r, err)
	}
	names := []string{r.Providers[0].Name, r.Providers[1].Name}
	slices.Sort(names)
	if names[0] != "Shared.iso" || names[1] != "shared-copy.iso" {
		t.Fatalf("provider names %v", names)
	}
	if got := viewer.s.Search("SHARED"); len(got) != 1 {
		t.Fatalf("Search(SHARED) = %+v", got)
	}
	if got := viewer.s.Providers(s2.CID); len(got) != 2 {
		t.Fatalf("Providers = %v", got)
	}
	// Every other node sees the same, each without its own entries.
	for i, n := range nodes[:5] {
		waitView(t, n.s, "files on node", func(av []Remote) bool {
			total := 0
			for _, r := range av {
				for _, p := range r.Providers {
					if p.ID == n.h.ID() {
						return false
					}
					total++
				}
			}
			want := 4
			if i < 4 {
				want = 3
			}
			return total == want
		})
	}
}
