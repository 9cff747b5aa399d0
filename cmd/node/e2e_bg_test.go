package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// `get --bg` at the prompt: the download runs in the node's background
// queue (the local API's), the prompt answers other commands meanwhile,
// and the end is reported with the saved path; the file is whole.
func TestGetInBackground(t *testing.T) {
	root := t.TempDir()
	data := patterned(24<<20+11, 3)
	prov := startProvider(t, filepath.Join(root, "prov"), "bg.bin", data)
	fetch := startProc(t, "fetch", filepath.Join(root, "fetch"))
	fetch.do("wait file bg.bin --timeout 60s")
	out := filepath.Join(root, "bg-out.bin")
	started := fetch.do("get --bg bg.bin -o " + out)
	if !regexp.MustCompile(`job \d+: getting`).MatchString(started) {
		t.Fatalf("get --bg: %q", started)
	}
	// The prompt is free while the download runs. (The end may be
	// reported among echo's lines, if the download was that quick.)
	saved := regexp.MustCompile(`job \d+: saved ` + regexp.QuoteMeta(out))
	echo := fetch.do("echo still here")
	if !strings.Contains(echo, "still here") {
		t.Fatalf("prompt busy: %q", echo)
	}
	if !saved.MatchString(echo) {
		fetch.waitLine(saved, 60*time.Second)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("content differs")
	}

	// A background get that fails makes the exit status 1 at quit, though
	// every command typed succeeded: the provider stops serving the file,
	// and a get by its ticket (which names the provider) is refused.
	ticket := regexp.MustCompile(`p2ps1[a-z2-7]+`).FindString(prov.do("share bg.bin"))
	if ticket == "" {
		t.Fatal("no ticket from share")
	}
	prov.do("unpublish bg.bin")
	failed := regexp.MustCompile(`job \d+: failed: `)
	if !failed.MatchString(fetch.do("get --bg " + ticket + " -o " + filepath.Join(root, "never.bin"))) {
		fetch.waitLine(failed, 90*time.Second)
	}
	fetch.failed = true
	fetch.quit()
}
