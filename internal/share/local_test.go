package share

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"go.uber.org/goleak"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

func TestCheckName(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a.txt", true},
		{"report 2024 (final).pdf", true},
		{"ünïcode-名前.txt", true},
		{".hidden", true},
		{"..x", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"a\\b", false},
		{"/etc/passwd", false},
		{"a\x00b", false},
		{"line\nbreak", false},
		{"esc\x1b[31m", false},
		{"\xff\xfe", false},
		{long, false},
		// Terminal spoofing: bidi overrides, zero-width and line/paragraph
		// separators, BOM, C1 controls, leading/trailing spaces.
		{"no space.txt", true},
		{"caf\u00e9\u00a0menu.txt", true}, // NBSP inside: a normal letter-ish space
		{"\u202etxt.exe", false},          // RIGHT-TO-LEFT OVERRIDE
		{"a\u202ab.txt", false},           // RIGHT-TO-LEFT EMBEDDING
		{"a\u2066b.txt", false},           // LEFT-TO-RIGHT ISOLATE
		{"a\u200bb.txt", false},           // ZERO WIDTH SPACE
		{"a\u200cb.txt", false},           // ZERO WIDTH NON-JOINER
		{"a\u200db.txt", false},           // ZERO WIDTH JOINER
		{"a\u200eb.txt", false},           // LEFT-TO-RIGHT MARK
		{"a\u200fb.txt", false},           // RIGHT-TO-LEFT MARK
		{"a\u2028b.txt", false},           // LINE SEPARATOR
		{"a\u2029b.txt", false},           // PARAGRAPH SEPARATOR
		{"\ufeffa.txt", false},            // BOM
		{"a\u0085b.txt", false},           // NEL (C1 control)
		{"a\u00adb.txt", false},           // SOFT HYPHEN (Cf)
		{" a.txt", false},
		{"a.txt ", false},
		{"a.txt\u00a0", false},
		{"\u3000a.txt", false},
	} {
		err := CheckName(tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, not ErrBadName", tc.name, err)
		}
	}
}

func TestPublishRefusesNamesOutsideTheShareFolder(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("do not share"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file next to the share folder, reachable with "../x".
	if err := os.WriteFile(filepath.Join(filepath.Dir(n.dir), "x"), []byte("sibling"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(n.dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.write(t, "a/b", "in a subfolder")
	if err := os.Symlink(secret, filepath.Join(n.dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+filepath.Base(filepath.Dir(n.dir))+"/x", filepath.Join(n.dir, "relescape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(n.dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dir", filepath.Join(n.dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	n.write(t, "ok.txt", "fine")
	if err := os.Symlink("ok.txt", filepath.Join(n.dir, "inside-link")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		want error
		msg  string
	}{
		{"../x", ErrBadName, "path separator"},
		{"/etc/passwd", ErrBadName, "absolute"},
		{"a/b", ErrBadName, "path separator"},
		{"escape", ErrBadName, "outside the share folder"},
		{"relescape", ErrBadName, "outside the share folder"},
		{"dirlink", ErrBadName, "directory"}, // a symlink to a folder is not followed
		{"dir", nil, "holds nothing to publish"},
		{"missing", ErrNotFound, "missing"},
		{"", ErrBadName, "empty"},
		{"..", ErrBadName, "not a file name"},
	} {
		res, err := n.s.Publish(context.Background(), tc.name)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Publish(%q) = %v, want %v mentioning %q", tc.name, err, tc.want, tc.msg)
		}
		if len(res) != 0 {
			t.Errorf("Publish(%q) published %+v", tc.name, res)
		}
	}
	if got := n.s.Published(); len(got) != 0 {
		t.Fatalf("published after refusals: %+v", got)
	}

	// A symlink that stays inside the folder is fine; a mix publishes the
	// good names and reports the bad one.
	res, err := n.s.Publish(context.Background(), "inside-link", "escape")
	if !errors.Is(err, ErrBadName) || len(res) != 1 || res[0].Entry.Name != "inside-link" {
		t.Fatalf("Publish(inside-link, escape) = %+v, %v", res, err)
	}

	files, err := n.s.Files()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "a,dir,inside-link,ok.txt" {
		t.Fatalf("Files() = %s, want a,dir,inside-link,ok.txt (folders, no escaping links, no link to a folder)", got)
	}
}

func TestPublishAlreadyAndChangedContent(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	content := strings.Repeat("hello p2pshare ", 500) // several 1 KiB chunks
	e := n.publish(t, "b.txt", content)
	if e.Size != int64(len(content)) || e.SHA256 != sha256.Sum256([]byte(content)) || e.ChunkSize != 1024 {
		t.Fatalf("entry %+v", e)
	}
	if err := manifest.CheckCID(e.CID); err != nil {
		t.Fatal(err)
	}
	n.rt.waitProvided(t, e.CID, 1)

	res, err := n.s.Publish(context.Background(), "b.txt")
	if err != nil || len(res) != 1 || !res[0].Already || !res[0].Entry.CID.Equals(e.CID) {
		t.Fatalf("second publish = %+v, %v; want Already", res, err)
	}
	// Same content under another name: published under that name too,
	// the same CID and record (aliases.go).
	n.write(t, "copy.txt", content)
	res, err = n.s.Publish(context.Background(), "copy.txt")
	if err != nil || res[0].Already || res[0].Entry.Name != "copy.txt" || !res[0].Entry.CID.Equals(e.CID) ||
		!slices.Equal(res[0].Entry.Aliases, []string{"b.txt"}) {
		t.Fatalf("publish of a copy = %+v, %v; want the same CID under copy.txt too", res, err)
	}
	a := n.publish(t, "a.txt", "alpha")
	pub := n.s.Published()
	if len(pub) != 2 || pub[0].Name != "a.txt" || pub[1].Name != "b.txt" {
		t.Fatalf("Published() = %+v", pub)
	}

	// New content under the same name replaces the old CID.
	n.write(t, "a.txt", "alpha, second version")
	res, err = n.s.Publish(context.Background(), "a.txt")
	if err != nil || res[0].Already || res[0].Entry.CID.Equals(a.CID) {
		t.Fatalf("republish changed a.txt = %+v, %v", res, err)
	}
	pub = n.s.Published()
	if len(pub) != 2 || !pub[0].CID.Equals(res[0].Entry.CID) {
		t.Fatalf("Published() after change = %+v", pub)
	}
	if _, _, err := n.s.Open(a.CID, someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Open(old CID) = %v, want ErrNotPublished", err)
	}

	files, err := n.s.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"a.txt": true, "b.txt": true, "copy.txt": true}
	if len(files) != 3 {
		t.Fatalf("Files() = %+v", files)
	}
	for _, f := range files {
		if f.Published != want[f.Name] || f.Published != f.CID.Defined() || f.Changed {
			t.Errorf("Files(): %+v", f)
		}
	}

	// Unpublish by name and by CID; unknown names change nothing.
	if _, err := n.s.Unpublish(context.Background(), "a.txt", "nope.txt"); !errors.Is(err, ErrNotPublished) || !strings.Contains(err.Error(), "nope.txt") {
		t.Fatalf("Unpublish with an unknown name = %v", err)
	}
	if len(n.s.Published()) != 2 {
		t.Fatal("a failed Unpublish withdrew something")
	}
	got, err := n.s.Unpublish(context.Background(), "a.txt", e.CID.String())
	if err != nil || len(got) != 2 {
		t.Fatalf("Unpublish = %+v, %v", got, err)
	}
	if len(n.s.Published()) != 0 {
		t.Fatalf("still published: %+v", n.s.Published())
	}
}

func TestOpenServesPublishedAndRefusesChanged(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	content := strings.Repeat("0123456789", 300)
	e := n.publish(t, "f.bin", content)
	other := n.publish(t, "g.bin", "ggg")

	m, f, err := n.s.Open(e.CID, someone)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, m.ChunkLen(1))
	if _, err := f.ReadAt(buf, m.ChunkOffset(1)); err != nil || !m.VerifyChunk(1, buf) {
		t.Fatalf("chunk 1 of the opened file does not verify (%v)", err)
	}
	f.Close()
	if !m.CID().Equals(e.CID) {
		t.Fatal("manifest does not match the CID")
	}
	if _, _, err := n.s.Open(manifest.CIDOf([]byte("never published")), someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Open(unknown) = %v", err)
	}

	// Same size, different bytes and mtime: caught by the mtime.
	n.write(t, "f.bin", strings.Repeat("9876543210", 300))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(n.dir, "f.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.s.Open(e.CID, someone); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open(changed) = %v, want ErrChanged", err)
	}
	if _, _, err := n.s.Open(e.CID, someone); !errors.Is(err, ErrChanged) {
		t.Fatalf("second Open(changed) = %v, want ErrChanged", err)
	}
	resp := n.s.catalogResponse(someone)
	if len(resp.Entries) != 1 || resp.Entries[0].Name != "g.bin" {
		t.Fatalf("catalog lists a changed file: %v", resp.Entries)
	}
	files, _ := n.s.Files()
	for _, f := range files {
		if f.Name == "f.bin" && !f.Changed {
			t.Fatalf("Files() does not flag the changed file: %+v", f)
		}
	}
	// A deleted file is not served either.
	if err := os.Remove(filepath.Join(n.dir, "g.bin")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.s.Open(other.CID, someone); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open(deleted) = %v, want ErrChanged", err)
	}
	// Publishing again gives the new content a new CID.
	res, err := n.s.Publish(context.Background(), "f.bin")
	if err != nil || res[0].Already || res[0].Entry.CID.Equals(e.CID) {
		t.Fatalf("republish = %+v, %v", res, err)
	}
	if _, f, err := n.s.Open(res[0].Entry.CID, someone); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
}

func TestRestartKeepsIndexAndReprovides(t *testing.T) {
	// leveldb frees its memory pool about a second after Close.
	checkLeaks(t, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
	ds, err := leveldb.NewDatastore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	h := loopbackHost(t)
	dir := t.TempDir()
	rt1 := newFakeRouting()
	rt1.fail = true // a network without peers: publishing still works
	cfg := Config{Network: HostNetwork(h, nil), Routing: rt1, Datastore: ds, ShareDir: dir, ChunkSize: 1024}
	s1, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("kept across restarts"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := s1.Publish(context.Background(), "keep.txt")
	if err != nil {
		t.Fatalf("publish with a failing DHT: %v", err)
	}
	c := res[0].Entry.CID
	rt1.waitProvided(t, c, 1)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	rt2 := newFakeRouting()
	cfg.Routing = rt2
	s2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	pub := s2.Published()
	if len(pub) != 1 || !pub[0].CID.Equals(c) || pub[0].Name != "keep.txt" || !reflect.DeepEqual(pub[0], res[0].Entry) {
		t.Fatalf("after restart Published() = %+v, want %+v", pub, res[0].Entry)
	}
	rt2.waitProvided(t, c, 1)
	m, f, err := s2.Open(c, someone)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m.Size != int64(len("kept across restarts")) {
		t.Fatalf("manifest size %d", m.Size)
	}
}

func TestReprovideLoop(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false, func(c *Config) { c.ReprovideInterval = 50 * time.Millisecond })
	e := n.publish(t, "r.txt", "reprovided")
	// With a 50 ms interval the loop provides again and again.
	n.rt.waitProvided(t, e.CID, 3)
	if _, err := n.s.UnpublishAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// After the withdrawal, a full reprovide round passes without it:
	// publish a marker and wait until the marker is provided twice more.
	before := n.rt.count(e.CID)
	m := n.publish(t, "marker.txt", "marker")
	n.rt.waitProvided(t, m.CID, 3)
	if after := n.rt.count(e.CID); after > before+1 { // at most one in flight at the withdrawal
		t.Fatalf("withdrawn CID provided %d more times", after-before)
	}
}

var _ = cid.Undef

// internal/transfer answers CHANGED for errors with a Changed method.
func TestErrChangedTellsTransfer(t *testing.T) {
	var ch interface{ Changed() bool }
	if err := fmt.Errorf("open x: %w", ErrChanged); !errors.As(err, &ch) || !ch.Changed() {
		t.Fatal("a wrapped ErrChanged does not report Changed() == true")
	}
}

// countingDS counts reads of manifest keys.
type countingDS struct {
	datastore.Batching
	manifestGets atomic.Int64
}

func (d *countingDS) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	if strings.HasPrefix(k.String(), manifestPrefix+"/") {
		d.manifestGets.Add(1)
	}
	return d.Batching.Get(ctx, k)
}

// Open is called for every fetch request: it must not read (and hash) the
// manifest again each time, neither after a publish nor after a restart.
func TestOpenDoesNotReadTheManifestEachTime(t *testing.T) {
	checkLeaks(t)
	var ds *countingDS
	wrap := func(c *Config) {
		ds = &countingDS{Batching: c.Datastore}
		c.Datastore = ds
	}
	h := loopbackHost(t)
	n := newNode(t, h, false, wrap)
	content := strings.Repeat("abcdefghij", 20000) // 196 chunks of 1 KiB
	e := n.publish(t, "big.bin", content)
	openN := func(s *Service) {
		t.Helper()
		for range 20 {
			m, f, err := s.Open(e.CID, someone)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if !m.CID().Equals(e.CID) || len(m.Chunks) != manifest.NumChunks(int64(len(content)), 1024) {
				t.Fatalf("Open returned a wrong manifest")
			}
		}
	}
	before := ds.manifestGets.Load()
	openN(n.s)
	if got := ds.manifestGets.Load() - before; got != 0 {
		t.Errorf("20 Opens after publish read the manifest from the datastore %d times, want 0", got)
	}

	// After a restart on the same datastore the manifest is read (and
	// verified) once, at load, not per Open.
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := n.cfg
	cfg.Datastore = ds.Batching
	wrap(&cfg)
	n.start(t, cfg)
	loaded := ds.manifestGets.Load()
	if loaded > 1 {
		t.Errorf("loading the index read the manifest %d times", loaded)
	}
	openN(n.s)
	if got := ds.manifestGets.Load() - loaded; got != 0 {
		t.Errorf("20 Opens after a restart read the manifest from the datastore %d times, want 0", got)
	}
}
