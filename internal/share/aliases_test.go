package share

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Tests of one content published under several names (aliases.go).

// publishAs publishes name (already written) and wants it published, not
// "already published".
func publishAs(t *testing.T, s *Service, name string) Entry {
	t.Helper()
	res, err := s.Publish(context.Background(), name)
	if err != nil || len(res) != 1 || res[0].Already {
		t.Fatalf("publish %s = %+v, %v", name, res, err)
	}
	return res[0].Entry
}

func catalogNames(s *Service, c cid.Cid) []string {
	var out []string
	for _, pe := range s.catalogResponse(someone).GetEntries() {
		if got, err := cid.Cast(pe.GetCid()); err == nil && got.Equals(c) {
			out = append(out, pe.GetName())
		}
	}
	slices.Sort(out)
	return out
}

func TestSecondNamePublishedWithdrawnAndKept(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	const content = "the same bytes under two names"
	a := n.publish(t, "a.txt", content)
	n.write(t, "b.txt", content)
	b := publishAs(t, n.s, "b.txt")
	if !b.CID.Equals(a.CID) || b.Name != "b.txt" || !slices.Equal(b.Aliases, []string{"a.txt"}) {
		t.Fatalf("second name published as %+v; want the CID of a.txt, named b.txt, also a.txt", b)
	}
	if res, err := n.s.Publish(context.Background(), "b.txt"); err != nil || !res[0].Already || res[0].Entry.Name != "b.txt" {
		t.Fatalf("publishing b.txt again = %+v, %v; want Already, under b.txt", res, err)
	}
	pub := n.s.Published()
	if len(pub) != 1 || pub[0].Name != "a.txt" || !slices.Equal(pub[0].Aliases, []string{"b.txt"}) {
		t.Fatalf("Published() = %+v; want one entry, a.txt also b.txt", pub)
	}
	if byName := ByName(pub); len(byName) != 2 || byName[0].Name != "a.txt" || byName[1].Name != "b.txt" ||
		!slices.Equal(byName[1].Aliases, []string{"a.txt"}) {
		t.Fatalf("ByName = %+v", byName)
	}
	if got := catalogNames(n.s, a.CID); !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Fatalf("catalogue lists %v for the CID; want both names", got)
	}
	files, err := n.s.Files()
	if err != nil || len(files) != 2 {
		t.Fatalf("Files() = %+v, %v", files, err)
	}
	for _, f := range files {
		if !f.Published || !f.CID.Equals(a.CID) || f.Changed {
			t.Errorf("Files(): %+v; want published, unchanged, the shared CID", f)
		}
	}

	// The names survive a restart; an index record without aliases (as
	// written before) still loads.
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	n.start(t, n.cfg)
	if pub := n.s.Published(); len(pub) != 1 || !slices.Equal(pub[0].Names(), []string{"a.txt", "b.txt"}) {
		t.Fatalf("after a restart Published() = %+v", pub)
	}

	// Withdrawing one name keeps the content served and provided under
	// the other.
	gone, err := n.s.Unpublish(context.Background(), "a.txt")
	if err != nil || len(gone) != 1 || gone[0].Name != "a.txt" || !gone[0].CID.Equals(a.CID) {
		t.Fatalf("Unpublish(a.txt) = %+v, %v", gone, err)
	}
	pub = n.s.Published()
	if len(pub) != 1 || pub[0].Name != "b.txt" || len(pub[0].Aliases) != 0 {
		t.Fatalf("after withdrawing a.txt Published() = %+v; want b.txt alone", pub)
	}
	if got := readServed(t, n.s, a.CID); got != content {
		t.Fatalf("served %q", got)
	}
	if !n.s.provides(a.CID) || !slices.Contains(n.s.provided(), a.CID) {
		t.Fatal("the content is no longer provided while b.txt still publishes it")
	}
	if got := catalogNames(n.s, a.CID); !slices.Equal(got, []string{"b.txt"}) {
		t.Fatalf("catalogue lists %v; want b.txt only", got)
	}
	// The last name goes: the CID goes.
	if gone, err := n.s.Unpublish(context.Background(), "b.txt"); err != nil || len(gone) != 1 {
		t.Fatalf("Unpublish(b.txt) = %+v, %v", gone, err)
	}
	if _, _, err := n.s.Open(a.CID, someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Open after the last name went = %v", err)
	}
	if n.s.provides(a.CID) {
		t.Fatal("still provided after the last name went")
	}

	// Both names given at once, or the CID, withdraw the content whole.
	n.publish(t, "a.txt", content)
	publishAs(t, n.s, "b.txt")
	if gone, err := n.s.Unpublish(context.Background(), "b.txt", "a.txt"); err != nil || len(gone) != 1 || len(n.s.Published()) != 0 {
		t.Fatalf("Unpublish(both names) = %+v, %v; left %+v", gone, err, n.s.Published())
	}
	n.publish(t, "a.txt", content)
	publishAs(t, n.s, "b.txt")
	if _, err := n.s.Unpublish(context.Background(), a.CID.String()); err != nil || len(n.s.Published()) != 0 {
		t.Fatalf("Unpublish(CID) = %v; left %+v", err, n.s.Published())
	}
}

// A second name shares the record's audience: one CID, one audience.
func TestSecondNameSharesTheAudience(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	friend := randPeer(t)
	n.write(t, "a.txt", "for a friend")
	res, err := n.s.PublishWith(context.Background(), PublishOptions{Audience: &Audience{Peers: []peer.ID{friend}}}, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	c := res[0].Entry.CID
	n.write(t, "b.txt", "for a friend")
	b := publishAs(t, n.s, "b.txt")
	if b.Audience.Public() || !b.Audience.equal(res[0].Entry.Audience) {
		t.Fatalf("second name's audience %v; want the first's %v", b.Audience, res[0].Entry.Audience)
	}
	if got := catalogNames(n.s, c); len(got) != 0 {
		t.Fatalf("a stranger's catalogue lists %v", got)
	}
	// --to on the second name changes it for both.
	res, err = n.s.PublishWith(context.Background(), PublishOptions{Audience: &Audience{}}, "b.txt")
	if err != nil || !res[0].Retargeted {
		t.Fatalf("retarget via the second name = %+v, %v", res, err)
	}
	if got := catalogNames(n.s, c); !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Fatalf("after publishing to everyone the catalogue lists %v", got)
	}
}

// Open serves the bytes from any name whose file still matches; the
// names that changed are withdrawn, the others stay.
func TestEditOfOneNameKeepsTheOtherServing(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false) // no watcher: Open notices
	const content = "shared content"
	a := n.publish(t, "a.txt", content)
	n.write(t, "b.txt", content)
	publishAs(t, n.s, "b.txt")
	n.write(t, "a.txt", "a.txt edited, other bytes")
	if got := readServed(t, n.s, a.CID); got != content {
		t.Fatalf("served %q after a.txt was edited; want b.txt's bytes", got)
	}
	if pub := n.s.Published(); len(pub) != 1 || pub[0].Name != "b.txt" || len(pub[0].Aliases) != 0 {
		t.Fatalf("Published() = %+v; want b.txt alone", pub)
	}
	// The withdrawn name is recorded in the index too.
	pollUntil(t, "the index drops a.txt", func() bool {
		idx, _, err := loadIndex(context.Background(), n.ds)
		r := idx[a.CID]
		return err == nil && r != nil && r.Name == "b.txt" && len(r.Aliases) == 0
	})
	// The last name edited: not served, changed.
	if err := os.Remove(filepath.Join(n.dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.s.Open(a.CID, someone); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open with every name changed = %v, want ErrChanged", err)
	}
}

// The watcher: editing one name republishes that name alone; deleting
// one withdraws that name alone.
func TestWatcherWithTwoNames(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false, func(c *Config) { c.OnChange = OnChangeRepublish })
	const content = "watched twice"
	a := n.publish(t, "a.txt", content)
	n.write(t, "b.txt", content)
	publishAs(t, n.s, "b.txt")
	n.write(t, "c.txt", content)
	publishAs(t, n.s, "c.txt")

	n.write(t, "a.txt", "a.txt now holds something else")
	pollUntil(t, "a.txt republished alone", func() bool {
		pub := n.s.Published()
		return len(pub) == 2 && slices.ContainsFunc(pub, func(e Entry) bool {
			return e.CID.Equals(a.CID) && slices.Equal(e.Names(), []string{"b.txt", "c.txt"})
		}) && slices.ContainsFunc(pub, func(e Entry) bool { return !e.CID.Equals(a.CID) && e.Name == "a.txt" })
	})
	if got := readServed(t, n.s, a.CID); got != content {
		t.Fatalf("served %q", got)
	}
	if err := os.Remove(filepath.Join(n.dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "b.txt withdrawn alone", func() bool {
		pub := n.s.Published()
		return len(pub) == 2 && slices.ContainsFunc(pub, func(e Entry) bool {
			return e.CID.Equals(a.CID) && slices.Equal(e.Names(), []string{"c.txt"})
		})
	})
	if got := readServed(t, n.s, a.CID); got != content {
		t.Fatalf("served %q", got)
	}
}

// Announcements carry one entry per name, all of one CID in one message;
// withdrawing one name is a PUBLISH of the others, which a receiver takes
// as the names the content now has; older messages do not bring a
// withdrawn name back.
func TestAnnouncementsOfTwoNames(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	s := newFakeService(t, f)
	n := &testNode{dir: s.ShareDir(), s: s}
	const content = "announced twice"
	a := n.publish(t, "a.txt", content)
	n.write(t, "b.txt", content)
	publishAs(t, s, "b.txt")
	if _, err := s.Unpublish(context.Background(), "a.txt"); err != nil {
		t.Fatal(err)
	}
	// The three announcements, in order, as a peer receives them.
	var msgs []*announcement
	f.waitFor(t, "three announcements", func() bool {
		msgs = msgs[:0]
		seen := map[string]bool{}
		for _, data := range f.sent {
			if seen[string(data)] { // each is sent twice
				continue
			}
			seen[string(data)] = true
			m, err := parseAnnouncement(data)
			if err != nil {
				t.Errorf("malformed announcement: %v", err)
				return false
			}
			msgs = append(msgs, m)
		}
		return len(msgs) >= 3
	})
	want := [][]string{{"a.txt"}, {"a.txt", "b.txt"}, {"b.txt"}}
	for i, m := range msgs[:3] {
		if m.kind != proto.Announcement_PUBLISH || len(m.entries) != 1 || !m.entries[0].CID.Equals(a.CID) ||
			!slices.Equal(m.entries[0].Names(), want[i]) {
			t.Fatalf("announcement %d: %v %+v; want a PUBLISH of %v", i, m.kind, m.entries, want[i])
		}
	}

	r := newNode(t, loopbackHost(t), false)
	p := randPeer(t)
	names := func() []string {
		e, ok := findCID(r.s.Available(), a.CID)
		if !ok {
			return nil
		}
		return e.Names()
	}
	r.s.applyAnnouncement(p, msgs[1])
	if got := names(); !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Fatalf("receiver shows %v; want both names", got)
	}
	if got, err := r.s.Resolve("b.txt"); err != nil || got.Name != "b.txt" || !got.CID.Equals(a.CID) {
		t.Fatalf("Resolve(b.txt) = %+v, %v; want the CID under b.txt", got.Entry, err)
	}
	if got, err := r.s.Resolve("a.txt"); err != nil || got.Name != "a.txt" {
		t.Fatalf("Resolve(a.txt) = %+v, %v", got.Entry, err)
	}
	if got := r.s.Search("B.TX"); len(got) != 1 || !got[0].CID.Equals(a.CID) {
		t.Fatalf("Search by the second name = %+v", got)
	}
	r.s.applyAnnouncement(p, msgs[2])
	if got := names(); !slices.Equal(got, []string{"b.txt"}) {
		t.Fatalf("after a.txt was withdrawn the receiver shows %v", got)
	}
	if _, err := r.s.Resolve("a.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve(withdrawn name) = %v", err)
	}
	r.s.applyAnnouncement(p, msgs[1]) // a replay of the older message
	if got := names(); !slices.Equal(got, []string{"b.txt"}) {
		t.Fatalf("a replayed older announcement brought back %v", got)
	}
	if n, _ := remoteState(r.s, p); n != 1 {
		t.Fatalf("receiver holds %d entries for the publisher; want 1 (one per CID)", n)
	}
	checkAccounting(t, r.s)
}

// A catalogue pulled from a peer keeps every name it gives a CID.
func TestCatalogCarriesBothNames(t *testing.T) {
	checkLeaks(t)
	a := newNode(t, loopbackHost(t), false)
	b := newNode(t, loopbackHost(t), false)
	x := a.publish(t, "report.pdf", "quarterly numbers")
	a.write(t, "report-final.pdf", "quarterly numbers")
	publishAs(t, a.s, "report-final.pdf")
	connect(t, b.h, a.h)
	av := waitView(t, b.s, "A's catalogue", func(av []Remote) bool { return len(av) == 1 })
	r := av[0]
	if !r.CID.Equals(x.CID) || !slices.Equal(r.Names(), []string{"report.pdf", "report-final.pdf"}) ||
		!slices.Equal(r.Providers[0].Names(), []string{"report.pdf", "report-final.pdf"}) {
		t.Fatalf("Available = %+v; want one CID with both names", r)
	}
	if got, err := b.s.Resolve("report-final.pdf"); err != nil || got.Name != "report-final.pdf" {
		t.Fatalf("Resolve(second name) = %+v, %v", got.Entry, err)
	}
	if _, err := a.s.Unpublish(context.Background(), "report.pdf"); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if av := b.s.Available(); len(av) != 1 || !slices.Equal(av[0].Names(), []string{"report-final.pdf"}) {
		t.Fatalf("after one name was withdrawn and a pull: %+v", av)
	}
}

// Names of other providers: a stranger giving a known publisher's
// content extra names adds none to what is shown; a provider's names
// each get one vote.
func TestNamesOfSeveralProviders(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	y := Entry{Name: "report.pdf", Aliases: []string{"copy.pdf"}, Size: 10, CID: randCID(), ChunkSize: 1024}
	announceVia(n.s, "honest", "", 1, []Entry{y})
	liar := y
	liar.Name, liar.Aliases = "report.pdf", []string{"aaa.exe"}
	announceVia(n.s, "stranger", "relay", 1, []Entry{liar})
	r, _ := findCID(n.s.Available(), y.CID)
	if r.Name != "report.pdf" || !slices.Equal(r.Aliases, []string{"copy.pdf"}) {
		t.Fatalf("shown as %v; want the known publisher's names only", r.Names())
	}
	// The stranger's extra name still resolves (as any provider's name
	// does), but a download keeps the shown name.
	if got, err := n.s.Resolve("aaa.exe"); err != nil || got.Name != "report.pdf" {
		t.Fatalf("Resolve(stranger's name) = %+v, %v", got.Entry, err)
	}
	// Two known providers agree on a second name: it wins the vote over
	// the honest publisher's first, and the first stays listed.
	for _, p := range []peer.ID{"k1", "k2"} {
		e := y
		e.Name, e.Aliases = "q3.pdf", nil
		announceVia(n.s, p, "", 1, []Entry{e})
	}
	r, _ = findCID(n.s.Available(), y.CID)
	if r.Name != "q3.pdf" {
		t.Fatalf("shown as %q; want q3.pdf (two known votes)", r.Name)
	}
}

// Another peer's names per CID are capped and charged to the budget; the
// accounting stays exact as names come and go.
func TestRemoteNamesAreBoundedAndCharged(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	p := peer.ID("many-names")
	e := Entry{Name: "n0", Size: 1, CID: randCID(), ChunkSize: 1024}
	var wire []Entry
	for i := range 40 {
		w := e
		w.Name = fmt.Sprintf("n%d", i)
		wire = append(wire, w)
	}
	wire = append(wire, e) // a repeat
	grouped := groupByCID(wire)
	if len(grouped) != 1 || len(grouped[0].Names()) != maxNamesPerEntry {
		t.Fatalf("grouped %d entries with %d names; want 1 with %d", len(grouped), len(grouped[0].Names()), maxNamesPerEntry)
	}
	announceVia(n.s, p, "", 1, grouped)
	r, _ := findCID(n.s.Available(), e.CID)
	if len(r.Names()) != maxNamesPerEntry {
		t.Fatalf("held %d names", len(r.Names()))
	}
	checkAccounting(t, n.s)
	one := entryCost(Entry{Name: "n0"})
	if st := n.s.Stats(); st.Entries != 1 || st.Bytes < one+(maxNamesPerEntry-1)*aliasCost {
		t.Fatalf("stats %+v: the other names are not charged", st)
	}
	// Fewer names replace more (a later message), and the charge follows.
	announceVia(n.s, p, "", 2, []Entry{e})
	checkAccounting(t, n.s)
	if r, _ := findCID(n.s.Available(), e.CID); len(r.Aliases) != 0 {
		t.Fatalf("names left: %v", r.Names())
	}
	// A full catalogue replacing it, with names, stays exact too.
	n.s.replaceCatalog(p, n.s.remote.Now(), grouped)
	checkAccounting(t, n.s)
	n.s.applyAnnouncement(p, &announcement{kind: proto.Announcement_UNPUBLISH, cids: []cid.Cid{e.CID}, time: time.Now().UnixNano()})
	if _, ok := findCID(n.s.Available(), e.CID); ok {
		t.Fatal("UNPUBLISH of the CID left a name")
	}
	checkAccounting(t, n.s)
}

// The bytes charged for an entry's other names are the heap they take,
// within a quarter.
func TestAliasCostMatchesHeap(t *testing.T) {
	const k, per = 2000, maxNamesPerEntry - 1
	for _, nameLen := range []int{1, 40} {
		es := someEntries(k, nameLen)
		for i := range es {
			for j := range per {
				es[i].Aliases = append(es[i].Aliases, fmt.Sprintf("%s-%d", es[i].Name, j))
			}
		}
		var rv remoteView
		rv.init()
		pc := rv.peer("p", true, "")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for j, e := range es {
			rv.putEntry(pc, e)
			rv.putStamp(pc, e.CID, stamp{1, int64(j)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		names := 0
		for _, e := range es {
			for _, a := range e.Names() {
				names += len(a)
			}
		}
		// The names and alias slices were allocated before: count them.
		perEntry := (int(after.HeapInuse-before.HeapInuse)+names)/k + per*16 + len(es[0].CID.KeyString())
		charged := rv.cost / k
		t.Logf("names of %d bytes: %d bytes of heap per entry with %d other names, %d charged", nameLen, perEntry, per, charged)
		if perEntry > charged*5/4 {
			t.Errorf("an entry with %d other names takes %d bytes, charged %d", per, perEntry, charged)
		}
		runtime.KeepAlive(es)
	}
}

// One content takes at most maxNamesPerEntry names; the next is refused
// with a clear error, the others stay published.
func TestNamesPerContentAreCapped(t *testing.T) {
	n := newNode(t, loopbackHost(t), false)
	var names []string
	for i := range maxNamesPerEntry + 1 {
		name := fmt.Sprintf("copy-%02d.txt", i)
		n.write(t, name, "one content")
		names = append(names, name)
	}
	res, err := n.s.Publish(context.Background(), names...)
	if len(res) != maxNamesPerEntry || err == nil || !strings.Contains(err.Error(), names[maxNamesPerEntry]) ||
		!strings.Contains(err.Error(), "at most 16") {
		t.Fatalf("publish of %d names = %d results, %v", len(names), len(res), err)
	}
	if pub := n.s.Published(); len(pub) != 1 || len(pub[0].Names()) != maxNamesPerEntry {
		t.Fatalf("Published() = %+v", pub)
	}
}
