package share

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Tests of the budget for what others' announcements and catalogues make
// a node remember (remote.go), the announcement marks (marks.go) and the
// choice of names among providers (directory.go).

// someEntries makes n entries with names of nameLen bytes.
func someEntries(n, nameLen int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		name := fmt.Sprintf("%d", i)
		name += strings.Repeat("x", max(0, nameLen-len(name)))
		es[i] = Entry{Name: name, Size: 1, CID: randCID(), ChunkSize: 1024}
	}
	return es
}

// announceVia applies a PUBLISH of es by origin, passed on by via (""
// for the origin itself), as the validator would hand it over.
func announceVia(s *Service, origin, via peer.ID, tm int64, es []Entry) {
	s.applyAnnouncement(origin, &announcement{kind: proto.Announcement_PUBLISH, entries: es, time: tm, via: via})
}

// held is how many entries s holds for p.
func held(s *Service, p peer.ID) int {
	n, _ := remoteState(s, p)
	return n
}

// checkAccounting recomputes the totals from the catalogs.
func checkAccounting(t *testing.T, s *Service) {
	t.Helper()
	rv := &s.remote
	rv.mu.Lock()
	defer rv.mu.Unlock()
	count, cost := 0, 0
	relayed := map[peer.ID]relayLoad{}
	for p, pc := range rv.peers {
		c := len(pc.stamps) * stampCost
		for _, e := range pc.entries {
			c += entryCost(e)
		}
		if c != pc.cost {
			t.Fatalf("sender %s charged %d bytes, holds %d", p, pc.cost, c)
		}
		count += len(pc.entries)
		cost += c
		if !pc.known {
			l := relayed[pc.via]
			l.entries += len(pc.entries)
			l.cost += c
			relayed[pc.via] = l
		}
	}
	if count != rv.count || cost != rv.cost {
		t.Fatalf("totals: %d entries, %d bytes counted; %d, %d held", rv.count, rv.cost, count, cost)
	}
	for via, l := range relayed {
		got := rv.relayed[via]
		if (l.entries != 0 || l.cost != 0) && (got == nil || *got != l) {
			t.Fatalf("relay %s charged %+v, its unknown senders hold %+v", via, got, l)
		}
	}
	for via, got := range rv.relayed {
		if relayed[via] != *got {
			t.Fatalf("relay %s charged %+v, its unknown senders hold %+v", via, *got, relayed[via])
		}
	}
	if count > maxRemoteEntries || cost > maxRemoteBytes {
		t.Fatalf("over budget: %d entries (max %d), %d bytes (max %d)", count, maxRemoteEntries, cost, maxRemoteBytes)
	}
}

// Class 4: known senders flooding past the budget are cut down, the
// largest first; small publishers (offline ones included) keep theirs.
func TestBudgetBoundsAllSendersSparingSmallOnes(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	var small []peer.ID
	for i := range 5 {
		p := peer.ID(fmt.Sprintf("small-%d", i))
		small = append(small, p)
		announceVia(n.s, p, "", 1, someEntries(10, 20))
	}
	for i := range 8 {
		p := peer.ID(fmt.Sprintf("big-%d", i))
		announceVia(n.s, p, "", 1, someEntries(maxEntriesPerPeer, 20))
		checkAccounting(t, n.s)
	}
	st := n.s.Stats()
	if st.Entries > maxRemoteEntries || st.Bytes > maxRemoteBytes {
		t.Fatalf("after 80,000 entries: %+v; budget %d entries, %d bytes", st, maxRemoteEntries, maxRemoteBytes)
	}
	for _, p := range small {
		if got := held(n.s, p); got != 10 {
			t.Errorf("small publisher %s lost entries to the flood: %d of 10 left", p, got)
		}
	}
	// Long names hit the byte budget before the entry count.
	announceVia(n.s, "long", "", 1, someEntries(maxEntriesPerPeer, proto.MaxNameLen))
	checkAccounting(t, n.s)
}

// Class 4: keys heard of only through a relay never displace a known
// sender's entries, however many they are.
func TestUnknownSendersNeverDisplaceKnown(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	for i := range maxRemoteEntries / maxEntriesPerPeer {
		announceVia(n.s, peer.ID(fmt.Sprintf("known-%d", i)), "", 1, someEntries(maxEntriesPerPeer, 10))
	}
	before := n.s.Stats()
	if before.Entries != maxRemoteEntries {
		t.Fatalf("known senders hold %d entries, want the budget (%d)", before.Entries, maxRemoteEntries)
	}
	for r := range 3 {
		relay := peer.ID(fmt.Sprintf("relay-%d", r))
		for o := range 10 {
			announceVia(n.s, peer.ID(fmt.Sprintf("stranger-%d-%d", r, o)), relay, 1, someEntries(500, 10))
		}
	}
	after := n.s.Stats()
	if after.Entries != before.Entries || after.Unknown != 0 {
		t.Errorf("strangers displaced known entries: %d -> %d entries, %d unknown senders", before.Entries, after.Entries, after.Unknown)
	}
	checkAccounting(t, n.s)
}

// Class 4: a known sender makes room by evicting unknown senders, the
// relay charged with the most first.
func TestKnownSendersDisplaceUnknownFirst(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	honestRelay, floodRelay := peer.ID("honest-relay"), peer.ID("flood-relay")
	announceVia(n.s, "far-publisher", honestRelay, 1, someEntries(50, 10))
	for r := range maxRemoteEntries / maxRelayedEntries {
		relay := floodRelay + peer.ID(fmt.Sprint(r))
		for o := range 5 {
			announceVia(n.s, peer.ID(fmt.Sprintf("flood-%d-%d", r, o)), relay, 1, someEntries(maxRelayedEntries/5, 10))
		}
	}
	checkAccounting(t, n.s)
	announceVia(n.s, "known", "", 1, someEntries(maxEntriesPerPeer, 10))
	if got := held(n.s, "known"); got != maxEntriesPerPeer {
		t.Fatalf("known sender got %d of %d entries in a budget full of strangers'", got, maxEntriesPerPeer)
	}
	if got := held(n.s, "far-publisher"); got != 50 {
		t.Errorf("the stranger with the smallest relay lost entries first: %d of 50 left", got)
	}
	checkAccounting(t, n.s)
}

// Class 4: what one relay can inject for keys it is not is capped, and a
// key that then connects is no longer charged to it.
func TestRelayCapsUnknownSenders(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	relay := peer.ID("relay")
	var origins []peer.ID
	for o := range 20 {
		p := peer.ID(fmt.Sprintf("origin-%d", o))
		origins = append(origins, p)
		announceVia(n.s, p, relay, 1, someEntries(maxEntriesPerPeer, 10))
	}
	st := n.s.Stats()
	if st.Entries > maxRelayedEntries {
		t.Fatalf("one relay injected %d entries for 20 made-up keys; cap %d", st.Entries, maxRelayedEntries)
	}
	announceVia(n.s, "other-origin", "other-relay", 1, someEntries(100, 10))
	if got := held(n.s, "other-origin"); got != 100 {
		t.Errorf("another relay's stranger got %d of 100 entries", got)
	}
	// An origin that connects has standing of its own.
	var connected peer.ID
	for _, p := range origins {
		if held(n.s, p) > 0 {
			connected = p
			break
		}
	}
	n.s.remote.markKnown(connected)
	had := held(n.s, connected)
	announceVia(n.s, connected, "", 2, someEntries(100, 10))
	if got := held(n.s, connected); got != had+100 {
		t.Errorf("a connected origin got %d more entries, want 100", got-had)
	}
	announceVia(n.s, "origin-new", relay, 1, someEntries(had, 10))
	if got := held(n.s, "origin-new"); got != had {
		t.Errorf("the relay's share did not free up when its origin connected: %d of %d taken", got, had)
	}
	checkAccounting(t, n.s)
}

// The accounting stays exact through any mix of announcements, catalogs,
// withdrawals and standing changes.
func TestBudgetAccountingIsExact(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	rng := rand.New(rand.NewPCG(1, 2))
	senders := make([]peer.ID, 12)
	for i := range senders {
		senders[i] = peer.ID(fmt.Sprintf("s%d", i))
	}
	published := map[peer.ID][]Entry{}
	tm := int64(1)
	for range 400 {
		p := senders[rng.IntN(len(senders))]
		tm++
		switch rng.IntN(6) {
		case 0, 1:
			via := peer.ID("")
			if rng.IntN(2) == 0 {
				via = peer.ID(fmt.Sprintf("r%d", rng.IntN(3)))
			}
			es := someEntries(1+rng.IntN(3000), rng.IntN(60))
			published[p] = append(published[p], es...)
			announceVia(n.s, p, via, tm, es)
		case 2:
			if es := published[p]; len(es) > 0 {
				var cs []cid.Cid
				for _, e := range es[:rng.IntN(len(es))] {
					cs = append(cs, e.CID)
				}
				n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: cs, time: tm})
			}
		case 3:
			n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH_ALL, time: tm})
		case 4:
			n.s.replaceCatalog(p, n.s.remote.Now(), someEntries(rng.IntN(2000), 5))
		case 5:
			n.s.remote.markKnown(p)
		}
		checkAccounting(t, n.s)
	}
}

// The bytes charged for an entry are the heap it takes, within a quarter
// (entryOverhead), so the byte budget bounds memory.
func TestEntryCostMatchesHeap(t *testing.T) {
	for _, nameLen := range []int{1, 40, proto.MaxNameLen} {
		var rv remoteView
		rv.init()
		es := someEntries(40000, nameLen)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range 4 {
			pc := rv.peer(peer.ID(fmt.Sprint(i)), true, "")
			for j, e := range es[i*10000 : (i+1)*10000] {
				rv.putEntry(pc, e)
				rv.putStamp(pc, e.CID, stamp{1, int64(j)})
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The entries' names and CIDs were allocated before: count them.
		perEntry := int(after.HeapInuse-before.HeapInuse)/len(es) + nameLen + len(es[0].CID.KeyString())
		charged := rv.cost / len(es)
		t.Logf("names of %d bytes: %d bytes of heap per entry, %d charged", nameLen, perEntry, charged)
		if perEntry > charged*5/4 {
			t.Errorf("names of %d bytes: an entry takes %d bytes, charged %d", nameLen, perEntry, charged)
		}
		runtime.KeepAlive(es)
	}
}

// Class 9b: a withdrawn file's old signed announcement, replayed after
// its tombstone expired, does not bring it back.
func TestReplayAfterTombstoneExpiry(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	var now int64 = 1
	n.s.remote.mu.Lock()
	n.s.remote.now = func() int64 { return now }
	n.s.remote.mu.Unlock()
	p := randPeer(t)
	x := Entry{Name: "withdrawn.txt", CID: randCID(), ChunkSize: 1024}
	publishX := &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{x}, time: 1000}
	n.s.applyAnnouncement(p, publishX)
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: []cid.Cid{x.CID}, time: 1001})
	now += int64(tombstoneTTL) + int64(time.Second)
	// The publisher is quiet; the tombstone is swept by activity of others'.
	n.s.remote.mu.Lock()
	n.s.remote.sweep(n.s.remote.peers[p], now)
	n.s.remote.mu.Unlock()
	if _, stamps := remoteState(n.s, p); stamps != 0 {
		t.Fatalf("tombstone not swept: %d stamps", stamps)
	}
	n.s.applyAnnouncement(p, publishX) // the replay
	if len(n.s.Providers(x.CID)) != 0 {
		t.Fatal("a replayed old publish brought back a withdrawn file")
	}
	if _, err := n.s.validateAnnouncement(p, p, marshalAnn(t, proto.Announcement_PUBLISH, 1000, x)); err == nil {
		t.Error("the validator passes the replay on")
	}
	// What the publisher sends next is taken.
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{x}, time: 1002})
	if len(n.s.Providers(x.CID)) != 1 {
		t.Fatal("a new publish after the withdrawal was dropped")
	}
}

func marshalAnn(t *testing.T, kind proto.Announcement_Kind, tm int64, es ...Entry) []byte {
	t.Helper()
	m := &proto.Announcement{Kind: kind, TimeUnixNano: tm}
	for _, e := range es {
		m.Entries = append(m.Entries, toWire(e))
	}
	b, err := gproto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Class 9b: the marks survive a restart, and stay bounded.
func TestReplayAfterRestart(t *testing.T) {
	checkLeaks(t)
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	h := loopbackHost(t)
	cfg := Config{Network: HostNetwork(h, nil), Datastore: ds, ShareDir: t.TempDir(), OnChange: OnChangeIgnore}
	s1, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := randPeer(t)
	x := Entry{Name: "withdrawn.txt", CID: randCID(), ChunkSize: 1024}
	s1.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{x}, time: 1000})
	s1.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: []cid.Cid{x.CID}, time: 1001})
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	s2.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{x}, time: 1000})
	if len(s2.Providers(x.CID)) != 0 {
		t.Fatal("after a restart, a replayed old publish brought back a withdrawn file")
	}
	s2.applyAnnouncement(p, &announcement{kind: proto.Announcement_PUBLISH, entries: []Entry{x}, time: 1001})
	if len(s2.Providers(x.CID)) != 1 {
		t.Fatal("after a restart, the publisher's newest time itself was refused")
	}
	// Bounded: many publishers, at most maxMarks remembered.
	for i := range maxMarks + 100 {
		s2.applyAnnouncement(peer.ID(fmt.Sprint("m", i)), &announcement{kind: proto.Announcement_PUBLISH,
			entries: []Entry{{Name: "f", CID: randCID(), ChunkSize: 1024}}, time: 5})
	}
	s2.remote.mu.Lock()
	marks := len(s2.remote.marks.m)
	s2.remote.mu.Unlock()
	if marks > maxMarks {
		t.Errorf("%d announcement marks, cap %d", marks, maxMarks)
	}
}

// Class 9a: the name most (known) providers give wins, and strangers
// cannot make a known publisher's name ambiguous.
func TestNamesFromProviders(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	honest := peer.ID("honest")
	y := Entry{Name: "report.pdf", Size: 10, CID: randCID(), ChunkSize: 1024}
	announceVia(n.s, honest, "", 1, []Entry{y})
	// Two strangers name the honest file first in sort order...
	liar := y
	liar.Name = "aaa.exe"
	announceVia(n.s, "liar1", "relay", 1, []Entry{liar})
	announceVia(n.s, "liar2", "relay", 1, []Entry{liar})
	// ...and a third offers other content under the honest name.
	z := Entry{Name: "report.pdf", Size: 10, CID: randCID(), ChunkSize: 1024}
	announceVia(n.s, "liar3", "relay", 1, []Entry{z})

	r, ok := findCID(n.s.Available(), y.CID)
	if !ok || r.Name != "report.pdf" {
		t.Errorf("the honest file is shown as %q, want report.pdf (the known provider's name)", r.Name)
	}
	got, err := n.s.Resolve("report.pdf")
	if err != nil || !got.CID.Equals(y.CID) {
		t.Errorf("Resolve(report.pdf) = %v, %v; want the known publisher's file, not ambiguous", got.CID, err)
	}
	// The stranger's file is still listed, under its CID.
	if _, ok := findCID(n.s.Available(), z.CID); !ok {
		t.Error("a stranger's file is no longer listed")
	}
	// A known liar heard after the publisher, its name sorting first,
	// ties on known votes: the name heard first wins, the strangers'
	// votes do not break the tie.
	announceVia(n.s, "late-liar", "", 1, []Entry{liar})
	if r, _ := findCID(n.s.Available(), y.CID); r.Name != "report.pdf" {
		t.Errorf("a known liar heard later renamed the file %q", r.Name)
	}
	// Among known providers, the majority names it.
	for _, p := range []peer.ID{"k1", "k2", "k3"} {
		e := y
		e.Name = "report-final.pdf"
		announceVia(n.s, p, "", 1, []Entry{e})
	}
	if r, _ := findCID(n.s.Available(), y.CID); r.Name != "report-final.pdf" {
		t.Errorf("shown as %q, want the name three known providers give", r.Name)
	}
	// Two known peers naming different files alike stay ambiguous.
	w := Entry{Name: "same.txt", Size: 1, CID: randCID(), ChunkSize: 1024}
	v := Entry{Name: "same.txt", Size: 2, CID: randCID(), ChunkSize: 1024}
	announceVia(n.s, "k1", "", 2, []Entry{w})
	announceVia(n.s, "k2", "", 2, []Entry{v})
	if _, err := n.s.Resolve("same.txt"); err == nil {
		t.Error("two known peers' different files under one name resolved to one")
	}
}

// A relay whose share for unknown senders is used up gets their next
// messages ignored before they are decoded (what such a flood cost was
// mostly decoding): even a malformed one is ignored, not rejected as
// malformed. A known sender through the same relay is still decoded.
func TestFullRelayIgnoredBeforeDecoding(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	relay := peer.ID("relay")
	relayed := func() int {
		n.s.remote.mu.Lock()
		defer n.s.remote.mu.Unlock()
		if l := n.s.remote.relayed[relay]; l != nil {
			return l.entries
		}
		return 0
	}
	for o := 0; relayed() < maxRelayedEntries; o++ {
		announceVia(n.s, peer.ID(fmt.Sprintf("origin-%d", o)), relay, 1, someEntries(maxEntriesPerPeer, 10))
	}
	garbage := []byte{0xff, 0xff, 0xff}
	if _, err := n.s.validateAnnouncement("stranger", relay, garbage); !errors.Is(err, errIgnore) {
		t.Fatalf("a stranger's message through a full relay: %v, want it ignored before decoding", err)
	}
	announceVia(n.s, "friend", "friend", 1, someEntries(1, 10)) // heard from directly
	n.s.remote.markKnown("friend")
	if _, err := n.s.validateAnnouncement("friend", relay, garbage); err == nil || errors.Is(err, errIgnore) {
		t.Fatalf("a known sender's malformed message through the same relay: %v, want it decoded and rejected", err)
	}
	if _, err := n.s.validateAnnouncement("stranger", "other-relay", garbage); err == nil || errors.Is(err, errIgnore) {
		t.Fatalf("a stranger's malformed message through another relay: %v, want it decoded and rejected", err)
	}
}
