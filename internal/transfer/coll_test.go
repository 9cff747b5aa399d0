package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
)

// collSource is a testSource that also publishes collections, as
// share.Library does (CollectionSource).
type collSource struct {
	testSource
	cmu   sync.Mutex
	colls map[cid.Cid][]byte
}

func (s *collSource) Collection(c cid.Cid, p peer.ID) ([]byte, bool) {
	s.mu.Lock()
	only, restricted := s.only[c]
	s.mu.Unlock()
	if restricted && !only[p] {
		return nil, false // like share: as if not published
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	b, ok := s.colls[c]
	return b, ok
}

func (s *collSource) addDoc(c cid.Cid, doc []byte) {
	s.cmu.Lock()
	if s.colls == nil {
		s.colls = make(map[cid.Cid][]byte)
	}
	s.colls[c] = doc
	s.cmu.Unlock()
}

// tfile is one file of a test tree.
type tfile struct {
	data []byte
	exec bool
}

// tree is a folder to publish: files by relative path, empty folders.
type tree struct {
	name  string
	files map[string]tfile
	empty []string
}

// collNode is a test node whose source publishes collections.
func newCollNode(tb testing.TB, unlimited bool) *node {
	tb.Helper()
	src := &collSource{}
	n := &node{h: newHost(tb, unlimited), fnd: &staticFinder{}, dir: tb.TempDir()}
	svc, err := New(Config{
		Host: n.h, Source: src, BBSKey: bbsKey(tb), Finder: n.fnd,
		DownloadDir: filepath.Join(n.dir, "downloads"), MinModulusBits: testKeyBits,
		RetryInterval: 50 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close() })
	n.svc = svc
	n.src = &src.testSource
	n.csrc = src
	return n
}

// publishTree writes t under the node's share folder, publishes each file
// (chunkSize) and the collection, and returns the collection's CID.
func (n *node) publishTree(tb testing.TB, t tree, chunkSize int) cid.Cid {
	tb.Helper()
	root := filepath.Join(n.dir, "share", t.name)
	coll := collection.Collection{Name: t.name}
	paths := make([]string, 0, len(t.files))
	for p := range t.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := t.files[p]
		fp := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(fp, f.data, 0o644); err != nil {
			tb.Fatal(err)
		}
		c := n.src.add(tb, fp, chunkSize)
		coll.Entries = append(coll.Entries, collection.Entry{Path: p, Size: int64(len(f.data)), CID: c, Executable: f.exec})
	}
	for _, d := range t.empty {
		coll.Entries = append(coll.Entries, collection.Entry{Path: d, Dir: true})
	}
	doc, err := coll.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	c := manifest.CIDOf(doc)
	n.csrc.addDoc(c, doc)
	return c
}

// checkTree checks that dir holds exactly the files and empty folders of t
// (only those selected by keep, if set), with their content and modes.
func checkTree(tb testing.TB, dir string, t tree, keep func(string) bool) {
	tb.Helper()
	want := make(map[string]bool)
	for p, f := range t.files {
		if keep != nil && !keep(p) {
			continue
		}
		want[p] = true
		fp := filepath.Join(dir, filepath.FromSlash(p))
		checkFile(tb, fp, f.data)
		fi, err := os.Stat(fp)
		if err != nil {
			tb.Fatal(err)
		}
		if exec := fi.Mode()&0o100 != 0; exec != f.exec {
			tb.Errorf("%s: executable %v, want %v", p, exec, f.exec)
		}
	}
	for _, d := range t.empty {
		if keep != nil && !keep(d) {
			continue
		}
		want[d+"/"] = true
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(d)))
		if err != nil || !fi.IsDir() {
			tb.Errorf("empty folder %s missing: %v", d, err)
		}
	}
	// Nothing else: every file found is wanted, every leaf folder too.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			tb.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
		case d.IsDir():
			if ents, _ := os.ReadDir(p); len(ents) == 0 && !want[rel+"/"] {
				tb.Errorf("unexpected empty folder %s", rel)
			}
		case !want[rel]:
			tb.Errorf("unexpected file %s", rel)
		}
		return nil
	})
}

// sampleTree: nested folders, empty folders, unicode names, a 0-byte
// file, an executable, a file under two names, a multi-chunk file.
func sampleTree() tree {
	return tree{name: "photos", files: map[string]tfile{
		"a.txt":                {data: []byte("hello")},
		"empty.bin":            {data: nil},
		"run.sh":               {data: []byte("#!/bin/sh\necho hi\n"), exec: true},
		"sub/deep/x.dat":       {data: pattern(5000, 1)},
		"sub/deep/copy.dat":    {data: pattern(5000, 1)}, // same bytes, same CID
		"sub/été/日本語.txt":      {data: []byte("unicode")},
		"big/large.bin":        {data: pattern(3*smallMax+123, 2)},
		"big/two-chunks.bin":   {data: pattern(10000, 3)}, // small, but more than one 4 KiB chunk
		"z/y/x/w/v/u/leaf.txt": {data: pattern(100, 4)},
	}, empty: []string{"nothing", "sub/empty-too"}}
}

func pair(tb testing.TB) (*node, *node) {
	srv := newCollNode(tb, false)
	cli := newCollNode(tb, false)
	cli.fnd.set(addrInfo(srv.h))
	return srv, cli
}

func TestGetCollection(t *testing.T) {
	srv, cli := pair(t)
	tr := sampleTree()
	c := srv.publishTree(t, tr, 4096)
	var last Progress
	var mu sync.Mutex
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Progress: func(p Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(cli.svc.cfg.DownloadDir, "photos")
	if res.Path != want || !res.Collection || res.Files != len(tr.files) {
		t.Fatalf("result %+v, want a collection of %d files at %s", res, len(tr.files), want)
	}
	checkTree(t, res.Path, tr, nil)
	mu.Lock()
	if last.Files != len(tr.files) || last.FilesDone != last.Files || last.Done != last.Total || last.Total != res.Size {
		t.Errorf("last progress %+v, want every file and byte of %d done", last, res.Size)
	}
	mu.Unlock()
	// Nothing left behind: no staging folder, no state.
	ents, _ := os.ReadDir(cli.svc.cfg.DownloadDir)
	for _, e := range ents {
		if e.Name() != "photos" && e.Name() != partialDirName {
			t.Errorf("left in the downloads folder: %s", e.Name())
		}
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("collection state kept after completion: %v", err)
	}

	// Again: the folder exists, so the tree goes to "photos (1)"; every
	// file is copied from the first download, none fetched.
	res2, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Again: true})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Path != want+" (1)" {
		t.Fatalf("second get at %s, want %s (1)", res2.Path, want)
	}
	checkTree(t, res2.Path, tr, nil)
	checkTree(t, res.Path, tr, nil) // untouched
	if nonEmpty := len(tr.files) - 1; res2.Copied != nonEmpty || res2.FetchedBytes != 0 {
		t.Errorf("second get copied %d files and fetched %d bytes; want %d copied, 0 fetched", res2.Copied, res2.FetchedBytes, nonEmpty)
	}
}

func TestGetCollectionOutput(t *testing.T) {
	srv, cli := pair(t)
	tr := tree{name: "docs", files: map[string]tfile{"a": {data: []byte("a")}}}
	c := srv.publishTree(t, tr, 4096)
	out := filepath.Join(t.TempDir(), "here")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// An existing -o path is never replaced, even an empty folder.
	if _, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: out}); !errors.Is(err, ErrExists) {
		t.Fatalf("get into existing %s: %v, want ErrExists", out, err)
	}
	// Into: the folder goes inside, under its name.
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Into: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != filepath.Join(out, "docs") {
		t.Fatalf("saved at %s, want %s", res.Path, filepath.Join(out, "docs"))
	}
	checkTree(t, res.Path, tr, nil)
	// Output: exactly there.
	exact := filepath.Join(out, "exact")
	res, err = cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: exact})
	if err != nil || res.Path != exact {
		t.Fatalf("get -o %s: %v, %v", exact, res, err)
	}
	checkTree(t, exact, tr, nil)
}

func TestGetCollectionOnly(t *testing.T) {
	srv, cli := pair(t)
	tr := sampleTree()
	c := srv.publishTree(t, tr, 4096)
	only := []string{"sub/", "*.sh"}
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Only: only})
	if err != nil {
		t.Fatal(err)
	}
	keep := func(p string) bool { return strings.HasPrefix(p, "sub/") || p == "run.sh" }
	checkTree(t, res.Path, tr, keep)
	if res.Files != 4 {
		t.Errorf("%d files, want 4", res.Files)
	}
	if _, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Only: []string{"nope/"}}); !errors.Is(err, ErrNoMatch) {
		t.Errorf("a pattern that matches nothing: %v, want ErrNoMatch", err)
	}
}

func TestSelectEntries(t *testing.T) {
	coll := &collection.Collection{Name: "x", Entries: []collection.Entry{
		{Path: "a.jpg"}, {Path: "docs", Dir: true}, {Path: "sub/a.jpg"}, {Path: "sub/b.txt"}, {Path: "subx"},
	}}
	for _, tc := range []struct {
		only []string
		want string
	}{
		{nil, "11111"},
		{[]string{"*.jpg"}, "10000"},
		{[]string{"*/*.jpg"}, "00100"},
		{[]string{"sub"}, "00110"},
		{[]string{"sub/"}, "00110"},
		{[]string{"subx/"}, ""}, // a file, not a folder
		{[]string{"docs/"}, "01000"},
		{[]string{"sub*"}, "00111"},
		{[]string{"[", "a.jpg"}, ""},
	} {
		sel, err := selectEntries(coll, tc.only)
		got := ""
		if err == nil {
			for _, s := range sel {
				got += map[bool]string{true: "1", false: "0"}[s]
			}
		}
		if got != tc.want {
			t.Errorf("--only %q: %q (%v), want %q", tc.only, got, err, tc.want)
		}
	}
}

// TestGetCollectionResume stops a get halfway (its context is cancelled
// once some files are in), then gets again: the files the first get kept
// are not fetched again, the others are fetched once.
func TestGetCollectionResume(t *testing.T) {
	srv, cli := pair(t)
	tr := tree{name: "many", files: map[string]tfile{}}
	for i := range 600 {
		tr.files[fmt.Sprintf("d%02d/f%03d", i%10, i)] = tfile{data: pattern(700, uint64(i))}
	}
	c := srv.publishTree(t, tr, 4096)
	var mu sync.Mutex
	served := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.svc.tapCID = func(cid.Cid) {
		mu.Lock()
		defer mu.Unlock()
		if served++; served == 300 {
			cancel()
		}
	}
	_, err := cli.svc.Get(ctx, c, GetOptions{})
	if !errors.Is(err, ErrPaused) {
		t.Fatalf("stopped get: %v, want ErrPaused", err)
	}
	mu.Lock()
	served = 0
	mu.Unlock()
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, res.Path, tr, nil)
	if res.FilesResumed == 0 || res.FilesResumed >= len(tr.files) {
		t.Fatalf("%d files kept from the first get, want some", res.FilesResumed)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("first get: %d files kept; second get: %d served", res.FilesResumed, served)
	// The server may still be answering requests the first get had in
	// flight when it was stopped (at most smallWindow per session) after
	// the count was reset: those files were not kept, so they are counted
	// once more at most. Without resume the second get would fetch all
	// 600.
	want := len(tr.files) - res.FilesResumed
	if served < want || served > want+streamsPerProvider*smallWindow {
		t.Errorf("second get fetched %d files; %d of %d were kept, so want %d (plus at most %d answered late to the first get)",
			served, res.FilesResumed, len(tr.files), want, streamsPerProvider*smallWindow)
	}
	if res.FilesResumed <= streamsPerProvider*smallWindow {
		t.Errorf("only %d files kept from the first get, which served 300: the bound above cannot tell a resume", res.FilesResumed)
	}
}

// TestGetCollectionBadDocument: a provider that answers with a document
// that is not the CID's, or one with a ".." path (crafted on the wire,
// with its own CID), is refused: nothing is written.
func TestGetCollectionBadDocument(t *testing.T) {
	good, err := (&collection.Collection{Name: "x", Entries: []collection.Entry{{Path: "a", Size: 1, CID: manifest.CIDOf([]byte("a"))}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	other, err := (&collection.Collection{Name: "y"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body, err := gproto.MarshalOptions{Deterministic: true}.Marshal(&collection.Document{Name: "x",
		Entries: []*collection.DocEntry{{Path: "../evil", Size: 1, Cid: manifest.CIDOf([]byte("a")).Bytes()}}})
	if err != nil {
		t.Fatal(err)
	}
	dotdot := append([]byte{'p', '2', 'p', 'c', collection.Version, 0, 0, 0}, body...)
	if _, err := collection.Parse(dotdot); err == nil {
		t.Fatal("the crafted document parses")
	}
	for _, tc := range []struct {
		name string
		c    cid.Cid
		doc  []byte
	}{
		{"not its CID", manifest.CIDOf(good), other},
		{"dot-dot path", manifest.CIDOf(dotdot), dotdot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := pair(t)
			srv.csrc.addDoc(tc.c, tc.doc)
			_, err := cli.svc.Get(ctxT(t, 2*time.Second), tc.c, GetOptions{})
			if err == nil {
				t.Fatal("get succeeded")
			}
			ents, _ := os.ReadDir(cli.svc.cfg.DownloadDir)
			for _, e := range ents {
				if e.Name() != partialDirName {
					t.Errorf("written: %s", e.Name())
				}
			}
			if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, tc.c)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("state written for a refused document: %v", err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(cli.svc.cfg.DownloadDir), "evil")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file outside the downloads folder: %v", err)
			}
		})
	}
}

// TestGetCollectionsSharingFiles: the second collection's files that the
// first one brought are copied, not fetched.
func TestGetCollectionsSharingFiles(t *testing.T) {
	srv, cli := pair(t)
	shared := pattern(3000, 7)
	a := tree{name: "a", files: map[string]tfile{"one": {data: shared}, "two": {data: pattern(100, 8)}}}
	b := tree{name: "b", files: map[string]tfile{"x/same": {data: shared}, "new": {data: pattern(200, 9)}}}
	ca := srv.publishTree(t, a, 4096)
	cb := srv.publishTree(t, b, 4096)
	if _, err := cli.svc.Get(ctxT(t, time.Minute), ca, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var served []cid.Cid
	srv.svc.tapCID = func(c cid.Cid) {
		mu.Lock()
		served = append(served, c)
		mu.Unlock()
	}
	res, err := cli.svc.Get(ctxT(t, time.Minute), cb, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, res.Path, b, nil)
	if res.Copied != 1 {
		t.Errorf("%d files copied, want 1", res.Copied)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(served) != 1 {
		t.Errorf("%d files fetched for b, want 1 (new)", len(served))
	}
}

// TestCancelCollection: Cancel of a paused collection removes its state
// and its staging folder.
func TestCancelCollection(t *testing.T) {
	srv, cli := pair(t)
	tr := tree{name: "c", files: map[string]tfile{}}
	for i := range 300 {
		tr.files[fmt.Sprintf("f%03d", i)] = tfile{data: pattern(100, uint64(i))}
	}
	c := srv.publishTree(t, tr, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	srv.svc.tapCID = func(cid.Cid) { once.Do(cancel) }
	if _, err := cli.svc.Get(ctx, c, GetOptions{}); !errors.Is(err, ErrPaused) {
		t.Fatalf("stopped get: %v, want ErrPaused", err)
	}
	stage := filepath.Join(cli.svc.cfg.DownloadDir, stagePrefix+c.String()+stageSuffix)
	if _, err := os.Stat(stage); err != nil {
		t.Fatalf("no staging folder while paused: %v", err)
	}
	if err := cli.svc.Cancel(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stage, partialDir(cli.svc.cfg.DownloadDir, c)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s kept after cancel: %v", p, err)
		}
	}
}

// BenchmarkGetCollection: 10,000 files of 4 KiB in 100 folders and 4
// files of 4 MiB, one provider, two real hosts on loopback; reports
// files/s.
func BenchmarkGetCollection(b *testing.B) {
	srv := newCollNode(b, true)
	cli := newCollNode(b, true)
	cli.fnd.set(addrInfo(srv.h))
	tr := tree{name: "bench", files: map[string]tfile{}}
	for i := range 10000 {
		tr.files[fmt.Sprintf("d%03d/f%05d", i%100, i)] = tfile{data: pattern(4096, uint64(i))}
	}
	for i := range 4 {
		tr.files[fmt.Sprintf("big%d", i)] = tfile{data: pattern(4<<20, uint64(100000+i))}
	}
	c := srv.publishTree(b, tr, manifest.DefaultChunkSize)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		res, err := cli.svc.Get(context.Background(), c, GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(res.Path)
		os.Remove(filepath.Join(cli.svc.cfg.DownloadDir, partialDirName, completedName)) // no local copies
		b.StartTimer()
	}
	b.ReportMetric(float64(len(tr.files)*b.N)/time.Since(start).Seconds(), "files/s")
}

func TestFetchCollection(t *testing.T) {
	srv, cli := pair(t)
	tr := sampleTree()
	c := srv.publishTree(t, tr, 4096)
	coll, err := cli.svc.FetchCollection(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if coll.Name != "photos" || coll.Files() != len(tr.files) || len(coll.Entries) != len(tr.files)+len(tr.empty) {
		t.Fatalf("got %q with %d files, %d entries", coll.Name, coll.Files(), len(coll.Entries))
	}
	// Nothing downloaded.
	if ents, _ := os.ReadDir(cli.svc.cfg.DownloadDir); len(ents) != 1 {
		t.Errorf("ls wrote %d entries in the downloads folder", len(ents))
	}
	file := srv.publish(t, "plain.txt", []byte("plain"), 4096)
	if _, err := cli.svc.FetchCollection(ctxT(t, time.Minute), file, GetOptions{}); !errors.Is(err, ErrNotCollection) {
		t.Errorf("ls of a file: %v, want ErrNotCollection", err)
	}
}

// A paused folder download is one row of Transfers (its large file's
// partial download counted in it, not listed apart), with its files done
// of its files; Cancel removes it, the large file's partial data too.
func TestPausedCollectionTransfers(t *testing.T) {
	srv, cli := pair(t)
	tr := tree{name: "p", files: map[string]tfile{"big.bin": {data: pattern(3*smallMax+5, 7)}}}
	for i := range 300 {
		tr.files[fmt.Sprintf("f%03d", i)] = tfile{data: pattern(100, uint64(i))}
	}
	c := srv.publishTree(t, tr, 4096)
	bigCID := manifestCIDOf(t, tr.files["big.bin"].data, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	served := 0
	srv.svc.tapCID = func(cid.Cid) {
		mu.Lock()
		defer mu.Unlock()
		if served++; served == 150 {
			cancel()
		}
	}
	if _, err := cli.svc.Get(ctx, c, GetOptions{}); !errors.Is(err, ErrPaused) {
		t.Fatalf("stopped get: %v, want ErrPaused", err)
	}
	list := cli.svc.Transfers()
	if len(list) != 1 {
		t.Fatalf("Transfers() = %+v, want one row, the folder", list)
	}
	in := list[0]
	if !in.CID.Equals(c) || in.State != StatePaused || in.Name != "p" || in.Files != 301 ||
		in.FilesDone == 0 || in.FilesDone >= 301 || in.Total != int64(3*smallMax+5+300*100) || in.Done > in.Total {
		t.Fatalf("Transfers() = %+v, want p paused, 301 files, some done", in)
	}
	if in.Done < int64(in.FilesDone)*100 {
		t.Fatalf("done %d bytes for %d files done", in.Done, in.FilesDone)
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, bigCID)); err != nil {
		t.Logf("the large file had no partial download when paused: %v", err)
	}
	if err := cli.svc.Cancel(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, bigCID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the large file's partial download kept after cancel: %v", err)
	}
	if list := cli.svc.Transfers(); len(list) != 0 {
		t.Errorf("Transfers() after cancel = %+v", list)
	}
}

// manifestCIDOf is the CID of data cut in chunks of chunkSize.
func manifestCIDOf(tb testing.TB, data []byte, chunkSize int) cid.Cid {
	tb.Helper()
	m, err := manifest.Build(context.Background(), bytes.NewReader(data), int64(len(data)), chunkSize)
	if err != nil {
		tb.Fatal(err)
	}
	return m.CID()
}
