package share

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// folderService starts a Service on f over dir and ds (so a test can
// restart it on the same state).
func folderService(t *testing.T, f *fakeNet, dir string, ds datastore.Batching, onChange OnChange) *Service {
	t.Helper()
	s, err := New(context.Background(), Config{
		Network: f, Routing: f, Broadcast: f, Datastore: ds, ShareDir: dir,
		ChunkSize: 1024, CatalogInterval: time.Hour, OnChange: onChange,
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeTree writes files (path relative to dir -> content) and makes
// the folders given with a trailing "/".
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// publishFolderOK publishes one folder and returns its result.
func publishFolderOK(t *testing.T, s *Service, name string) PublishResult {
	t.Helper()
	res, err := s.Publish(context.Background(), name)
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	if len(res) != 1 || res[0].Folder == nil || !res[0].Entry.Collection {
		t.Fatalf("publish %s: %+v, want one folder", name, res)
	}
	return res[0]
}

// document returns the verified document of a published folder.
func document(t *testing.T, s *Service, c cid.Cid) *collection.Collection {
	t.Helper()
	doc, ok := s.Collection(c, s.Library.net.ID())
	if !ok {
		t.Fatalf("Collection(%s): not served", c)
	}
	col, err := collection.Verify(c, doc)
	if err != nil {
		t.Fatalf("Collection(%s) returned a document Verify refuses: %v", c, err)
	}
	return col
}

// readServed reads what Open serves under c, checked against its manifest.
func readServed(t *testing.T, s *Service, c cid.Cid) string {
	t.Helper()
	m, f, err := s.Open(c, someone)
	if err != nil {
		t.Fatalf("Open(%s): %v", c, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(b) != m.FileHash || int64(len(b)) != m.Size {
		t.Fatalf("Open(%s) serves bytes that do not match its manifest", c)
	}
	return string(b)
}

func entryAt(col *collection.Collection, p string) (collection.Entry, bool) {
	i := slices.IndexFunc(col.Entries, func(e collection.Entry) bool { return e.Path == p })
	if i < 0 {
		return collection.Entry{}, false
	}
	return col.Entries[i], true
}

func TestPublishFolderTree(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	s := folderService(t, f, dir, dssync.MutexWrap(datastore.NewMapDatastore()), OnChangeIgnore)
	big := strings.Repeat("0123456789abcdef", 200) // several 1 KiB chunks
	files := map[string]string{
		"photos/a.txt":              "alpha",
		"photos/empty.bin":          "",
		"photos/sub/deep/b.txt":     "beta",
		"photos/sub/big.bin":        big,
		"photos/été/ünïcødé 名前.txt": "unicode",
		"photos/nothing/":           "",
		"photos/nested/empty/":      "",
		"photos/.hidden":            "temp file",
		"photos/bad\x07name":        "a control character",
		"photos/run.sh":             "#!/bin/sh\n",
	}
	writeTree(t, dir, files)
	if err := os.Chmod(filepath.Join(dir, "photos/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("outside the share folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "photos/escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "photos/inside-link")); err != nil {
		t.Fatal(err)
	}

	res := publishFolderOK(t, s, "photos")
	fr := res.Folder
	if fr.Files != 6 || fr.Dirs != 2 || fr.Hashed != 6 || res.Entry.Files != 6 || res.Entry.Name != "photos" {
		t.Fatalf("folder result %+v, entry %+v; want 6 files, 2 empty folders", fr, res.Entry)
	}
	wantSize := int64(0)
	for p, c := range files {
		if !strings.HasSuffix(p, "/") && !strings.Contains(p, ".hidden") && !strings.Contains(p, "\x07") {
			wantSize += int64(len(c))
		}
	}
	if fr.Size != wantSize || res.Entry.Size != wantSize {
		t.Fatalf("size %d / %d, want %d", fr.Size, res.Entry.Size, wantSize)
	}
	skipped := map[string]string{}
	for _, sk := range fr.Skipped {
		skipped[sk.Path] = sk.Why
	}
	for p, why := range map[string]string{"photos/escape": "symlink", "photos/inside-link": "symlink", "photos/.hidden": "hidden", "photos/bad\x07name": "control"} {
		if !strings.Contains(skipped[p], why) {
			t.Errorf("skipped[%q] = %q, want it mentioning %q (all: %v)", p, skipped[p], why, skipped)
		}
	}

	col := document(t, s, res.Entry.CID)
	if col.Name != "photos" || col.Files() != 6 || col.TotalSize() != wantSize {
		t.Fatalf("document %+v", col)
	}
	for _, p := range []string{"nothing", "nested/empty"} {
		if e, ok := entryAt(col, p); !ok || !e.Dir {
			t.Errorf("empty folder %q: %+v, %v", p, e, ok)
		}
	}
	if e, _ := entryAt(col, "run.sh"); !e.Executable {
		t.Error("run.sh lost its executable bit")
	}
	if e, _ := entryAt(col, "a.txt"); e.Executable {
		t.Error("a.txt became executable")
	}
	// Every file is served under its own CID, the 0-byte one included.
	for p, content := range files {
		rel, ok := strings.CutPrefix(p, "photos/")
		if !ok || strings.HasSuffix(p, "/") || strings.Contains(p, ".hidden") || strings.Contains(p, "\x07") {
			continue
		}
		e, ok := entryAt(col, rel)
		if !ok {
			t.Fatalf("%q not in the document", rel)
		}
		if got := readServed(t, s, e.CID); got != content {
			t.Fatalf("Open(%s) for %q served %q", e.CID, rel, got)
		}
		if _, ok := s.Collection(e.CID, s.Library.net.ID()); ok {
			t.Fatalf("Collection(file CID %s) answered", e.CID)
		}
	}

	// One catalogue entry, one announcement, one provider record.
	if pub := s.Published(); len(pub) != 1 || !pub[0].Collection || !pub[0].CID.Equals(res.Entry.CID) || pub[0].Files != 6 {
		t.Fatalf("Published() = %+v", pub)
	}
	cat := s.catalogResponse(someone).GetEntries()
	if len(cat) != 1 || !cat[0].GetCollection() || cat[0].GetFiles() != 6 || cat[0].GetSize() != uint64(wantSize) {
		t.Fatalf("catalogue = %+v", cat)
	}
	if e, err := fromWire(cat[0]); err != nil || !e.Collection || e.Files != 6 {
		t.Fatalf("fromWire(catalogue entry) = %+v, %v", e, err)
	}
	f.waitFor(t, "the folder is provided", func() bool { return slices.Contains(f.provided, res.Entry.CID) })
	f.waitFor(t, "the folder is announced", func() bool { return len(f.sent) > 0 })
	f.mu.Lock()
	provided, sent := slices.Clone(f.provided), slices.Clone(f.sent)
	f.mu.Unlock()
	if len(provided) != 1 {
		t.Fatalf("provided %v, want only the folder's CID", provided)
	}
	if again := s.provided(); len(again) != 1 || !again[0].Equals(res.Entry.CID) {
		t.Fatalf("re-provided would be %v, want only the folder's CID", again)
	}
	a, err := parseAnnouncement(sent[0])
	if err != nil || len(sent) != 1 || a.kind != proto.Announcement_PUBLISH || len(a.entries) != 1 || !a.entries[0].Collection || a.entries[0].Files != 6 {
		t.Fatalf("announcements %d, first %+v, %v", len(sent), a, err)
	}

	// files shows the folder, published, unchanged; a new file changes it.
	lf := localFolderOf(t, s, "photos")
	if !lf.Published || lf.Changed || lf.Files != 6 || lf.Size != wantSize || !lf.CID.Equals(res.Entry.CID) {
		t.Fatalf("Files(): %+v", lf)
	}
	writeTree(t, dir, map[string]string{"photos/sub/new.txt": "new"})
	if lf := localFolderOf(t, s, "photos"); !lf.Changed || lf.Files != 7 {
		t.Fatalf("Files() after adding a file: %+v", lf)
	}
}

func localFolderOf(t *testing.T, s *Service, name string) LocalFile {
	t.Helper()
	fs, err := s.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Name == name {
			if !f.Folder {
				t.Fatalf("Files(): %q is not marked a folder", name)
			}
			return f
		}
	}
	t.Fatalf("Files() = %+v: no %q", fs, name)
	return LocalFile{}
}

// The same bytes in two folders, and twice in one, are one record, one
// CID; withdrawing one folder keeps the file served from the other, even
// once the withdrawn folder's copy is gone from disk.
func TestFolderDedupAcrossFolders(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	s := folderService(t, f, dir, dssync.MutexWrap(datastore.NewMapDatastore()), OnChangeIgnore)
	writeTree(t, dir, map[string]string{
		"a/shared.txt": "shared bytes", "a/twice.txt": "shared bytes", "a/only-a.txt": "only in a",
		"b/x/shared-too.txt": "shared bytes", "b/only-b.txt": "only in b",
	})
	ra := publishFolderOK(t, s, "a")
	rb := publishFolderOK(t, s, "b")
	ca, cb := document(t, s, ra.Entry.CID), document(t, s, rb.Entry.CID)
	shared, _ := entryAt(ca, "shared.txt")
	twice, _ := entryAt(ca, "twice.txt")
	sharedB, _ := entryAt(cb, "x/shared-too.txt")
	onlyA, _ := entryAt(ca, "only-a.txt")
	if !shared.CID.Equals(twice.CID) || !shared.CID.Equals(sharedB.CID) {
		t.Fatal("the same bytes got different CIDs")
	}
	s.mu.Lock()
	records := len(s.index)
	s.mu.Unlock()
	if records != 3 { // shared, only-a, only-b
		t.Fatalf("%d index records, want 3 (one per content)", records)
	}

	if _, err := s.Unpublish(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if got := readServed(t, s, shared.CID); got != "shared bytes" {
		t.Fatalf("shared file served as %q", got)
	}
	if _, _, err := s.Open(onlyA.CID, someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Open(file only in the withdrawn folder) = %v, want ErrNotPublished", err)
	}
	if _, ok := s.Collection(ra.Entry.CID, s.Library.net.ID()); ok {
		t.Fatal("withdrawn folder still served")
	}
	document(t, s, rb.Entry.CID)
}

// unpublish DIR withdraws the files published only through it, and keeps
// those published directly too; unpublishing a file published directly
// keeps it served while a folder lists it.
func TestUnpublishFolderKeepsDirectFiles(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	s := folderService(t, f, dir, dssync.MutexWrap(datastore.NewMapDatastore()), OnChangeIgnore)
	writeTree(t, dir, map[string]string{"x.txt": "direct", "F/copy-of-x.txt": "direct", "F/other.txt": "other"})
	res, err := s.Publish(context.Background(), "x.txt")
	if err != nil {
		t.Fatal(err)
	}
	x := res[0].Entry
	rf := publishFolderOK(t, s, "F")
	other, _ := entryAt(document(t, s, rf.Entry.CID), "other.txt")

	// A file published only through a folder is not published on its own.
	if _, err := s.Unpublish(context.Background(), other.CID.String()); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Unpublish(CID of a folder's file) = %v, want ErrNotPublished", err)
	}
	gone, err := s.Unpublish(context.Background(), "F/")
	if err != nil || len(gone) != 1 || !gone[0].Collection {
		t.Fatalf("Unpublish(F/) = %+v, %v", gone, err)
	}
	if pub := s.Published(); len(pub) != 1 || pub[0].Name != "x.txt" || !pub[0].CID.Equals(x.CID) {
		t.Fatalf("Published() after withdrawing F = %+v", pub)
	}
	readServed(t, s, x.CID)
	if _, _, err := s.Open(other.CID, someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Open(other) = %v, want ErrNotPublished", err)
	}

	// The other way round: the folder keeps a file withdrawn directly.
	rf = publishFolderOK(t, s, "F")
	if _, err := s.Unpublish(context.Background(), "x.txt"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "x.txt")); err != nil {
		t.Fatal(err)
	}
	if got := readServed(t, s, x.CID); got != "direct" {
		t.Fatalf("x's content served as %q after withdrawing x.txt", got)
	}
	if pub := s.Published(); len(pub) != 1 || !pub[0].Collection {
		t.Fatalf("Published() = %+v, want only the folder", pub)
	}
	// And publishing a folder's file directly lists it, once.
	writeTree(t, dir, map[string]string{"y.txt": "other"})
	res, err = s.Publish(context.Background(), "y.txt")
	if err != nil || res[0].Already || !res[0].Entry.CID.Equals(other.CID) || res[0].Entry.Name != "y.txt" {
		t.Fatalf("publish y.txt = %+v, %v", res, err)
	}
	if pub := s.Published(); len(pub) != 2 {
		t.Fatalf("Published() = %+v, want F and y.txt", pub)
	}
	f.waitFor(t, "y.txt is provided", func() bool { return slices.Contains(f.provided, other.CID) })
}

func TestRepublishFolderSaysWhatChanged(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	s := folderService(t, f, dir, dssync.MutexWrap(datastore.NewMapDatastore()), OnChangeIgnore)
	writeTree(t, dir, map[string]string{"d/keep.txt": "keep", "d/edit.txt": "v1", "d/drop.txt": "drop", "d/sub/keep2.txt": "keep2"})
	first := publishFolderOK(t, s, "d")
	old := document(t, s, first.Entry.CID)
	dropped, _ := entryAt(old, "drop.txt")

	again := publishFolderOK(t, s, "d")
	if !again.Already || !again.Entry.CID.Equals(first.Entry.CID) || again.Folder.Hashed != 0 {
		t.Fatalf("republish unchanged = %+v / %+v, want Already with nothing hashed", again, again.Folder)
	}

	writeTree(t, dir, map[string]string{"d/edit.txt": "version 2", "d/sub/added.txt": "added"})
	if err := os.Remove(filepath.Join(dir, "d/drop.txt")); err != nil {
		t.Fatal(err)
	}
	res := publishFolderOK(t, s, "d")
	ch := res.Folder.Changes
	if res.Already || res.Entry.CID.Equals(first.Entry.CID) || ch == nil || !res.Folder.Previous.Equals(first.Entry.CID) {
		t.Fatalf("republish changed = %+v / %+v", res, res.Folder)
	}
	if !slices.Equal(ch.Added, []string{"sub/added.txt"}) || !slices.Equal(ch.Removed, []string{"drop.txt"}) || !slices.Equal(ch.Modified, []string{"edit.txt"}) {
		t.Fatalf("changes = %+v", ch)
	}
	if res.Folder.Hashed != 2 {
		t.Fatalf("hashed %d files, want 2 (the edited and the added one)", res.Folder.Hashed)
	}
	if _, ok := s.Collection(first.Entry.CID, s.Library.net.ID()); ok {
		t.Fatal("the old version is still served")
	}
	if _, _, err := s.Open(dropped.CID, someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Open(removed file) = %v, want ErrNotPublished", err)
	}
	if pub := s.Published(); len(pub) != 1 || !pub[0].CID.Equals(res.Entry.CID) {
		t.Fatalf("Published() = %+v", pub)
	}
	f.waitFor(t, "the old version's withdrawal is announced", func() bool {
		for _, data := range f.sent {
			if a, err := parseAnnouncement(data); err == nil && a.kind == proto.Announcement_UNPUBLISH && slices.ContainsFunc(a.cids, first.Entry.CID.Equals) {
				return true
			}
		}
		return false
	})
}

// The index of a folder survives a restart, without hashing again.
func TestFolderSurvivesRestart(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	s := folderService(t, f, dir, ds, OnChangeIgnore)
	writeTree(t, dir, map[string]string{"d/a.txt": "a", "d/b/c.txt": "c", "d/e/": ""})
	res := publishFolderOK(t, s, "d")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = folderService(t, newFakeNet(t), dir, ds, OnChangeIgnore)
	col := document(t, s, res.Entry.CID)
	c, _ := entryAt(col, "b/c.txt")
	if got := readServed(t, s, c.CID); got != "c" {
		t.Fatalf("served %q", got)
	}
	again := publishFolderOK(t, s, "d")
	if !again.Already || again.Folder.Hashed != 0 {
		t.Fatalf("publish after restart = %+v / %+v, want Already, nothing hashed", again, again.Folder)
	}
}

func TestPublishPatterns(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	s := folderService(t, f, dir, dssync.MutexWrap(datastore.NewMapDatastore()), OnChangeIgnore)
	writeTree(t, dir, map[string]string{"a.jpg": "a", "b.jpg": "b", "c.png": "c", ".d.jpg": "hidden", "pics.jpg/x": "folder"})
	res, err := s.Publish(context.Background(), "*.jpg", "c.png")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.Entry.Name)
	}
	if !slices.Equal(got, []string{"a.jpg", "b.jpg", "pics.jpg", "c.png"}) {
		t.Fatalf("published %v", got)
	}
	if _, err := s.Publish(context.Background(), "*.gif"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Publish(*.gif) = %v, want ErrNotFound", err)
	}
	if _, err := s.Publish(context.Background(), "[a"); err == nil || !strings.Contains(err.Error(), "pattern") {
		t.Fatalf("Publish([a) = %v, want a bad pattern", err)
	}
}

// buildSmall, the fast path for files of one chunk, makes exactly the
// manifest manifest.Build makes.
func TestBuildSmallMatchesBuild(t *testing.T) {
	buf := make([]byte, 1024)
	for _, n := range []int{0, 1, 1023, 1024} {
		data := bytes.Repeat([]byte{'x'}, n)
		want, err := manifest.Build(context.Background(), bytes.NewReader(data), int64(n), 1024)
		if err != nil {
			t.Fatal(err)
		}
		got, err := buildSmall(bytes.NewReader(data), int64(n), 1024, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Marshal(), want.Marshal()) {
			t.Fatalf("size %d: buildSmall's manifest differs from Build's", n)
		}
	}
	if _, err := buildSmall(bytes.NewReader([]byte("short")), 10, 1024, buf); err == nil {
		t.Fatal("a file shorter than its size was hashed")
	}
}

// With the watcher, a file changed inside a published folder republishes
// the folder (a new CID, the old one withdrawn).
func TestWatcherRepublishesChangedFolder(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	dir := t.TempDir()
	s := folderService(t, f, dir, dssync.MutexWrap(datastore.NewMapDatastore()), OnChangeRepublish)
	writeTree(t, dir, map[string]string{"w/sub/a.txt": "one"})
	first := publishFolderOK(t, s, "w")
	writeTree(t, dir, map[string]string{"w/sub/a.txt": "two, longer"})
	pollUntil(t, "the folder is published again", func() bool {
		pub := s.Published()
		return len(pub) == 1 && pub[0].Collection && !pub[0].CID.Equals(first.Entry.CID)
	})
	col := document(t, s, s.Published()[0].CID)
	a, _ := entryAt(col, "sub/a.txt")
	if got := readServed(t, s, a.CID); got != "two, longer" {
		t.Fatalf("served %q", got)
	}
}

// Other peers' folders: an announced collection entry shows in Available
// with its file count and total size.
func TestAnnouncedFolderIsAvailable(t *testing.T) {
	checkLeaks(t)
	f := newFakeNet(t)
	s := newFakeService(t, f)
	c := manifest.CIDOf([]byte("p2pc a document"))
	e := Entry{Name: "photos", Size: 1 << 30, CID: c, Published: time.Unix(1700000000, 0), Collection: true, Files: 1234}
	data, err := gproto.Marshal(&proto.Announcement{Kind: proto.Announcement_PUBLISH, TimeUnixNano: time.Now().UnixNano(),
		Entries: []*proto.CatalogEntry{toWire(e)}})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	topic := f.topic
	f.mu.Unlock()
	if err := topic.receive(randPeer(t), data); err != nil {
		t.Fatal(err)
	}
	av := waitView(t, s, "the folder", func(av []Remote) bool { return hasCID(av, c) })
	r, _ := findCID(av, c)
	if !r.Collection || r.Files != 1234 || r.Size != 1<<30 || r.Name != "photos" {
		t.Fatalf("Available: %+v", r)
	}
	if got := s.Search("phot"); len(got) != 1 || !got[0].Collection {
		t.Fatalf("Search = %+v", got)
	}

	// A folder entry with a file hash, or more files than a document can
	// hold, is refused.
	bad := toWire(e)
	bad.Sha256 = make([]byte, 32)
	if _, err := fromWire(bad); err == nil {
		t.Error("folder entry with a hash accepted")
	}
	bad = toWire(e)
	bad.Files = collection.MaxEntries + 1
	if _, err := fromWire(bad); err == nil {
		t.Error("folder entry with too many files accepted")
	}
}
