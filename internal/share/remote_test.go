package share

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/proto"
)

func randCID() cid.Cid {
	var b [32]byte
	rand.Read(b[:])
	mh, _ := multihash.Encode(b[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

func randPeer(t testing.TB) peer.ID {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// remoteState reports how many entries and stamps we keep for p.
func remoteState(s *Service, p peer.ID) (entries, stamps int) {
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	pc := s.remote.peers[p]
	if pc == nil {
		return 0, 0
	}
	return len(pc.entries), len(pc.stamps)
}

// fullAnnouncement fills an announcement of kind up to the size limit
// with random CIDs (and, for PUBLISH, valid entries).
func fullAnnouncement(kind proto.Announcement_Kind, tm int64) *proto.Announcement {
	m := &proto.Announcement{Kind: kind, TimeUnixNano: tm}
	for size := 32; ; {
		pe := &proto.CatalogEntry{Cid: randCID().Bytes()}
		if kind == proto.Announcement_PUBLISH {
			pe.Name, pe.Sha256, pe.ChunkSize, pe.Size = "f", make([]byte, 32), 1024, 1
		}
		size += gproto.Size(pe) + 4 // tag and length prefix
		if size > proto.MaxAnnouncementSize-64 {
			return m
		}
		m.Entries = append(m.Entries, pe)
	}
}

func applyWire(t *testing.T, s *Service, p peer.ID, m *proto.Announcement) *announcement {
	t.Helper()
	data, err := gproto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseAnnouncement(data)
	if err != nil {
		t.Fatal(err)
	}
	s.applyAnnouncement(p, a)
	return a
}

// The reviewer's proof: withdrawals of CIDs never published, with a
// fixed sender clock, must not pile up tombstones.
func TestUnpublishOfUnknownCIDsLeavesNoTombstones(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	attacker := randPeer(t)
	m := fullAnnouncement(proto.Announcement_UNPUBLISH, 1)
	for range 40 {
		for _, e := range m.Entries {
			e.Cid = randCID().Bytes()
		}
		applyWire(t, n.s, attacker, m)
	}
	if _, stamps := remoteState(n.s, attacker); stamps > maxStampsPerPeer {
		t.Errorf("tombstones are unbounded: %d", stamps)
	}
}

// Publishing then withdrawing many CIDs is bounded per sender too.
func TestAnnouncementStateIsCappedPerSender(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	p := randPeer(t)
	var tm int64 = 1
	for range 20 {
		pub := fullAnnouncement(proto.Announcement_PUBLISH, tm)
		applyWire(t, n.s, p, pub)
		un := &proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: tm + 1}
		for _, e := range pub.Entries {
			un.Entries = append(un.Entries, &proto.CatalogEntry{Cid: e.Cid})
		}
		applyWire(t, n.s, p, un)
		tm += 2
	}
	entries, stamps := remoteState(n.s, p)
	if entries > maxEntriesPerPeer || stamps > maxEntriesPerPeer+maxStampsPerPeer {
		t.Errorf("after 20 publish+unpublish rounds: %d entries, %d stamps; caps %d, %d+%d",
			entries, stamps, maxEntriesPerPeer, maxEntriesPerPeer, maxStampsPerPeer)
	}
	for range 3 {
		applyWire(t, n.s, p, fullAnnouncement(proto.Announcement_PUBLISH, tm))
		tm++
	}
	entries, stamps = remoteState(n.s, p)
	if entries != maxEntriesPerPeer || stamps > maxEntriesPerPeer+maxStampsPerPeer {
		t.Errorf("after 3 full publishes: %d entries (want the cap, %d), %d stamps (cap %d+%d)",
			entries, maxEntriesPerPeer, stamps, maxEntriesPerPeer, maxStampsPerPeer)
	}
}

// The tombstone cap never drops the stamp of a live entry: a withdrawal
// older than the entry's publish, arriving late after a flood of
// tombstones, must not remove it.
func TestTombstoneCapKeepsLiveStamps(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	p := randPeer(t)
	live := &proto.Announcement{Kind: proto.Announcement_PUBLISH, TimeUnixNano: 100,
		Entries: []*proto.CatalogEntry{{Name: "keep.txt", Size: 1, Cid: randCID().Bytes(), ChunkSize: 1024, Sha256: make([]byte, 32)}}}
	applyWire(t, n.s, p, live)
	var tm int64 = 200
	for range 3 { // well over the tombstone cap
		pub := fullAnnouncement(proto.Announcement_PUBLISH, tm)
		applyWire(t, n.s, p, pub)
		un := &proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: tm + 1}
		for _, e := range pub.Entries {
			un.Entries = append(un.Entries, &proto.CatalogEntry{Cid: e.Cid})
		}
		applyWire(t, n.s, p, un)
		tm += 2
	}
	late := &proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: 50,
		Entries: []*proto.CatalogEntry{{Cid: live.Entries[0].Cid}}}
	applyWire(t, n.s, p, late)
	c, err := cid.Cast(live.Entries[0].Cid)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.s.Providers(c)) != 1 {
		t.Fatal("an older, late withdrawal removed a live entry after the tombstone cap was hit")
	}
}

// Tombstones expire by our clock, whatever the sender's clock says.
func TestTombstonesExpireByOurClock(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	var now int64
	n.s.remote.mu.Lock()
	n.s.remote.now = func() int64 { return now }
	n.s.remote.mu.Unlock()
	p := randPeer(t)
	e := Entry{Name: "a", CID: randCID(), ChunkSize: 1024}
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{e}, time: 5})
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: []cid.Cid{e.CID}, time: 6})
	if _, stamps := remoteState(n.s, p); stamps != 1 {
		t.Fatalf("%d stamps after a withdrawal, want its tombstone", stamps)
	}
	// A delayed older publish is still refused while the tombstone lives.
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{e}, time: 5})
	if len(n.s.Providers(e.CID)) != 0 {
		t.Fatal("an older publish undid the withdrawal")
	}
	now += int64(tombstoneTTL) + 1
	// The sender's clock stands still; our activity on other CIDs sweeps.
	for range 2 * sweepMin {
		n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, time: 6,
			entries: []Entry{{Name: "b", CID: randCID(), ChunkSize: 1024}}})
	}
	n.s.remote.mu.Lock()
	_, kept := n.s.remote.peers[p].stamps[e.CID]
	n.s.remote.mu.Unlock()
	if kept {
		t.Error("a tombstone older than tombstoneTTL (our clock) was not pruned")
	}
}

// The number of remote senders we track is capped; the one heard from the
// longest ago goes first.
func TestRemoteSendersAreCapped(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	var first peer.ID
	for i := range maxRemotePeers + 50 {
		p := peer.ID(string(rune(i)) + "-sender")
		if i == 0 {
			first = p
		}
		n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, time: 1,
			entries: []Entry{{Name: "x", CID: randCID(), ChunkSize: 1024}}})
	}
	n.s.remote.mu.Lock()
	count := len(n.s.remote.peers)
	_, kept := n.s.remote.peers[first]
	n.s.remote.mu.Unlock()
	if count > maxRemotePeers {
		t.Errorf("%d remote senders tracked, cap %d", count, maxRemotePeers)
	}
	if kept {
		t.Error("the sender heard from the longest ago was not the one evicted")
	}
}

// A normal publish / withdraw / republish flow still works.
func TestPublishUnpublishFlowStillWorks(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	p := randPeer(t)
	e := Entry{Name: "a", CID: randCID(), ChunkSize: 1024}
	has := func() bool { return len(n.s.Providers(e.CID)) == 1 }
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{e}, time: 10})
	if !has() {
		t.Fatal("published entry missing")
	}
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: []cid.Cid{e.CID}, time: 11})
	if has() {
		t.Fatal("withdrawn entry still listed")
	}
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{e}, time: 12})
	if !has() {
		t.Fatal("republished entry missing")
	}
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH_ALL, time: 13})
	if has() {
		t.Fatal("entry survived UNPUBLISH_ALL")
	}
}

// The validator refuses announcements dated too far in the future: they
// would outrank every later real announcement of that sender.
func TestValidatorRejectsFutureTimes(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), true)
	c := randCID()
	if err := publishRaw(t, n, unpublishMsg(time.Now().Add(time.Hour).UnixNano(), c)); err == nil {
		t.Error("an announcement dated an hour ahead was accepted")
	}
	if err := publishRaw(t, n, unpublishMsg(time.Now().Add(time.Minute).UnixNano(), c)); err != nil {
		t.Errorf("an announcement a minute ahead (clock skew) was refused: %v", err)
	}
}

// A catalog answer produced before a withdrawal, applied after it, must
// not bring the withdrawn entry back.
func TestStaleCatalogDoesNotResurrectWithdrawn(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	p := randPeer(t)
	e := Entry{Name: "a.txt", Size: 3, CID: randCID(), ChunkSize: 1024}
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{e}, time: 1})
	since := n.s.remote.Now() // the pull starts
	stale := []Entry{e}       // the catalog answer was produced here...
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: []cid.Cid{e.CID}, time: 2})
	n.s.replaceCatalog(p, since, stale) // ...and applied after the withdrawal
	if ps := n.s.Providers(e.CID); len(ps) != 0 {
		t.Errorf("withdrawn entry is back: %v", ps)
	}
}

// Nor drop an entry announced while the pull was running, nor keep one
// the catalog no longer lists and no later announcement mentions.
func TestStaleCatalogKeepsNewlyAnnounced(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	p := randPeer(t)
	old := Entry{Name: "old.txt", Size: 3, CID: randCID(), ChunkSize: 1024}
	gone := Entry{Name: "gone.txt", Size: 3, CID: randCID(), ChunkSize: 1024}
	fresh := Entry{Name: "new.txt", Size: 3, CID: randCID(), ChunkSize: 1024}
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{old, gone}, time: 1})
	since := n.s.remote.Now()
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{fresh}, time: 2})
	n.s.replaceCatalog(p, since, []Entry{old}) // produced before fresh was published
	has := func(e Entry) bool { return len(n.s.Providers(e.CID)) == 1 }
	if !has(old) || !has(fresh) || has(gone) {
		t.Errorf("after the stale catalog: old %v (want true), new %v (want true), gone %v (want false)",
			has(old), has(fresh), has(gone))
	}
	// An UNPUBLISH_ALL received during a pull wins over the catalog too.
	since = n.s.remote.Now()
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH_ALL, time: 3})
	n.s.replaceCatalog(p, since, []Entry{old, fresh})
	if has(old) || has(fresh) {
		t.Error("a catalog pulled before UNPUBLISH_ALL brought entries back")
	}
	// A fresh catalog (no announcement since the pull started) is the truth.
	n.s.replaceCatalog(p, n.s.remote.Now(), []Entry{old})
	if !has(old) {
		t.Error("a current catalog was not applied")
	}
}
