package share

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Fuzz targets for the decoders of what peers send this package:
// announcements (parseAnnouncement) and catalog responses (readCatalog,
// fromWire). go test runs them on their seeds (below and in
// testdata/fuzz); go test -fuzz=FuzzX explores further. Whatever the
// input, decoding must not panic, what it accepts must satisfy the checks
// the rest of the package relies on, and applying it must keep the remote
// view within its budget with exact accounting.

// fuzzService is a Service on the fake network, shared by the inputs of
// one fuzz target.
func fuzzService(tb testing.TB) *Service {
	tb.Helper()
	s, err := New(context.Background(), Config{
		Network:   newFakeNet(tb),
		Datastore: dssync.MutexWrap(datastore.NewMapDatastore()),
		ShareDir:  tb.TempDir(),
		OnChange:  OnChangeIgnore,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func seedEntry(name string) *proto.CatalogEntry {
	return &proto.CatalogEntry{Name: name, Size: 3000, Cid: randCID().Bytes(), Sha256: make([]byte, 32),
		ChunkSize: 1024, PublishedUnix: 1700000000}
}

func marshalSeed(tb testing.TB, m gproto.Message) []byte {
	tb.Helper()
	b, err := gproto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkEntry asserts what the package relies on for an accepted entry.
func checkEntry(t *testing.T, e Entry) {
	t.Helper()
	if err := CheckName(e.Name); err != nil {
		t.Fatalf("accepted entry with a bad name: %v", err)
	}
	if !e.CID.Defined() || e.ChunkSize <= 0 || e.Size < 0 {
		t.Fatalf("accepted entry %+v", e)
	}
	seen := map[string]bool{}
	for _, n := range e.Names() {
		if err := CheckName(n); err != nil || seen[n] {
			t.Fatalf("accepted entry with a bad or repeated name %q: %v", n, err)
		}
		seen[n] = true
	}
	if len(seen) > maxNamesPerEntry {
		t.Fatalf("accepted entry with %d names", len(seen))
	}
	// On the wire: one entry per name, grouped back into one.
	var backs []Entry
	for _, pe := range toWireAll(e) {
		back, err := fromWire(pe)
		if err != nil {
			t.Fatalf("entry does not survive a round trip: %+v: %v", e, err)
		}
		backs = append(backs, back)
	}
	if backs = groupByCID(backs); len(backs) != 1 || !sameEntry(backs[0], e) || !backs[0].CID.Equals(e.CID) {
		t.Fatalf("entry does not survive a round trip: %+v -> %+v", e, backs)
	}
}

func FuzzParseAnnouncement(f *testing.F) {
	f.Add(marshalSeed(f, &proto.Announcement{Kind: proto.Announcement_PUBLISH, TimeUnixNano: 1,
		Entries: []*proto.CatalogEntry{seedEntry("a.txt"), seedEntry("ünïcode name.bin")}}))
	f.Add(marshalSeed(f, &proto.Announcement{Kind: proto.Announcement_UNPUBLISH, TimeUnixNano: 2,
		Entries: []*proto.CatalogEntry{{Cid: randCID().Bytes()}}}))
	f.Add(marshalSeed(f, &proto.Announcement{Kind: proto.Announcement_UNPUBLISH_ALL, TimeUnixNano: 3}))
	f.Add(marshalSeed(f, &proto.Announcement{Kind: proto.Announcement_PUBLISH, TimeUnixNano: 4,
		Entries: []*proto.CatalogEntry{seedEntry("esc\x1b]0;title\x07"), seedEntry("con.txt"), seedEntry("../x")}}))
	f.Add(marshalSeed(f, &proto.Announcement{Kind: 7, TimeUnixNano: 5}))
	f.Add(marshalSeed(f, &proto.Announcement{Kind: proto.Announcement_PUBLISH, TimeUnixNano: -1}))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	s := fuzzService(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseAnnouncement(data)
		if err != nil {
			if a != nil {
				t.Fatal("an error and an announcement")
			}
			return
		}
		if a.time <= 0 {
			t.Fatalf("accepted time %d", a.time)
		}
		switch a.kind {
		case proto.Announcement_PUBLISH:
			for _, e := range a.entries {
				checkEntry(t, e)
			}
		case proto.Announcement_UNPUBLISH:
			for _, c := range a.cids {
				if !c.Defined() {
					t.Fatal("accepted an undefined CID")
				}
			}
		case proto.Announcement_UNPUBLISH_ALL:
		default:
			t.Fatalf("accepted kind %v", a.kind)
		}
		// As a stranger's through a relay, then as a connected sender's.
		a.via = "fuzz-relay"
		s.applyAnnouncement("fuzz-origin", a)
		a.via = ""
		s.applyAnnouncement("fuzz-sender", a)
		checkAccounting(t, s)
	})
}

func FuzzReadCatalog(f *testing.F) {
	delimited := func(m gproto.Message) []byte {
		var b bytes.Buffer
		if err := proto.WriteMsg(&b, m); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	good := delimited(&proto.CatalogResponse{Entries: []*proto.CatalogEntry{seedEntry("a.txt"), seedEntry("b c.pdf")}})
	f.Add(good)
	f.Add(good[:len(good)/2]) // truncated
	f.Add(delimited(&proto.CatalogResponse{}))
	f.Add(delimited(&proto.CatalogResponse{Entries: []*proto.CatalogEntry{
		seedEntry("\u202egnp.exe"), seedEntry("AUX"), {Name: "no-cid", Sha256: make([]byte, 32), ChunkSize: 1024},
		{Name: "short-sha", Cid: randCID().Bytes(), Sha256: []byte{1}, ChunkSize: 1024},
		{Name: "huge", Cid: randCID().Bytes(), Sha256: make([]byte, 32), ChunkSize: 1024, Size: 1 << 62},
	}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}) // length far over the limit
	f.Add([]byte{0x05, 0x0a, 0x03, 0x0a, 0x01})
	s := fuzzService(f)
	p := peer.ID("fuzz-catalog")
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, bad, err := readCatalog(bytes.NewReader(data))
		if err != nil {
			if entries != nil || bad != 0 {
				t.Fatal("an error and entries")
			}
			return
		}
		seen := map[cid.Cid]bool{}
		for _, e := range entries {
			checkEntry(t, e)
			seen[e.CID] = true
		}
		s.replaceCatalog(p, s.remote.Now(), entries)
		if got := len(s.Providers(randCID())); got != 0 {
			t.Fatal("a provider for a CID nobody listed")
		}
		n, _ := remoteState(s, p)
		if n > len(seen) {
			t.Fatalf("%d entries held from a catalog of %d CIDs", n, len(seen))
		}
		checkAccounting(t, s)
	})
}
