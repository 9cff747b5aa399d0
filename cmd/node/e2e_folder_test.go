package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// treeFile is one file of a test tree.
type treeFile struct {
	data []byte
	exec bool
}

// writeTree creates files and empty folders under root.
func writeTree(t *testing.T, root string, files map[string]treeFile, emptyDirs []string) {
	t.Helper()
	for p, f := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if f.exec {
			mode = 0o755
		}
		if err := os.WriteFile(full, f.data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	for _, d := range emptyDirs {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// treeListing describes the tree under root: one line per file (path,
// executable bit, length) and per folder (path + "/"), sorted; contents
// are compared separately (sameTree).
func treeListing(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode().IsRegular():
			x := "-"
			if fi.Mode()&0o100 != 0 {
				x = "x"
			}
			out = append(out, rel+" "+x+" "+strconv.FormatInt(fi.Size(), 10))
		default:
			out = append(out, rel+" ?"+fi.Mode().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// sameTree fails the test unless got holds exactly the files (bytes and
// executable bit) and folders of want.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	wl, gl := treeListing(t, want), treeListing(t, got)
	if strings.Join(wl, "\n") != strings.Join(gl, "\n") {
		t.Fatalf("tree %s differs from %s:\nwant:\n  %s\ngot:\n  %s", got, want, strings.Join(wl, "\n  "), strings.Join(gl, "\n  "))
	}
	for _, l := range wl {
		if strings.HasSuffix(l, "/") {
			continue
		}
		p := l[:strings.LastIndexByte(l[:strings.LastIndexByte(l, ' ')], ' ')]
		a, err := os.ReadFile(filepath.Join(want, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s differs in %s", p, got)
		}
	}
}

// noStaging fails the test if a staging folder of a folder download is
// left in dir.
func noStaging(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".p2pshare-") {
			t.Fatalf("staging folder %s left in %s", e.Name(), dir)
		}
	}
}

// A folder with nested and empty folders, unicode names, an empty file,
// an executable and a file of several chunks, published on one node:
// the other lists it as one folder, lists its tree, gets it exactly, gets
// part of it, gets a second folder sharing files with the first (copied,
// not fetched), is told where it is when it gets it again (another copy
// with --again), and sees it go when it is unpublished.
func TestFolderEndToEnd(t *testing.T) {
	root := t.TempDir()
	provDir, fetchDir := filepath.Join(root, "prov"), filepath.Join(root, "fetcher")
	shared := patterned(3<<20+12345, 11) // 4 chunks of 1 MiB
	files := map[string]treeFile{
		"a.txt":                 {data: []byte("hello folder\n")},
		"zero.bin":              {data: nil},
		"run.sh":                {data: []byte("#!/bin/sh\necho hi\n"), exec: true},
		"big.bin":               {data: shared},
		"sub/b.bin":             {data: patterned(70000, 3)},
		"sub/deep/er/c.txt":     {data: []byte("deep\n")},
		"sub/deep/er/tool":      {data: patterned(5000, 5), exec: true},
		"ünïcode 文件.txt":        {data: []byte("unicode name\n")},
		"日本/データ.bin":            {data: patterned(200000, 9)},
		"日本/Ελληνικά/ℵ.txt":     {data: []byte("aleph\n")},
		"sub/same-as-a.txt":     {data: []byte("hello folder\n")}, // same CID twice in one folder
		"sub/deep/empty-file-2": {data: []byte{}},
	}
	emptyDirs := []string{"empty", "sub/empty2", "日本/空"}
	tree := filepath.Join(provDir, "files", "tree")
	writeTree(t, tree, files, emptyDirs)
	// A second folder sharing the large file and a small one.
	tree2 := filepath.Join(provDir, "files", "tree2")
	writeTree(t, tree2, map[string]treeFile{
		"copy-of-big.bin": {data: shared},
		"x/a.txt":         {data: []byte("hello folder\n")},
		"own.txt":         {data: []byte("only in tree2\n")},
	}, nil)

	prov := startProc(t, "prov", provDir)
	out := prov.do("publish tree")
	if !regexp.MustCompile(`published folder tree/ \(12 files\)`).MatchString(out) {
		t.Fatalf("publish tree: %q", out)
	}
	if out := prov.do("publish tree2"); !strings.Contains(out, "published folder tree2/ (3 files)") {
		t.Fatalf("publish tree2: %q", out)
	}
	if out := prov.do("files"); !strings.Contains(out, "tree/ (12 files)") {
		t.Fatalf("files: %q", out)
	}

	fetch := startProc(t, "fetcher", fetchDir)
	fetch.do("wait file tree --timeout 60s")
	fetch.do("wait file tree2 --timeout 60s")
	if out := fetch.do("available"); !regexp.MustCompile(`tree/ \(12 files\)\s+3\.3 MiB`).MatchString(out) ||
		!strings.Contains(out, "tree2/ (3 files)") {
		t.Fatalf("available: %q", out)
	}
	// Files in a folder are not catalogue entries of their own.
	if out := fetch.do("search big.bin"); !strings.Contains(out, "nothing available") {
		t.Fatalf("search for a file inside a folder: %q", out)
	}

	// ls lists the tree without downloading it.
	out = fetch.do("ls tree")
	for p := range files {
		if !strings.Contains(out, p) {
			t.Fatalf("ls tree lacks %s: %q", p, out)
		}
	}
	for _, d := range emptyDirs {
		if !strings.Contains(out, d+"/") {
			t.Fatalf("ls tree lacks empty folder %s: %q", d, out)
		}
	}
	if !strings.Contains(out, "tree: 12 file(s), 3.3 MiB") {
		t.Fatalf("ls summary: %q", out)
	}
	downloads := filepath.Join(fetchDir, "downloads")
	if _, err := os.Stat(filepath.Join(downloads, "tree")); err == nil {
		t.Fatal("ls downloaded the folder")
	}

	// The second folder first: its files come over the network.
	out = fetch.do("get tree2")
	if !strings.Contains(out, "saved folder "+filepath.Join(downloads, "tree2")+"  3 file(s)") {
		t.Fatalf("get tree2: %q", out)
	}
	sameTree(t, tree2, filepath.Join(downloads, "tree2"))

	// The whole folder, exactly; the files tree2 brought are copied.
	out = fetch.do("get tree")
	if !strings.Contains(out, "saved folder "+filepath.Join(downloads, "tree")+"  12 file(s)") {
		t.Fatalf("get tree: %q", out)
	}
	if m := regexp.MustCompile(`(\d+) file\(s\) copied from files already here`).FindStringSubmatch(out); m == nil || atoi(m[1]) < 2 {
		t.Fatalf("get tree did not copy the files tree2 brought: %q", out)
	}
	sameTree(t, tree, filepath.Join(downloads, "tree"))
	noStaging(t, downloads)

	// A second get says where the folder is; --again makes another copy,
	// never overwriting: "tree (1)".
	out = fetch.do("get tree")
	if !strings.Contains(out, "already downloaded: "+filepath.Join(downloads, "tree")+"  folder (12 file(s)), verified: size and modification time unchanged") {
		t.Fatalf("second get tree: %q", out)
	}
	if _, err := os.Stat(filepath.Join(downloads, "tree (1)")); err == nil {
		t.Fatal("a second get made a copy")
	}
	out = fetch.do("get tree --again")
	if !strings.Contains(out, "saved folder "+filepath.Join(downloads, "tree (1)")) {
		t.Fatalf("get tree --again: %q", out)
	}
	sameTree(t, tree, filepath.Join(downloads, "tree (1)"))

	// Part of it: the folder sub and the top-level .txt files.
	part := filepath.Join(root, "part")
	out = fetch.do("get tree --only sub/ --only *.txt -o " + part)
	if !strings.Contains(out, "saved folder "+part+"  7 file(s)") {
		t.Fatalf("get --only: %q", out)
	}
	wantPart := filepath.Join(root, "want-part")
	sel := map[string]treeFile{}
	for p, f := range files {
		if strings.HasPrefix(p, "sub/") || (!strings.Contains(p, "/") && strings.HasSuffix(p, ".txt")) {
			sel[p] = f
		}
	}
	writeTree(t, wantPart, sel, []string{"sub/empty2"})
	sameTree(t, wantPart, part)
	// A pattern that matches nothing is an error, and nothing is made.
	if out := fetch.run("get tree --only nothing-like-this -o "+filepath.Join(root, "none"), true); !strings.Contains(out, "matches nothing") {
		t.Fatalf("get --only with no match: %q", out)
	}
	if _, err := os.Stat(filepath.Join(root, "none")); err == nil {
		t.Fatal("a get that selected nothing made a folder")
	}

	// Unpublished: it disappears on the other side; tree2 stays.
	if out := prov.do("unpublish tree"); !strings.Contains(out, "withdrawn tree/ (12 files)") {
		t.Fatalf("unpublish tree: %q", out)
	}
	fetch.do("wait gone tree --timeout 60s")
	if out := fetch.do("available"); !strings.Contains(out, "tree2/ (3 files)") {
		t.Fatalf("tree2 gone with tree: %q", out)
	}
	if out := prov.do("published"); strings.Contains(out, "tree/") || !strings.Contains(out, "tree2/") {
		t.Fatalf("published after unpublish tree: %q", out)
	}
}

// doneMarks counts the files marked done in a folder download's done log
// (distinct entries, read as the node reads them: a line torn by a crash
// counts only if it still holds two numbers).
func doneMarks(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	seen := make(map[string]bool)
	re := regexp.MustCompile(`^(\d+) \d+`)
	for _, l := range strings.Split(string(b), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			seen[m[1]] = true
		}
	}
	return len(seen)
}

// The fetcher is killed with SIGKILL halfway through a folder get (many
// small files and a large one, from a provider limited to 2 MiB/s) and
// restarted: transfers shows the folder paused, get completes it exactly,
// and the files done before the kill are kept, not fetched again.
func TestFolderResumeAfterFetcherKill9(t *testing.T) {
	root := t.TempDir()
	provDir, fetchDir := filepath.Join(root, "prov"), filepath.Join(root, "fetcher")
	files := map[string]treeFile{"big.bin": {data: patterned(6<<20+321, 17)}}
	const small = 400
	for i := range small {
		files[fmt.Sprintf("d%d/f%03d.dat", i%8, i)] = treeFile{data: patterned(6000+i, 3+2*i)}
	}
	tree := filepath.Join(provDir, "files", "many")
	writeTree(t, tree, files, []string{"empty"})
	prov := startProc(t, "prov", provDir, "--max-upload-rate", "2MiB")
	m := regexp.MustCompile(`published folder many/ \(401 files\)\s+\S+ \S+\s+(\S+)`).FindStringSubmatch(prov.do("publish many"))
	if m == nil {
		t.Fatal("publish many: no CID")
	}
	collCID := m[1]

	fetch := startProc(t, "fetcher", fetchDir)
	fetch.do("wait file many --timeout 60s")
	fetch.send("get many")
	doneLog := filepath.Join(fetchDir, "downloads", ".partial", collCID, "done")
	deadline := time.Now().Add(60 * time.Second)
	for doneMarks(t, doneLog) < small/5 {
		if time.Now().After(deadline) {
			t.Fatal("the folder download did not get under way")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
	fetch.kill9()
	kept := doneMarks(t, doneLog)
	t.Logf("killed with %d of %d files marked done", kept, len(files))
	if kept >= len(files) {
		t.Fatal("the download ended before the kill")
	}
	final := filepath.Join(fetchDir, "downloads", "many")
	if _, err := os.Stat(final); err == nil {
		t.Fatal("the folder stands under its final name after the kill")
	}

	fetch = startProc(t, "fetcher-restarted", fetchDir)
	out := fetch.do("transfers")
	if !regexp.MustCompile(fmt.Sprintf(`many/ \(%d of 401 files\).*paused`, kept)).MatchString(out) {
		t.Fatalf("transfers after restart, want many paused with %d files done: %q", kept, out)
	}
	if strings.Contains(out, "big.bin") {
		t.Fatalf("transfers lists the folder's large file apart: %q", out)
	}
	fetch.do("wait file many --timeout 60s")
	out = fetch.do("get many")
	if !strings.Contains(out, "saved folder "+final+"  401 file(s)") {
		t.Fatalf("get after restart: %q", out)
	}
	m = regexp.MustCompile(`(\d+) file\(s\) copied from files already here, (\d+) kept from an interrupted get`).FindStringSubmatch(out)
	if m == nil || atoi(m[1]) != 0 || atoi(m[2]) != kept {
		t.Fatalf("get after restart: want 0 copied and %d kept from the interrupted get: %q", kept, out)
	}
	sameTree(t, tree, final)
	noStaging(t, filepath.Join(fetchDir, "downloads"))
	if out := fetch.do("transfers"); !strings.Contains(out, "no transfers") {
		t.Fatalf("transfers after completion: %q", out)
	}
}
