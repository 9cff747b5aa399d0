package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// runOnce runs the binary with args and stdin, to its end, and returns its
// stdout, stderr and exit status.
func runOnce(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("p2pshare %q did not end", args)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// Flags: --version; bad values refused with the flag named, once, with a
// hint instead of the whole usage; piped mode's exit status; two nodes on
// one data folder.
func TestFlagsVersionAndExitStatus(t *testing.T) {
	out, _, code := runOnce(t, "", "--version")
	if code != 0 || !regexp.MustCompile(`^p2pshare \S.*, go1\.\d+`).MatchString(out) {
		t.Fatalf("--version: status %d, %q", code, out)
	}

	data := t.TempDir()
	base := []string{"--data", data, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--keepalive", "0s"}, "--keepalive 0s"},
		{[]string{"--keepalive", "-5s"}, "--keepalive -5s"},
		{[]string{"--max-upload-rate", "0"}, "max-upload-rate"},
		{[]string{"--bbs-bits", "1024"}, "--bbs-bits 1024"},
		{[]string{"--listen", "nonsense"}, `--listen "nonsense"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		_, errOut, code := runOnce(t, "", append(slicesClone(base), tt.args...)...)
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: status %d, stderr %q; want 1 and %q", tt.args, code, errOut, tt.want)
		}
		// The error once, a hint, not the whole flag list.
		if n := strings.Count(errOut, tt.want); n != 1 {
			t.Errorf("%q: the error is printed %d times: %q", tt.args, n, errOut)
		}
		if strings.Contains(errOut, "-downloads") {
			t.Errorf("%q: the usage was printed with the error: %q", tt.args, errOut)
		}
	}
	if _, errOut, _ := runOnce(t, "", append(slicesClone(base), "--no-such-flag")...); !strings.Contains(errOut, "--help") {
		t.Errorf("no hint to --help: %q", errOut)
	}

	// Piped: every command runs; the status says whether all succeeded.
	out, errOut, code := runOnce(t, "echo one\nno-such-command\necho two\n", base...)
	if code != 1 || !strings.Contains(out, "two") || !strings.Contains(errOut, "1 command(s) failed") {
		t.Fatalf("a failing script: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := runOnce(t, "echo one\nversion\n", base...); code != 0 || !strings.Contains(out, "p2pshare ") {
		t.Fatalf("a good script: status %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A second node on a data folder in use says so.
	p := startProc(t, "first", data)
	p.id()
	_, errOut, code = runOnce(t, "", base...)
	if code != 1 || !strings.Contains(errOut, data+" is in use by another p2pshare node") {
		t.Fatalf("second node on one --data: status %d, stderr %q", code, errOut)
	}
	p.quit()
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// Short IDs in tables and unique prefixes as input; get -o into an
// existing folder; plain messages for a missing folder and a dead peer.
func TestShortIDsOutputFolderAndMessages(t *testing.T) {
	root := t.TempDir()
	data := patterned(3<<20+11, 5)
	provDir := filepath.Join(root, "prov")
	os.MkdirAll(filepath.Join(provDir, "files"), 0o700)
	if err := os.WriteFile(filepath.Join(provDir, "files", "my file.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	prov := startProc(t, "prov", provDir)
	prov.do(`publish "my file.bin"`)
	fetchDir := filepath.Join(root, "fetcher")
	fetch := startProc(t, "fetcher", fetchDir)
	fetch.do("wait file 'my file.bin' --timeout 60s")

	// available fits 80 columns; the CID is shortened, --wide prints it.
	out := fetch.do("available")
	for _, l := range strings.Split(out, "\n") {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("available line of %d columns: %q", n, l)
		}
	}
	pub := prov.do("published --wide")
	full := regexp.MustCompile(`bafk\w{55}`).FindString(pub)
	if full == "" {
		t.Fatalf("no CID in published --wide: %q", pub)
	}
	m := regexp.MustCompile(`(bafk\w+)`).FindStringSubmatch(out)
	if m == nil || len(m[1]) >= len(full) || !strings.HasPrefix(full, m[1]) {
		t.Fatalf("available shows %q, want a prefix of %s", m, full)
	}
	short := m[1]
	if wide := fetch.do("available --wide"); !strings.Contains(wide, full) {
		t.Fatalf("available --wide: %q", wide)
	}

	// get -o FOLDER saves into it under the file's name, never over a file.
	dest := filepath.Join(root, "dest")
	os.MkdirAll(dest, 0o700)
	if out := fetch.do("get 'my file.bin' -o " + dest); !strings.Contains(out, "saved "+filepath.Join(dest, "my file.bin")) {
		t.Fatalf("get -o FOLDER: %q", out)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "my file.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file in the folder differs (%v)", err)
	}
	os.WriteFile(filepath.Join(dest, "my file.bin"), []byte("mine"), 0o600)
	if out := fetch.run("get 'my file.bin' -o "+dest, true); !strings.Contains(out, "already exists") {
		t.Fatalf("get -o FOLDER holding the name: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "my file.bin")); string(b) != "mine" {
		t.Fatal("an existing file was overwritten")
	}
	// By short CID.
	if out := fetch.do("get " + short + " -o " + filepath.Join(dest, "by-cid.bin")); !strings.Contains(out, "saved ") {
		t.Fatalf("get by short CID: %q", out)
	}
	// A missing folder is named as such.
	if out := fetch.run("get "+short+" -o /no/such/dir/x", true); !strings.Contains(out, "folder /no/such/dir does not exist") {
		t.Fatalf("get -o in a missing folder: %q", out)
	}
	// A prefix that matches nothing.
	if out := fetch.run("cancel bafkreie66", true); !strings.Contains(out, `no known CID starts with "bafkreie66"`) {
		t.Fatalf("cancel of an unknown prefix: %q", out)
	}

	// A dead peer: one line, the peer, the address and why.
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ghost, _ := peer.IDFromPrivateKey(key)
	out = fetch.run("connect /ip4/127.0.0.1/tcp/1/p2p/"+ghost.String(), true)
	want := "error: connect: could not reach " + ghost.String() + " at /ip4/127.0.0.1/tcp/1: connection refused"
	if !strings.HasPrefix(out, want) || strings.Count(out, "\n") > 0 {
		t.Fatalf("connect to a dead peer: %q, want one line starting %q", out, want)
	}
	fetch.quit()
}
