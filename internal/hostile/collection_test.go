package hostile

// Class 11, hostile collection documents: a provider serves, for a CID
// the victim gets, a collection document that matches that CID (the
// attacker made the CID itself) but is built to hurt: as many entries as
// a document may hold, paths deeper than a document may have, or files
// whose CIDs name other collections (a folder that "contains" folders, to
// make the fetcher recurse). The fetcher reads at most collection.MaxSize
// bytes of a document (checked on the announced length, before it
// allocates), refuses what the rules forbid before it writes anything,
// never treats a file's CID as a folder, and stays within stated bounds
// of memory, disk and time.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// docServer answers MANIFEST requests with the documents it holds, by
// CID, and everything else with NOT_SERVED; it counts the MANIFEST
// requests for each CID.
type docServer struct {
	mu   sync.Mutex
	docs map[string][]byte
	asks map[string]int
}

func newDocServer() *docServer {
	return &docServer{docs: make(map[string][]byte), asks: make(map[string]int)}
}

func (ds *docServer) add(doc []byte) cid.Cid {
	c := manifest.CIDOf(doc)
	ds.mu.Lock()
	ds.docs[c.KeyString()] = doc
	ds.mu.Unlock()
	return c
}

func (ds *docServer) asked(c cid.Cid) int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.asks[c.KeyString()]
}

func (ds *docServer) answer(_ *fakeProvider, st network.Stream, sess *bbsaes.Session, req *proto.FetchRequest) error {
	c, err := cid.Cast(req.GetCid())
	if err != nil {
		return err
	}
	ds.mu.Lock()
	doc := ds.docs[c.KeyString()]
	if req.GetKind() == proto.FetchRequest_MANIFEST {
		ds.asks[c.KeyString()]++
	}
	ds.mu.Unlock()
	if req.GetKind() != proto.FetchRequest_MANIFEST || doc == nil {
		return reply(st, sess, c, 0, proto.FetchResponse_NOT_SERVED, nil)
	}
	return reply(st, sess, c, 0, proto.FetchResponse_OK, doc)
}

// rawDoc encodes a document as the wire has it, without the checks of
// collection.Marshal (the attacker does not run them).
func rawDoc(t *testing.T, d *collection.Document) []byte {
	t.Helper()
	body, err := gproto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{'p', '2', 'p', 'c', collection.Version, 0, 0, 0}, body...)
}

// fileCID is the CID of a file of n bytes of b (chunks of 1 MiB).
func fileCID(n int, b byte) cid.Cid {
	m := &manifest.Manifest{Size: int64(n), ChunkSize: manifest.DefaultChunkSize}
	return manifest.CIDOf(append(m.Marshal(), b)) // a CID nobody serves: only its form matters
}

// getColl has the victim get c from fp only, within d, and returns the
// error and how long it took.
func getColl(t *testing.T, v *victimNode, fp *fakeProvider, c cid.Cid, d time.Duration) (*transfer.Result, error, time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := getFrom(v.Node, c, d, nil, fp.addrInfo())
	return res, err, time.Since(start)
}

// fetchDoc has the victim fetch collection c's document from fp only
// (ls), within d.
func fetchDoc(t *testing.T, v *victimNode, fp *fakeProvider, c cid.Cid, d time.Duration) (*collection.Collection, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ai := fp.addrInfo()
	return v.Transfer.FetchCollection(ctx, c, transfer.GetOptions{Hints: []peer.AddrInfo{ai}, From: []peer.ID{ai.ID}})
}

// A document deeper than collection.MaxDepth, and one with a path that
// climbs out (".."), both matching their CIDs, are refused before
// anything is written, at once, whoever asks again.
func TestCollectionForbiddenPaths(t *testing.T) {
	v := newVictim(t)
	ds := newDocServer()
	fp := newFakeProvider(t, ds.answer)
	deep := strings.Repeat("d/", collection.MaxDepth) + "f"
	for _, tc := range []struct{ name, path string }{
		{"deeper than MaxDepth", deep},
		{"dot-dot", "a/../../escape"},
		{"absolute", "/etc/passwd-p2pshare"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ds.add(rawDoc(t, &collection.Document{Name: "evil", Entries: []*collection.DocEntry{
				{Path: tc.path, Size: 3, Cid: fileCID(3, 1).Bytes()},
			}}))
			_, err, took := getColl(t, v, fp, c, 5*time.Second)
			if err == nil {
				t.Fatal("get succeeded")
			}
			t.Logf("refused in %v: %v", took.Round(time.Millisecond), err)
			// Its provider sent a document that breaks the rules: it is
			// not asked again by this get.
			if n := ds.asked(c); n != 1 {
				t.Errorf("the provider was asked %d times for the refused document, want once", n)
			}
			if ents := downloadsEntries(t, v.Node); len(ents) != 0 {
				t.Errorf("the refused folder left %v in the downloads folder", ents)
			}
			if _, err := os.Stat(filepath.Join(v.Config.DownloadDir, "..", "escape")); err == nil {
				t.Error("a file was written outside the downloads folder")
			}
		})
	}
	// A path exactly MaxDepth deep is within the rules: ls takes it.
	okDeep := strings.Repeat("d/", collection.MaxDepth-1) + "f"
	c := ds.add(rawDoc(t, &collection.Document{Name: "deep", Entries: []*collection.DocEntry{
		{Path: okDeep, Size: 3, Cid: fileCID(3, 2).Bytes()},
	}}))
	if coll, err := fetchDoc(t, v, fp, c, 10*time.Second); err != nil || coll.Entries[0].Path != okDeep {
		t.Fatalf("ls of a document %d deep: %v", collection.MaxDepth, err)
	}
	v.stillServed(t)
}

// A folder whose files' CIDs name other folders (one small, one over
// the 1 MiB of the pipelined path): the fetcher never takes a file's CID
// for a folder: it does not ask for the inner folders' files, writes no
// nested tree, and the get ends (no provider for those files) within its
// time.
func TestCollectionFileNamesAFolder(t *testing.T) {
	v := newVictim(t)
	ds := newDocServer()
	fp := newFakeProvider(t, ds.answer)
	leaf := fileCID(10, 3)
	inner := rawDoc(t, &collection.Document{Name: "inner", Entries: []*collection.DocEntry{{Path: "leaf", Size: 10, Cid: leaf.Bytes()}}})
	innerCID := ds.add(inner)
	outer := ds.add(rawDoc(t, &collection.Document{Name: "outer", Entries: []*collection.DocEntry{
		{Path: "big", Size: 5 << 20, Cid: innerCID.Bytes()},
		{Path: "small", Size: uint64(len(inner)), Cid: innerCID.Bytes()},
	}}))
	_, err, took := getColl(t, v, fp, outer, 8*time.Second)
	t.Logf("ended in %v: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("get of a folder whose files are folders succeeded")
	}
	if took > 20*time.Second {
		t.Errorf("the get took %v", took)
	}
	if n := ds.asked(leaf); n != 0 {
		t.Errorf("the inner folder's file was asked for %d times: the fetcher recursed", n)
	}
	for _, e := range downloadsEntries(t, v.Node) {
		if strings.Contains(e, "inner") || strings.Contains(e, "leaf") {
			t.Errorf("a nested tree was written: %s", e)
		}
	}
	filepath.WalkDir(v.Config.DownloadDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "leaf" {
			t.Errorf("the inner folder's file was written: %s", p)
		}
		return nil
	})
	v.Transfer.Cancel(outer)
	v.stillServed(t)
}

// collEntries is how many entries the large document has: as many as a
// document may have (about 14 MiB).
const collEntries = collection.MaxEntries

// maxDocHeap bounds how far the victim's heap may rise while it takes a
// document of collEntries entries, over the document itself: what
// decoding and checking it costs (measured: about 575 bytes an entry, the
// protobuf messages, the entries and the validator's sets), with room;
// nothing per file beyond that.
const maxDocHeap = 256 << 20

// A document of collection.MaxEntries entries, matching its
// CID: ls takes it within bounds of time and memory; a get of it (whose
// files nobody serves) keeps on disk the document and nothing in
// proportion to its entries, and ends with its time.
func TestCollectionMaxEntries(t *testing.T) {
	v := newVictim(t)
	ds := newDocServer()
	fp := newFakeProvider(t, ds.answer)
	d := &collection.Document{Name: "many", Entries: make([]*collection.DocEntry, collEntries)}
	for i := range d.Entries {
		d.Entries[i] = &collection.DocEntry{Path: fmt.Sprintf("d%03d/f%07d", i/10000, i), Size: 1, Cid: fileCID(1, byte(i)).Bytes()}
	}
	doc := rawDoc(t, d)
	d = nil
	if len(doc) > collection.MaxSize {
		t.Fatalf("document of %d bytes, over MaxSize", len(doc))
	}
	t.Logf("document: %d entries, %.1f MiB", collEntries, mib(uint64(len(doc))))
	c := ds.add(doc)

	var coll *collection.Collection
	var err error
	start := time.Now()
	rise := heapPeak(func() {
		coll, err = fetchDoc(t, v, fp, c, time.Minute)
	})
	took := time.Since(start)
	t.Logf("ls: %v, heap rose by %.0f MiB (%.0f B an entry)", took.Round(time.Millisecond), mib(rise), float64(rise)/collEntries)
	if err != nil {
		t.Fatal(err)
	}
	if coll.Files() != collEntries {
		t.Fatalf("%d files listed, want %d", coll.Files(), collEntries)
	}
	if rise > maxDocHeap+uint64(len(doc)) {
		t.Errorf("heap rose by %.0f MiB taking the document (bound %.0f MiB)", mib(rise), mib(maxDocHeap+uint64(len(doc))))
	}
	if took > 30*time.Second {
		t.Errorf("ls took %v", took)
	}
	coll = nil

	rise = heapPeak(func() { _, err, took = getColl(t, v, fp, c, 30*time.Second) })
	t.Logf("get ended in %v, heap rose by %.0f MiB: %v", took.Round(time.Millisecond), mib(rise), err)
	if rise > maxDocHeap+uint64(len(doc)) {
		t.Errorf("heap rose by %.0f MiB getting the folder (bound %.0f MiB)", mib(rise), mib(maxDocHeap+uint64(len(doc))))
	}
	if err == nil {
		t.Fatal("get succeeded with no file served")
	}
	if took > time.Minute {
		t.Errorf("the get took %v", took)
	}
	// On disk: the document (kept to resume), a target, a done log, an
	// empty staging folder; nothing per entry.
	used := diskUsage(t, v.Config.DownloadDir)
	t.Logf("downloads folder: %.1f MiB", mib(used))
	if used > uint64(len(doc))+4<<20 {
		t.Errorf("the downloads folder holds %.1f MiB for a document of %.1f MiB", mib(used), mib(uint64(len(doc))))
	}
	if err := v.Transfer.Cancel(c); err != nil && !errors.Is(err, transfer.ErrNotFound) {
		t.Fatal(err)
	}
	v.stillServed(t)
}
