package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ttyProc is a node whose stdin and stdout are a pseudo-terminal, as when a
// person runs it: the prompt, line editing, completion and progress bar are on.
type ttyProc struct {
	t    *testing.T
	f    *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func startTTY(t *testing.T, data string) *ttyProc {
	t.Helper()
	cmd := exec.Command(binPath, "--data", data, "--listen", "/ip4/127.0.0.1/tcp/0", "--keepalive", "300ms")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	p := &ttyProc{t: t, f: f, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			// Answer the line editor's cursor-position queries as a
			// terminal would.
			for range bytes.Count(buf[:n], []byte("\x1b[6n")) {
				f.Write([]byte("\x1b[1;1R"))
			}
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
		<-p.done
		if t.Failed() {
			t.Logf("terminal output:\n%q", p.output())
		}
	})
	return p
}

func (p *ttyProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *ttyProc) typeKeys(s string) {
	p.t.Helper()
	if _, err := p.f.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// waitFor waits until the terminal output after offset contains s, and
// returns the offset just past it.
func (p *ttyProc) waitFor(offset int, s string, timeout time.Duration) int {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.output()
		if i := strings.Index(out[min(offset, len(out)):], s); i >= 0 {
			return offset + i + len(s)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("terminal never showed %q", s)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// On a terminal: the prompt, tab completion, a live progress bar during a
// foreground get, Ctrl-C cancelling a command but not the node, quit.
func TestInteractiveTerminal(t *testing.T) {
	root := t.TempDir()
	provDir := filepath.Join(root, "prov")
	os.MkdirAll(filepath.Join(provDir, "files"), 0o700)
	data := writeRandom(t, filepath.Join(provDir, "files", "movie.bin"), 48<<20)
	notes := writeRandom(t, filepath.Join(provDir, "files", "my notes.txt"), 1000)
	prov := startProc(t, "prov", provDir, "--max-upload-rate", "24MiB")
	prov.do("publish movie.bin")
	prov.do("publish 'my notes.txt'")

	p := startTTY(t, filepath.Join(root, "tty"))
	off := p.waitFor(0, "p2pshare> ", 60*time.Second)
	p.typeKeys("wait file movie.bin --timeout 60s\r")
	off = p.waitFor(off, "ok: file movie.bin", 60*time.Second)

	// Tab completes a command, then a remote file name.
	p.typeKeys("avai\t")
	off = p.waitFor(off, "available ", 10*time.Second)
	p.typeKeys("\r")
	off = p.waitFor(off, "PROVIDERS", 10*time.Second)
	p.typeKeys("get mov\t")
	off = p.waitFor(off, "movie.bin ", 10*time.Second)
	p.typeKeys("\r")

	// A live bar while it runs (about two seconds at 24 MiB/s), then the summary.
	p.waitFor(off, "provider(s)", 30*time.Second)
	off = p.waitFor(off, "saved ", 60*time.Second)
	bar := p.output()
	if !strings.Contains(bar, "] ") || !strings.Contains(bar, "MiB / 48.0 MiB") {
		t.Fatalf("no progress bar drawn: %q", bar)
	}
	// The finished bar keeps the count of providers that sent the file.
	last := bar[:strings.LastIndex(bar, "saved ")]
	if i := strings.LastIndex(last, "provider(s)"); i < 2 || last[i-2:i] == "0 " {
		t.Fatalf("finished bar shows no provider: %q", last[max(0, i-80):])
	}
	got, err := os.ReadFile(filepath.Join(root, "tty", "downloads", "movie.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs (%v)", err)
	}

	// Ctrl-C cancels the running command; the node stays.
	off = p.waitFor(off, "p2pshare> ", 10*time.Second)
	p.typeKeys("wait peers 9 --timeout 60s\r")
	off = p.waitFor(off, "--timeout 60s\r\n", 10*time.Second) // the line editor accepted the line
	// The command starts right after; a Ctrl-C in between would find
	// nothing to cancel, so press it again until the command reports.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.output()[off:], "wait: canceled") {
		if time.Now().After(deadline) {
			t.Fatal("Ctrl-C did not cancel the running command")
		}
		p.typeKeys("\x03")
		time.Sleep(100 * time.Millisecond) // polling interval, bounded by the deadline
	}
	if p.cmd.ProcessState != nil {
		t.Fatal("Ctrl-C ended the node")
	}
	p.typeKeys("id\r")
	off = p.waitFor(off, "peer ID: ", 10*time.Second)

	// A name with a space completes quoted, and the completed command works.
	p.typeKeys("wait file 'my notes.txt' --timeout 60s\r")
	off = p.waitFor(off, "ok: file my notes.txt", 60*time.Second)
	p.typeKeys("get my\t")
	off = p.waitFor(off, `my\ notes.txt `, 10*time.Second)
	p.typeKeys("\r")
	off = p.waitFor(off, "saved ", 30*time.Second)
	got, err = os.ReadFile(filepath.Join(root, "tty", "downloads", "my notes.txt"))
	if err != nil || !bytes.Equal(got, notes) {
		t.Fatalf("file fetched by the completed name differs (%v)", err)
	}

	p.typeKeys("quit\r")
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("quit did not end the node")
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("node exited with %v", err)
	}
}
