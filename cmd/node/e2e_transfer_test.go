package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// send writes a command without waiting for its output.
func (p *proc) send(cmdline string) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.stdin, "%s\n", cmdline); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.name, cmdline, err)
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
	p.cmd.Wait()
}

// waitLine waits for an output line matching re and returns it.
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.lines:
			if re.MatchString(l) {
				return l
			}
		case <-p.done:
			p.t.Fatalf("%s exited while waiting for %v", p.name, re)
		case <-deadline:
			p.t.Fatalf("%s: no line matching %v after %s", p.name, re, timeout)
		}
	}
}

// patterned returns n bytes of a simple, position-dependent pattern (cheap
// to make, and no two chunks alike).
func patterned(n, mul int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*mul + i>>12)
	}
	return b
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// startProvider starts a node whose share folder holds name with data, and
// publishes it.
func startProvider(t *testing.T, dir, name string, data []byte, extra ...string) *proc {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, filepath.Base(dir), dir, extra...)
	p.do("publish " + name)
	return p
}

// waitPartial waits until the partial downloads under downloads hold at
// least n bytes (the download is under way).
func waitPartial(t *testing.T, downloads string, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for partialBytes(t, downloads) < n {
		if time.Now().After(deadline) {
			t.Fatal("download did not get under way")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// Three providers, each limited to 4 MiB/s so the download takes a few
// seconds; one is killed with SIGKILL mid-transfer. The download completes
// from the other two and the file is identical.
func TestMultiSourceSurvivesProviderKill(t *testing.T) {
	root := t.TempDir()
	data := patterned(24<<20+5, 7)
	var provs []*proc
	for i := 1; i <= 3; i++ {
		dir := filepath.Join(root, fmt.Sprintf("prov%d", i))
		provs = append(provs, startProvider(t, dir, "big.bin", data, "--max-upload-rate", "4MiB"))
	}
	fetch := startProc(t, "fetcher", filepath.Join(root, "fetcher"))
	// Well under the 60 s catalog refresh: the providers published while
	// the fetcher was still connecting, so only announcements (and their
	// repeat, see internal/share announceRepeat) bring all three in time.
	fetch.do("wait file big.bin --providers 3 --timeout 20s")

	fetch.send("get big.bin")
	// Kill one provider once the download is under way: when the fetcher's
	// partial data has reached a quarter of the file.
	victim := provs[2]
	waitPartial(t, filepath.Join(root, "fetcher", "downloads"), int64(len(data))/4)
	victim.kill9()

	line := fetch.waitLine(regexp.MustCompile(`^(saved|error:)`), 2*time.Minute)
	if !strings.HasPrefix(line, "saved") {
		t.Fatalf("get failed after a provider died: %s", line)
	}
	t.Log(line)
	if m := regexp.MustCompile(`from (\d+) provider`).FindStringSubmatch(line); m == nil || atoi(m[1]) < 2 {
		t.Fatalf("download did not use several providers: %s", line)
	}
	got, err := os.ReadFile(filepath.Join(root, "fetcher", "downloads", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded file differs from the original")
	}
}

// partialBytes is how many bytes the partial data files under dir (a
// downloads folder) hold, from their allocated blocks: the files are
// pre-sized and sparse, so this grows as chunks are written, independent of
// anything the node reports.
func partialBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, ".partial", "*", "data"))
	for _, f := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// The fetching node is killed with SIGKILL at a random point of a download
// and restarted: `transfers` shows the download paused, `get` resumes it,
// fetches only the missing chunks (resumed + fetched = all chunks), and the
// file is bit-identical.
func TestResumeAfterFetcherKill9(t *testing.T) {
	root := t.TempDir()
	const size = 32<<20 + 999 // 33 chunks of 1 MiB
	const chunks = 33
	data := patterned(size, 13)
	startProvider(t, filepath.Join(root, "prov"), "big.bin", data, "--max-upload-rate", "8MiB")

	fetchDir := filepath.Join(root, "fetcher")
	fetch := startProc(t, "fetcher", fetchDir)
	fetch.do("wait file big.bin --timeout 60s")
	fetch.send("get big.bin")
	// A random point between an eighth and three quarters of the file.
	frac := 0.125 + rand.Float64()*0.625
	t.Logf("killing the fetcher at %.0f%% of the file", frac*100)
	waitPartial(t, filepath.Join(fetchDir, "downloads"), int64(frac*size))
	fetch.kill9()
	if _, err := os.Stat(filepath.Join(fetchDir, "downloads", "big.bin")); err == nil {
		t.Fatal("a file exists under the final name after the kill")
	}

	fetch = startProc(t, "fetcher-restarted", fetchDir)
	if out := fetch.do("transfers"); !strings.Contains(out, "paused") {
		t.Fatalf("transfers after restart: %q", out)
	}
	fetch.do("wait file big.bin --timeout 60s")
	out := fetch.do("get big.bin")
	m := regexp.MustCompile(`resumed: (\d+) chunk\(s\) were already here, (\d+) fetched`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("get after restart did not resume: %q", out)
	}
	resumed, _ := strconv.Atoi(m[1])
	fetched, _ := strconv.Atoi(m[2])
	t.Logf("resumed %d chunks, fetched %d", resumed, fetched)
	if resumed == 0 || resumed+fetched != chunks {
		t.Fatalf("resumed %d + fetched %d, want > 0 resumed and %d in all", resumed, fetched, chunks)
	}
	// The rate counts the bytes this get moved, not the whole file: the
	// fetched chunks are 1 MiB but perhaps the last (999 bytes).
	sm := regexp.MustCompile(` in (\S+) \(([0-9.]+) (B|KiB|MiB|GiB)/s\)`).FindStringSubmatch(out)
	if sm == nil {
		t.Fatalf("no duration and rate in %q", out)
	}
	dur, err := time.ParseDuration(sm[1])
	if err != nil {
		t.Fatal(err)
	}
	rate, _ := strconv.ParseFloat(sm[2], 64)
	rate *= map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[sm[3]]
	lo := float64((fetched-1)<<20+999) / dur.Seconds() * 0.97
	hi := float64(fetched<<20) / dur.Seconds() * 1.03
	if rate < lo || rate > hi {
		t.Fatalf("rate %.0f B/s after a resume; %d chunks fetched in %s make %.0f to %.0f", rate, fetched, dur, lo, hi)
	}
	got, err := os.ReadFile(filepath.Join(fetchDir, "downloads", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("resumed file differs from the original")
	}
	if out := fetch.do("transfers"); !strings.Contains(out, "no transfers") {
		t.Fatalf("transfers after completion: %q", out)
	}
}

// The only provider dies mid-transfer: the get says it waits for providers,
// keeps its progress, and finishes by itself when the provider comes back
// (restarted with its data folder: same peer ID, new port).
func TestDownloadWaitsForProviderToReturn(t *testing.T) {
	root := t.TempDir()
	data := patterned(16<<20+3, 31)
	provDir := filepath.Join(root, "prov")
	prov := startProvider(t, provDir, "big.bin", data, "--max-upload-rate", "4MiB")
	fetchDir := filepath.Join(root, "fetcher")
	fetch := startProc(t, "fetcher", fetchDir)
	fetch.do("wait file big.bin --timeout 60s")
	fetch.send("get big.bin")
	waitPartial(t, filepath.Join(fetchDir, "downloads"), int64(len(data))/4)
	prov.kill9()
	start := time.Now()
	fetch.waitLine(regexp.MustCompile(`^no provider reachable: download waits`), 90*time.Second)
	t.Logf("fetcher reported waiting %s after the kill", time.Since(start).Round(time.Millisecond))

	startProc(t, "prov-restarted", provDir, "--max-upload-rate", "4MiB")
	start = time.Now()
	line := fetch.waitLine(regexp.MustCompile(`^(saved|error:)`), 2*time.Minute)
	t.Logf("download finished %s after the restart", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(line, "saved") {
		t.Fatalf("get failed: %s", line)
	}
	got, err := os.ReadFile(filepath.Join(fetchDir, "downloads", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded file differs from the original")
	}
}
