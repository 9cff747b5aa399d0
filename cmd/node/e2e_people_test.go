package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNamesBlockForgetSurviveRestart: node2 names node1 (which says its
// own name is anna), puts it in a group and blocks it; all of it survives
// a restart, and node1's file stays hidden; forget drops the name and the
// group membership but keeps the block, across a restart too; unblock lets
// node1's file back.
func TestNamesBlockForgetSurviveRestart(t *testing.T) {
	root := t.TempDir()
	d1, d2 := filepath.Join(root, "node1"), filepath.Join(root, "node2")
	os.MkdirAll(filepath.Join(d1, "files"), 0o700)
	p1 := startProc(t, "node1", d1, "--nick", "anna")
	p2 := startProc(t, "node2", d2)
	writeRandom(t, filepath.Join(d1, "files", "a.bin"), 10<<10)
	p1.do("publish a.bin")
	p2.do("wait file a.bin --timeout 60s")
	id1 := p1.id()

	if out := p2.do("peers --wide"); !strings.Contains(out, id1+" (says: anna)") {
		t.Fatalf("peers does not show the said name: %q", out)
	}
	if out := p2.run("name anna x", true); !strings.Contains(out, "error:") {
		t.Fatalf("a said name resolved a peer: %q", out)
	}
	p2.do("name " + id1[:20] + " alice")
	p2.do("group create friends")
	p2.do("group add friends alice")
	p2.do("block alice")
	if out := p2.do("available"); strings.Contains(out, "a.bin") {
		t.Fatalf("a blocked peer's file is listed: %q", out)
	}
	p2.quit()

	p2 = startProc(t, "node2-restarted", d2)
	if out := p2.do("blocked --wide"); !strings.Contains(out, "alice ("+id1+")") {
		t.Fatalf("block or name lost across restart: %q", out)
	}
	if out := p2.do("groups --wide"); !regexp.MustCompile(`friends\s+alice \(` + id1 + `\)`).MatchString(out) {
		t.Fatalf("group lost across restart: %q", out)
	}
	// node1 keeps finding node2 on the LAN and is refused each time: it
	// sees node2 offline.
	id2 := p2.id()
	p1.do("wait offline " + id2 + " --timeout 60s")
	if out := p2.do("available"); strings.Contains(out, "a.bin") {
		t.Fatalf("a blocked peer's file is listed after restart: %q", out)
	}

	if out := p2.do("forget alice"); !strings.Contains(out, "still blocked") {
		t.Fatalf("forget: %q", out)
	}
	p2.quit()
	p2 = startProc(t, "node2-again", d2)
	if out := p2.do("peers"); strings.Contains(out, "alice") {
		t.Fatalf("a forgotten name came back: %q", out)
	}
	if out := p2.do("groups --wide"); strings.Contains(out, id1) {
		t.Fatalf("a forgotten peer is still in a group: %q", out)
	}
	if out := p2.do("blocked --wide"); !strings.Contains(out, id1) {
		t.Fatalf("forget lifted the block: %q", out)
	}
	p2.do("unblock " + id1)
	p2.do("wait file a.bin --timeout 60s")
	p2.quit()
	p1.quit()
}
