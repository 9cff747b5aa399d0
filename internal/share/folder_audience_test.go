package share

import (
	"context"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// memberCID is the CID of the file at p in the published folder c.
func memberCID(t *testing.T, n *testNode, c cid.Cid, p string) cid.Cid {
	t.Helper()
	e, ok := entryAt(document(t, n.s, c), p)
	if !ok {
		t.Fatalf("folder %s lists no %s", c, p)
	}
	return e.CID
}

// opens reports whether Open serves c to p.
func opens(n *testNode, c cid.Cid, p peer.ID) bool {
	_, f, err := n.s.Open(c, p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// A folder published to B: B sees it (directed announcement, catalog)
// and may fetch its document and its files; C sees it nowhere (its view
// after a catalog pull, A's catalog answer to C, the topic), gets the
// answer of an unknown CID for the document and the files, and the
// folder is not provided on the DHT. Retargeted to C, B drops it and is
// refused, C gets it; a file the folder shares with a public folder, or
// that is published directly to B, stays B's; made public, it is
// provided; an edit keeps the audience.
func TestFolderAudience(t *testing.T) {
	checkLeaks(t)
	x := newTrio(t)
	a, b, c := x.a, x.b, x.c
	writeTree(t, a.dir, map[string]string{
		"private-album/a.txt":     "in the album and the public folder",
		"private-album/sub/b.txt": "in the album, and published directly to B",
		"private-album/c.txt":     "in the album only",
		"open/same.txt":           "in the album and the public folder",
	})
	a.write(t, "copy.txt", "in the album, and published directly to B")
	onlyB := Audience{Peers: []peer.ID{b.h.ID()}}
	res := a.publishTo(t, onlyB, "private-album")
	alb := res[0].Entry
	if res[0].Folder == nil || !alb.Collection || !alb.Audience.equal(onlyB) {
		t.Fatalf("publish folder --to B: %+v", res[0])
	}
	pub := publishFolderOK(t, a.s, "open").Entry
	a.publishTo(t, onlyB, "copy.txt")
	shared := memberCID(t, a, alb.CID, "a.txt")
	direct := memberCID(t, a, alb.CID, "sub/b.txt")
	only := memberCID(t, a, alb.CID, "c.txt")

	waitView(t, b.s, "album on B", func(av []Remote) bool { return hasCID(av, alb.CID) })
	waitView(t, c.s, "public folder on C", func(av []Remote) bool { return hasCID(av, pub.CID) })
	if err := c.s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hasCID(c.s.Available(), alb.CID) {
		t.Fatal("C lists the folder published to B")
	}
	if hasWire(a.s.catalogResponse(c.h.ID()), alb.CID) || !hasWire(a.s.catalogResponse(b.h.ID()), alb.CID) {
		t.Fatal("catalog answers not filtered by the folder's audience")
	}
	for _, r := range []*recBroadcast{x.recA, x.recC} {
		if r.carries(alb.CID.Bytes()) || r.carries([]byte("private-album")) {
			t.Fatal("the restricted folder went on the announce topic")
		}
		if !r.carries(pub.CID.Bytes()) {
			t.Fatal("the public folder did not go on the announce topic: the recorder sees nothing")
		}
	}
	if _, ok := a.s.Collection(alb.CID, c.h.ID()); ok {
		t.Fatal("C is given the restricted folder's document")
	}
	if _, ok := a.s.Collection(alb.CID, b.h.ID()); !ok {
		t.Fatal("B is refused the folder's document")
	}
	sameRefusal(t, a, only, c.h.ID())
	sameRefusal(t, a, direct, c.h.ID())
	if !opens(a, only, b.h.ID()) || !opens(a, direct, b.h.ID()) {
		t.Fatal("B is refused a file of its folder")
	}
	if !opens(a, shared, c.h.ID()) {
		t.Fatal("a file a public folder lists too is refused to C")
	}
	a.rt.waitProvided(t, pub.CID, 1)
	if a.rt.count(alb.CID) != 0 || slices.Contains(a.s.provided(), alb.CID) || a.s.provides(alb.CID) {
		t.Fatal("the restricted folder is provided on the DHT")
	}

	// Retarget to C.
	res = a.publishTo(t, Audience{Peers: []peer.ID{c.h.ID()}}, "private-album")
	if !res[0].Already || !res[0].Retargeted || res[0].Entry.Audience.Peers[0] != c.h.ID() {
		t.Fatalf("retarget result %+v", res[0])
	}
	waitView(t, b.s, "album gone from B", func(av []Remote) bool { return !hasCID(av, alb.CID) })
	waitView(t, c.s, "album on C", func(av []Remote) bool { return hasCID(av, alb.CID) })
	if n := x.audienceEvents.Load(); n != 1 {
		t.Fatalf("OnAudienceChange called %d times, want 1", n)
	}
	if _, ok := a.s.Collection(alb.CID, b.h.ID()); ok {
		t.Fatal("revoked B is still given the folder's document")
	}
	sameRefusal(t, a, only, b.h.ID())
	if !opens(a, only, c.h.ID()) {
		t.Fatal("C, now allowed, is refused a file of the folder")
	}
	if !opens(a, direct, b.h.ID()) {
		t.Fatal("a file published directly to B is refused to B")
	}
	if !opens(a, shared, b.h.ID()) {
		t.Fatal("a file a public folder lists too is refused to B")
	}

	// An edit keeps the audience: the new version goes to C only.
	writeTree(t, a.dir, map[string]string{"private-album/c.txt": "in the album only, edited"})
	res2, err := a.s.Publish(context.Background(), "private-album")
	if err != nil {
		t.Fatal(err)
	}
	v2 := res2[0].Entry
	if !slices.Equal(v2.Audience.Peers, []peer.ID{c.h.ID()}) || v2.CID == alb.CID {
		t.Fatalf("new version %+v, want a new CID for C", v2)
	}
	waitView(t, c.s, "new version on C", func(av []Remote) bool { return hasCID(av, v2.CID) && !hasCID(av, alb.CID) })
	if x.recA.carries(v2.CID.Bytes()) || a.s.provides(v2.CID) {
		t.Fatal("the new version went on the topic or the DHT")
	}
	sameRefusal(t, a, memberCID(t, a, v2.CID, "c.txt"), b.h.ID())

	// Public: B sees it again, and it is provided.
	a.publishTo(t, Audience{}, "private-album")
	waitView(t, b.s, "public album on B", func(av []Remote) bool { return hasCID(av, v2.CID) })
	a.rt.waitProvided(t, v2.CID, 1)
	if !opens(a, memberCID(t, a, v2.CID, "c.txt"), someone) {
		t.Fatal("a file of the public folder is refused")
	}
}

// A folder published to a group follows the group: AudiencesChanged
// withdraws it from a peer that left and sends it to one that joined, and
// the files follow at once.
func TestFolderAudienceGroup(t *testing.T) {
	checkLeaks(t)
	x := newTrio(t)
	a, b, c := x.a, x.b, x.c
	x.groups.Set("friends", b.h.ID())
	writeTree(t, a.dir, map[string]string{"party/x.txt": "friends only"})
	e := a.publishTo(t, Audience{Groups: []string{"friends"}}, "party")[0].Entry
	waitView(t, b.s, "party on B", func(av []Remote) bool { return hasCID(av, e.CID) })
	file := memberCID(t, a, e.CID, "x.txt")
	if !opens(a, file, b.h.ID()) {
		t.Fatal("B refused the group's folder's file")
	}

	x.groups.Set("friends", c.h.ID())
	sameRefusal(t, a, file, b.h.ID())
	if !opens(a, file, c.h.ID()) {
		t.Fatal("C refused after joining the group")
	}
	a.s.AudiencesChanged()
	waitView(t, b.s, "party gone from B", func(av []Remote) bool { return !hasCID(av, e.CID) })
	waitView(t, c.s, "party on C", func(av []Remote) bool { return hasCID(av, e.CID) })
	if x.audienceEvents.Load() != 1 {
		t.Fatalf("OnAudienceChange called %d times, want 1", x.audienceEvents.Load())
	}
}

// A folder's audience survives a restart; its files stay refused to
// others, and it is not provided.
func TestFolderAudiencePersisted(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	bob := randPeer(t)
	writeTree(t, n.dir, map[string]string{"kept/a.txt": "kept for bob"})
	aud := Audience{Peers: []peer.ID{bob}}
	e := n.publishTo(t, aud, "kept")[0].Entry
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	n.start(t, n.cfg)
	p := n.s.Published()
	if len(p) != 1 || !p[0].Collection || !p[0].Audience.equal(aud) {
		t.Fatalf("after restart Published() = %+v, want the folder for bob", p)
	}
	file := memberCID(t, n, e.CID, "a.txt")
	sameRefusal(t, n, file, someone)
	if !opens(n, file, bob) {
		t.Fatal("bob refused after restart")
	}
	if _, ok := n.s.Collection(e.CID, someone); ok {
		t.Fatal("document given to someone else after restart")
	}
	if slices.Contains(n.s.provided(), e.CID) {
		t.Fatal("restricted folder provided after restart")
	}
}
