package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Two nodes that know nothing of each other (no mDNS; each knows only a
// bootstrap node) meet by an invitation code: a wrong code is refused,
// the right one makes them peers, and it works once.
func TestInviteEndToEnd(t *testing.T) {
	root := t.TempDir()
	boot := startProc(t, "boot", filepath.Join(root, "boot"), "--no-mdns")
	m := regexp.MustCompile(`(/ip4/127\.0\.0\.1/tcp/\d+/p2p/\S+)`).FindStringSubmatch(boot.do("id"))
	if m == nil {
		t.Fatal("no TCP loopback address in the boot node's id output")
	}
	alice := startProc(t, "alice", filepath.Join(root, "alice"), "--no-mdns", "--bootstrap", m[1])
	bob := startProc(t, "bob", filepath.Join(root, "bob"), "--no-mdns", "--bootstrap", m[1])
	idA, idB := alice.id(), bob.id()
	alice.do("wait peers 1 --timeout 60s")
	bob.do("wait peers 1 --timeout 60s")

	out := alice.do("invite --name bob")
	cm := regexp.MustCompile(`invitation code: (\d+)-(\S+)`).FindStringSubmatch(out)
	if cm == nil {
		t.Fatalf("invite printed no code: %q", out)
	}
	code := cm[1] + "-" + cm[2]
	words := strings.Split(cm[2], "-")
	// A wrong code: the same number, the words in another order (or, if
	// they are all the same word, another word).
	wrongWords := append(words[1:], words[0])
	if strings.Join(wrongWords, "-") == cm[2] {
		wrongWords[0] = map[bool]string{true: "tiger", false: "zulu"}[wrongWords[0] != "tiger"]
	}
	wrong := cm[1] + "-" + strings.Join(wrongWords, "-")
	if out := bob.run("accept "+wrong, true); !strings.Contains(out, "does not match") || !strings.Contains(out, "2 tries left") {
		t.Fatalf("accept with a wrong code: %q", out)
	}

	// Typed as a person might: spaces between the words.
	out = bob.do("accept " + strings.ReplaceAll(code, "-", " ") + " --name alice")
	if !strings.Contains(out, "invitation accepted: alice (") {
		t.Fatalf("accept: %q", out)
	}
	if out := alice.do("invites --wide"); !regexp.MustCompile(regexp.QuoteMeta(code) + `\s+accepted\s+bob\s+-\s+1\s+.*` + regexp.QuoteMeta(idB)).MatchString(out) {
		t.Fatalf("invites after accept: %q", out)
	}
	// Each side named the other as its invite or accept said.
	if out := alice.do("peers --wide"); !strings.Contains(out, "bob ("+idB+")") {
		t.Fatalf("alice's peers lack bob, named: %q", out)
	}
	if out := bob.do("peers --wide"); !strings.Contains(out, "alice ("+idA+")") {
		t.Fatalf("bob's peers lack alice, named: %q", out)
	}
	// A code works once.
	if out := bob.run("accept "+code, true); !strings.Contains(out, "already accepted") {
		t.Fatalf("accept of a used code: %q", out)
	}
	alice.quit()
	bob.quit()
	boot.quit()
}
