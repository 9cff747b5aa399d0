package main

// End-to-end tests: the real binary, several processes, driven through
// piped REPL input, inside a network namespace the test makes itself
// (loopback only, multicast on), so mDNS runs and nothing leaves the
// machine.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/internal/natlab"
)

const nsEnv = "P2PSHARE_E2E_IN_NS"

var binPath string

func TestMain(m *testing.M) {
	if os.Getenv(nsEnv) == "" {
		// Re-run this test binary inside a fresh unprivileged sandbox (user,
		// network, mount and pid namespaces; see internal/natlab), whose
		// loopback carries mDNS and where the NAT tests build their labs.
		// If that is impossible the tests fail: they never run on the
		// machine's real interfaces.
		script := `ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec "$0" "$@"`
		cmd, err := natlab.SandboxCommand("sh", append([]string{"-c", script, os.Args[0]}, os.Args[1:]...)...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: cannot create a sandbox for the end-to-end tests: %v\n", err)
			os.Exit(1)
		}
		cmd.Env = append(os.Environ(), nsEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintf(os.Stderr, "FAIL: cannot create a network namespace for the end-to-end tests: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "p2pshare-e2e-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "p2pshare")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: build p2pshare: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running p2pshare process.
type proc struct {
	t     *testing.T
	name  string
	data  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	lines chan string
	done  chan struct{}
	seq   int
	// failed: a command printed an error, so the process must exit 1.
	failed bool
}

func startProc(t *testing.T, name, data string, extra ...string) *proc {
	t.Helper()
	args := append([]string{
		"--data", data,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
		"--keepalive", "300ms", "--log-level", "info",
	}, extra...)
	return startCmd(t, name, data, exec.Command(binPath, args...))
}

// startCmd starts cmd, a p2pshare process with data folder data, driven
// through its piped stdin.
func startCmd(t *testing.T, name, data string, cmd *exec.Cmd) *proc {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, data: data, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s output:\n%s", p.name, p.out.String())
			p.mu.Unlock()
			if b, err := os.ReadFile(filepath.Join(p.data, "node.log")); err == nil && len(b) < 200<<10 {
				t.Logf("%s node.log:\n%s", p.name, b)
			}
		}
	})
	return p
}

// do sends one command and returns what it printed (up to the marker that
// follows it). It fails the test on a timeout or an "error:" line unless
// allowErr.
func (p *proc) run(cmdline string, allowErr bool) string {
	p.t.Helper()
	p.seq++
	mark := fmt.Sprintf("@@done-%d", p.seq)
	if _, err := fmt.Fprintf(p.stdin, "%s\necho %s\n", cmdline, mark); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.name, cmdline, err)
	}
	var out []string
	timeout := time.After(90 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if l == mark {
				s := strings.Join(out, "\n")
				if strings.Contains(s, "error:") {
					if !allowErr {
						p.t.Fatalf("%s> %s\n%s", p.name, cmdline, s)
					}
					p.failed = true
				}
				return s
			}
			out = append(out, l)
		case <-p.done:
			p.t.Fatalf("%s exited during %q; output so far: %q", p.name, cmdline, out)
		case <-timeout:
			p.t.Fatalf("%s: no answer to %q; output so far: %q", p.name, cmdline, out)
		}
	}
}

func (p *proc) do(cmdline string) string { p.t.Helper(); return p.run(cmdline, false) }

func (p *proc) id() string {
	p.t.Helper()
	m := regexp.MustCompile(`peer ID: (\S+)`).FindStringSubmatch(p.do("id"))
	if m == nil {
		p.t.Fatalf("%s: no peer ID in id output", p.name)
	}
	return m[1]
}

// quit ends the process and checks its exit status: 1 if a command
// failed (piped mode tells scripts so), else 0.
func (p *proc) quit() {
	p.t.Helper()
	fmt.Fprintf(p.stdin, "quit\n")
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not quit", p.name)
	}
	err := p.cmd.Wait()
	want := 0
	if p.failed {
		want = 1
	}
	if code := p.cmd.ProcessState.ExitCode(); code != want {
		p.t.Fatalf("%s exited with %v; want status %d", p.name, err, want)
	}
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEndToEnd(t *testing.T) {
	root := t.TempDir()
	var ps []*proc
	for i := 1; i <= 3; i++ {
		data := filepath.Join(root, fmt.Sprintf("node%d", i))
		os.MkdirAll(filepath.Join(data, "files"), 0o700)
		ps = append(ps, startProc(t, fmt.Sprintf("node%d", i), data))
	}
	orig := writeRandom(t, filepath.Join(root, "node1", "files", "data.bin"), 5<<20+77)

	// Discovery by mDNS.
	for _, p := range ps {
		p.do("wait peers 2 --timeout 60s")
	}

	// Publish; publishing again changes nothing.
	out := ps[0].do("publish data.bin")
	if !strings.Contains(out, "published data.bin") {
		t.Fatalf("publish: %q", out)
	}
	if out := ps[0].do("publish data.bin"); !strings.Contains(out, "already published") {
		t.Fatalf("second publish: %q", out)
	}
	if out := ps[0].do("files"); !regexp.MustCompile(`data\.bin\s+5\.0 MiB\s+yes`).MatchString(out) {
		t.Fatalf("files: %q", out)
	}

	// The others list it; node2 gets it, verified, identical.
	ps[1].do("wait file data.bin --timeout 60s")
	ps[2].do("wait file data.bin --timeout 60s")
	if out := ps[1].do("search dat"); !strings.Contains(out, "data.bin") {
		t.Fatalf("search: %q", out)
	}
	out = ps[1].do("get data.bin")
	if !strings.Contains(out, "verified") {
		t.Fatalf("get: %q", out)
	}
	got, err := os.ReadFile(filepath.Join(root, "node2", "downloads", "data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(orig) {
		t.Fatal("downloaded file differs from the original")
	}
	// A second get says where the first one is (hashed again), and
	// fetches nothing; with --again it never overwrites: it picks a new
	// name.
	if out := ps[1].do("get data.bin"); !strings.Contains(out, "already downloaded: "+filepath.Join(root, "node2", "downloads", "data.bin")+"  file, verified: content hashed again") {
		t.Fatalf("second get: %q", out)
	}
	ps[1].do("get data.bin --again")
	if _, err := os.Stat(filepath.Join(root, "node2", "downloads", "data (1).bin")); err != nil {
		t.Fatalf("second get did not pick a new name: %v", err)
	}
	// -o to an existing file fails clearly and leaves it alone.
	existing := filepath.Join(root, "keep.txt")
	os.WriteFile(existing, []byte("mine"), 0o600)
	if out := ps[2].run("get data.bin -o "+existing, true); !strings.Contains(out, "error:") {
		t.Fatalf("get -o over an existing file: %q", out)
	}
	if b, _ := os.ReadFile(existing); string(b) != "mine" {
		t.Fatal("existing file was overwritten")
	}

	// Withdrawal disappears from the others' lists.
	ps[0].do("unpublish data.bin")
	ps[1].do("wait gone data.bin --timeout 60s")
	ps[2].do("wait gone data.bin --timeout 60s")

	// A stopped node goes offline in the others' tables, and comes back
	// online with the same peer ID after a restart.
	// node3 publishes a file, then stops: its index and peer table must
	// survive the restart.
	writeRandom(t, filepath.Join(root, "node3", "files", "three.bin"), 100<<10)
	ps[2].do("publish three.bin")
	ps[0].do("wait file three.bin --timeout 60s")
	id1, id2 := ps[0].id(), ps[1].id()
	id3 := ps[2].id()
	ps[2].quit()
	ps[0].do("wait offline " + id3 + " --timeout 60s")
	ps[1].do("wait offline " + id3 + " --timeout 60s")
	if out := ps[0].do("peers --wide"); !regexp.MustCompile(regexp.QuoteMeta(id3) + `\s+offline`).MatchString(out) {
		t.Fatalf("peers after stop: %q", out)
	}
	p3 := startProc(t, "node3-restarted", filepath.Join(root, "node3"))
	if id := p3.id(); id != id3 {
		t.Fatalf("peer ID changed across restart: %s -> %s", id3, id)
	}
	if out := p3.do("published"); !strings.Contains(out, "three.bin") {
		t.Fatalf("published index lost across restart: %q", out)
	}
	if out := p3.do("peers --wide"); !strings.Contains(out, id1) || !strings.Contains(out, id2) {
		t.Fatalf("peer table lost across restart: %q", out)
	}
	ps[0].do("wait online " + id3 + " --timeout 60s")
	ps[1].do("wait online " + id3 + " --timeout 60s")
	// Still served after the restart.
	ps[0].do("wait file three.bin --timeout 60s")
	if out := ps[0].do("get three.bin"); !strings.Contains(out, "verified") {
		t.Fatalf("get after the publisher restarted: %q", out)
	}
}
