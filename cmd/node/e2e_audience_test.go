package main

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Send a file to one person: node A publishes secret.txt --to B. B lists
// and fetches it; C does not list it, and a get of its CID by C (given
// out of band) fails with nothing written. Revoking B (publish --to C)
// takes it from B's list and ends B's running download with an error; C
// then sees it.
func TestSendToOnePerson(t *testing.T) {
	root := t.TempDir()
	var ps []*proc
	for _, name := range []string{"a", "b", "c"} {
		data := filepath.Join(root, name)
		os.MkdirAll(filepath.Join(data, "files"), 0o700)
		var extra []string
		if name == "a" {
			// Slow enough that B's second download is still running when
			// A revokes it.
			extra = []string{"--max-upload-rate", "1MiB"}
		}
		ps = append(ps, startProc(t, name, data, extra...))
	}
	a, b, c := ps[0], ps[1], ps[2]
	for _, p := range ps {
		p.do("wait peers 2 --timeout 60s")
	}
	idB, idC := b.id(), c.id()
	secret := writeRandom(t, filepath.Join(root, "a", "files", "secret.txt"), 300<<10)
	writeRandom(t, filepath.Join(root, "a", "files", "public.txt"), 10<<10)

	out := a.do("publish secret.txt --to " + idB)
	m := regexp.MustCompile(`published secret\.txt\s+\S+ \S+\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "only for:") {
		t.Fatalf("publish --to: %q", out)
	}
	cid := m[1]
	a.do("publish public.txt")
	if out := a.do("published --wide"); !regexp.MustCompile(`secret\.txt.*`+regexp.QuoteMeta(idB)).MatchString(out) ||
		!regexp.MustCompile(`public\.txt.*public`).MatchString(out) {
		t.Fatalf("published does not show the audiences: %q", out)
	}

	// B lists and fetches it.
	b.do("wait file secret.txt --timeout 60s")
	if out := b.do("get secret.txt"); !strings.Contains(out, "verified") {
		t.Fatalf("B's get: %q", out)
	}
	got, err := os.ReadFile(filepath.Join(root, "b", "downloads", "secret.txt"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(secret) {
		t.Fatalf("B's copy differs: %v", err)
	}

	// C: the public file arrives, the secret does not; its CID is refused.
	c.do("wait file public.txt --timeout 60s")
	if out := c.do("available --wide"); strings.Contains(out, "secret.txt") || strings.Contains(out, cid) {
		t.Fatalf("C lists the secret: %q", out)
	}
	if out := c.run("get "+cid+" --from "+a.id(), true); !strings.Contains(out, "error:") {
		t.Fatalf("C's get of the secret's CID: %q", out)
	}
	assertNoDownload(t, filepath.Join(root, "c", "downloads"))

	// A larger secret, revoked while B downloads it.
	big := filepath.Join(root, "a", "files", "big.bin")
	writeRandom(t, big, 8<<20)
	a.do("publish big.bin --to " + idB)
	b.do("wait file big.bin --timeout 60s")
	if out := b.do("get --bg big.bin"); !regexp.MustCompile(`job \d+: getting`).MatchString(out) {
		t.Fatalf("get --bg: %q", out)
	}
	waitFileGrows(t, filepath.Join(root, "b", "downloads"))
	if out := a.do("publish big.bin secret.txt --to " + idC); strings.Count(out, "now for:") != 2 {
		t.Fatalf("revoke: %q", out)
	}
	// A closes B's session at once; B gets no more of it, asks A again
	// (still connected) and is refused, so B's download ends with an
	// error, and no file, rather than waiting for a provider that never
	// comes back.
	waitLog(t, filepath.Join(root, "a", "node.log"), "closing a fetch session: its peer may no longer fetch the file")
	if l := b.waitLine(regexp.MustCompile(`job \d+: `), 60*time.Second); !regexp.MustCompile(`job \d+: failed: .*no provider can serve the file`).MatchString(l) {
		t.Fatalf("B's revoked download: %q", l)
	}
	b.failed = true // a background get that failed: B's exit status is 1
	// What B verified stays as a paused partial download (a later grant
	// resumes it); nothing runs or waits.
	if out := b.do("transfers --wide"); strings.Contains(out, "waiting") || strings.Contains(out, "running") {
		t.Fatalf("B's revoked download is still under way: %q", out)
	}
	if _, err := os.Stat(filepath.Join(root, "b", "downloads", "big.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("B has the revoked file: %v", err)
	}
	b.do("wait gone secret.txt --timeout 60s")
	b.do("wait gone big.bin --timeout 60s")
	c.do("wait file secret.txt --timeout 60s")
	if out := c.do("get secret.txt"); !strings.Contains(out, "verified") {
		t.Fatalf("C's get after being allowed: %q", out)
	}
	for _, p := range ps {
		p.quit()
	}
}

// assertNoDownload fails if dir holds any file but the partial folder's.
func assertNoDownload(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && !strings.HasSuffix(path, ".lock") {
			t.Errorf("%s holds %s (%d bytes)", dir, path, fi.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until the log file at path has a line containing text.
func waitLog(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no line %q", path, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFileGrows waits until some file under dir has data: a download is
// under way.
func waitFileGrows(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		found := false
		filepath.Walk(filepath.Join(dir, ".partial"), func(path string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && strings.HasSuffix(path, "data") {
				found = true
			}
			return nil
		})
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no download under way in " + dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
