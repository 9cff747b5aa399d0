package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/p2pshare/p2pshare/internal/api"
)

// daemon is a running `p2pshare daemon`.
type daemon struct {
	t    *testing.T
	data string
	cmd  *exec.Cmd
	done chan error
	out  *strings.Builder
}

// startDaemon starts `p2pshare --data data daemon` on loopback and waits
// for its start line, which comes once the API serves.
func startDaemon(t *testing.T, data string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"--data", data, "daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--keepalive", "300ms", "--log-level", "info"}, extra...)
	cmd := exec.Command(binPath, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, data: data, cmd: cmd, done: make(chan error, 1), out: &strings.Builder{}}
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "p2pshare daemon:") {
				select {
				case started <- sc.Text():
				default:
				}
			}
			d.out.WriteString(sc.Text() + "\n")
		}
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(data, "node.log")); err == nil && len(b) < 200<<10 {
				t.Logf("%s node.log:\n%s", data, b)
			}
		}
	})
	select {
	case line := <-started:
		if !strings.Contains(line, "API http://127.0.0.1:") {
			t.Fatalf("start line: %q", line)
		}
	case err := <-d.done:
		t.Fatalf("daemon exited: %v\n%s", err, d.out.String())
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not start")
	}
	return d
}

// stop sends SIGTERM and checks the daemon ends cleanly (status 0) and
// removes its address file.
func (d *daemon) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Fatalf("daemon after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		d.t.Fatal("daemon did not stop on SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(d.data, api.AddrFile)); !os.IsNotExist(err) {
		d.t.Fatalf("api.addr left after a clean stop: %v", err)
	}
}

// runCLI runs a client command against data and returns stdout, stderr and
// the exit status.
func runCLI(t *testing.T, data string, args ...string) (string, string, int) {
	t.Helper()
	return runOnce(t, "", append([]string{"--data", data}, args...)...)
}

// runJSON runs a client command with --json, which must succeed, and
// decodes its output into out.
func runJSON(t *testing.T, out any, data string, args ...string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, data, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("p2pshare %q: status %d, stderr %q, stdout %q", args, code, stderr, stdout)
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("p2pshare %q --json: %v in %q", args, err, stdout)
	}
}

// Two daemons, driven only by the client commands: publish, connect, get
// --wait, the JSON they print, their exit statuses, a clean stop.
func TestDaemonAndClient(t *testing.T) {
	root := t.TempDir()
	d1, d2 := filepath.Join(root, "one"), filepath.Join(root, "two")
	os.MkdirAll(filepath.Join(d1, "files"), 0o700)
	orig := writeRandom(t, filepath.Join(d1, "files", "film.bin"), 2<<20+5)

	// No daemon yet: the client says how to start one.
	_, stderr, code := runCLI(t, d1, "files")
	if code == 0 || !strings.Contains(stderr, "p2pshare --data "+d1+" daemon") {
		t.Fatalf("no daemon: status %d, %q", code, stderr)
	}
	stdout, _, code := runCLI(t, d1, "files", "--json")
	var e api.Error
	if code == 0 || json.Unmarshal([]byte(stdout), &e) != nil || !strings.Contains(e.Error, "no p2pshare node is running") {
		t.Fatalf("no daemon, --json: status %d, %q", code, stdout)
	}

	one := startDaemon(t, d1)
	two := startDaemon(t, d2, "--max-concurrent-gets", "2")
	// Both run on one machine: the second took another port.
	a1, _ := api.ReadAddr(d1)
	a2, _ := api.ReadAddr(d2)
	if a1 == "" || a2 == "" || a1 == a2 {
		t.Fatalf("API addresses %q and %q", a1, a2)
	}
	if fi, err := os.Stat(filepath.Join(d1, api.TokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v", err)
	}

	var pub api.Published
	runJSON(t, &pub, d1, "publish", "film.bin")
	sum := sha256.Sum256(orig)
	if len(pub.Files) != 1 || pub.Files[0].Name != "film.bin" || pub.Files[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("publish --json: %+v", pub)
	}
	stdout, stderr, code = runCLI(t, d1, "publish", "nope.bin", "--json")
	if code != 1 || json.Unmarshal([]byte(stdout), &pub) != nil || !strings.Contains(pub.Error, "nope.bin") || !strings.Contains(stderr, "nope.bin") {
		t.Fatalf("publish of a missing file: status %d, %q, %q", code, stdout, stderr)
	}
	if out, _, code := runCLI(t, d1, "files"); code != 0 || !strings.Contains(out, "film.bin") || !strings.Contains(out, "yes") {
		t.Fatalf("files: %d %q", code, out)
	}

	var id1 api.ID
	runJSON(t, &id1, d1, "id")
	var conn api.Connected
	runJSON(t, &conn, d2, "connect", id1.Addrs[0])
	if conn.PeerID != id1.PeerID {
		t.Fatalf("connect: %+v, want %s", conn, id1.PeerID)
	}
	// The file reaches two's view (a catalog pull after connecting).
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list []api.Remote
		runJSON(t, &list, d2, "available")
		if len(list) == 1 && list[0].Name == "film.bin" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("film.bin not available on two: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// get --wait --json: the final job.
	var j api.Job
	runJSON(t, &j, d2, "get", "film.bin", "--wait")
	got, err := os.ReadFile(j.Path)
	if j.State != api.JobDone || err != nil || sha256.Sum256(got) != sum || j.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("get --wait --json: %+v, %v", j, err)
	}
	// Without --json and not on a terminal: one final line.
	out := filepath.Join(root, "copy.bin")
	stdout, stderr, code = runCLI(t, d2, "get", "film.bin", "-o", out, "--wait")
	if code != 0 || !strings.HasPrefix(stdout, "saved "+out) || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("get --wait: status %d, %q, %q", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(out); sha256.Sum256(got) != sum {
		t.Fatal("copy differs")
	}
	// On a terminal: a progress line, erased before the final one.
	ttyOut := filepath.Join(root, "tty.bin")
	cmd := exec.Command(binPath, "--data", d2, "get", "film.bin", "-o", ttyOut, "--wait")
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	screen, _ := io.ReadAll(f) // until the command exits (EIO at hang-up)
	f.Close()
	if err := cmd.Wait(); err != nil || !bytes.Contains(screen, []byte("\r\x1b[K")) || !bytes.Contains(screen, []byte("saved "+ttyOut)) {
		t.Fatalf("get --wait on a terminal: %v, %q", err, screen)
	}
	// Never overwrites; an unknown name fails; both exit 1.
	if _, stderr, code := runCLI(t, d2, "get", "film.bin", "-o", out, "--wait"); code != 1 || !strings.Contains(stderr, "never overwrites") {
		t.Fatalf("get over an existing file: %d %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, d2, "get", "nothing.bin"); code != 1 || !strings.Contains(stderr, "nothing.bin") {
		t.Fatalf("get unknown: %d %q", code, stderr)
	}
	// A get without --wait answers at once with the job.
	runJSON(t, &j, d2, "get", "film.bin")
	if j.ID == "" || j.Finished() && j.State != api.JobDone {
		t.Fatalf("get --json: %+v", j)
	}

	var peers []api.Peer
	runJSON(t, &peers, d2, "peers")
	if len(peers) != 1 || peers[0].PeerID != id1.PeerID {
		t.Fatalf("peers: %+v", peers)
	}
	var trs []api.Transfer
	runJSON(t, &trs, d2, "transfers")
	var tk api.Ticket
	runJSON(t, &tk, d1, "share", "film.bin")
	if !strings.HasPrefix(tk.Ticket, "p2ps1") {
		t.Fatalf("share: %+v", tk)
	}
	// publish --to: only for two (given by a unique prefix of its ID),
	// shown with its short ID; then everyone's again. Not both at once.
	var id2 api.ID
	runJSON(t, &id2, d2, "id")
	stdout, stderr, code = runCLI(t, d1, "publish", "film.bin", "--to", id2.PeerID[:16])
	if code != 0 || !strings.Contains(stdout, "film.bin") || !strings.Contains(stdout, "now for: "+id2.PeerID[:12]) {
		t.Fatalf("publish --to: status %d, %q, %q", code, stdout, stderr)
	}
	var listed []api.Entry
	runJSON(t, &listed, d1, "published")
	if len(listed) != 1 || len(listed[0].ToPeers) != 1 || listed[0].ToPeers[0] != id2.PeerID {
		t.Fatalf("published after --to: %+v", listed)
	}
	if stdout, stderr, code = runCLI(t, d1, "publish", "film.bin", "--public"); code != 0 || !strings.Contains(stdout, "now for: everyone") {
		t.Fatalf("publish --public: status %d, %q, %q", code, stdout, stderr)
	}
	if _, stderr, code = runCLI(t, d1, "publish", "film.bin", "--public", "--to", id2.PeerID); code != 1 || !strings.Contains(stderr, "not both") {
		t.Fatalf("publish --to --public: status %d, %q", code, stderr)
	}

	var left []api.Entry
	runJSON(t, &pub, d1, "unpublish", "--all")
	runJSON(t, &left, d1, "published")
	if len(pub.Files) != 1 || len(left) != 0 {
		t.Fatalf("unpublish --all: %+v, then published %+v", pub, left)
	}

	// Usage errors: status 1, no call made.
	for _, args := range [][]string{{"no-such-command"}, {"publish"}, {"get"}, {"cancel", "a", "b"}, {"files", "--bogus"}, {"--listen", "/ip4/127.0.0.1/tcp/0", "files"}} {
		if _, stderr, code := runCLI(t, d1, args...); code != 1 || stderr == "" {
			t.Errorf("%q: status %d, stderr %q", args, code, stderr)
		}
	}

	one.stop()
	two.stop()
	if _, stderr, code := runCLI(t, d2, "peers"); code != 1 || !strings.Contains(stderr, "daemon") {
		t.Fatalf("after stop: %d %q", code, stderr)
	}
}

// The prompt serves the API too: a client command acts on the node whose
// prompt then sees the change.
func TestPromptServesAPI(t *testing.T) {
	data := filepath.Join(t.TempDir(), "n")
	os.MkdirAll(filepath.Join(data, "files"), 0o700)
	writeRandom(t, filepath.Join(data, "files", "doc.txt"), 1000)
	p := startProc(t, "prompt", data, "--no-mdns")
	p.do("echo up") // the node is open; the API starts before the prompt reads
	var pub api.Published
	runJSON(t, &pub, data, "publish", "doc.txt")
	if len(pub.Files) != 1 || pub.Files[0].Name != "doc.txt" {
		t.Fatalf("publish --json: %+v", pub)
	}
	if out := p.do("published"); !strings.Contains(out, "doc.txt") {
		t.Fatalf("the prompt does not see the API's publish: %q", out)
	}

	// `ui` prints a one-time login link for the browser (and opens
	// nothing without --open).
	out, stderr, code := runCLI(t, data, "ui")
	link := strings.TrimSpace(out)
	addr, _ := api.ReadAddr(data)
	if code != 0 || !strings.HasPrefix(link, "http://"+addr+"/login?once=") || !strings.Contains(stderr, "works once") {
		t.Fatalf("ui: status %d, %q, %q", code, out, stderr)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, want := range []int{http.StatusSeeOther, http.StatusForbidden} {
		resp, err := noRedirect.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || (i == 0) != (len(resp.Cookies()) == 1) {
			t.Fatalf("login link, try %d: %d, cookies %v; want %d", i+1, resp.StatusCode, resp.Cookies(), want)
		}
	}
	p.quit()
	if _, err := os.Stat(filepath.Join(data, api.AddrFile)); !os.IsNotExist(err) {
		t.Fatalf("api.addr left after quit: %v", err)
	}
}
