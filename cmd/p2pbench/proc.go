package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// line is one line of a node's stdout and when it was read.
type line struct {
	text string
	at   time.Time
}

// proc is a p2pshare node process driven through its stdin. Run writes a
// command followed by "echo @@N" and collects the output until the marker.
type proc struct {
	name    string
	dir     string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan line
	started time.Time
	seq     int
	exited  chan struct{}
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

// killAll kills every node process started by this program.
func killAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	procs = nil
}

// startNode starts bin with --data dir listening on 127.0.0.1 TCP, with
// extra flags. If bbsKey is set, it is copied into dir first so the node
// does not spend seconds making its own modulus.
func startNode(bin, name, dir, bbsKey string, extra ...string) (*proc, error) {
	return startNodeEnv(bin, name, dir, bbsKey, nil, []string{"/ip4/127.0.0.1/tcp/0"}, extra...)
}

// startNodeEnv is startNode with environment variables added to the
// node's and a --listen flag per address of listen (none: the node's
// default addresses).
func startNodeEnv(bin, name, dir, bbsKey string, env, listen []string, extra ...string) (*proc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return nil, err
	}
	if bbsKey != "" {
		if _, err := os.Stat(filepath.Join(dir, "bbs.key")); os.IsNotExist(err) {
			b, err := os.ReadFile(bbsKey)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, "bbs.key"), b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	args := []string{"--data", dir}
	for _, a := range listen {
		args = append(args, "--listen", a)
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	return startCmd(cmd, name, dir)
}

// startCmd starts cmd as a driven node process (see proc).
func startCmd(cmd *exec.Cmd, name, dir string) (*proc, error) {
	stderr, err := os.Create(filepath.Join(dir, "stderr.txt"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, dir: dir, cmd: cmd, stdin: stdin, lines: make(chan line, 4096), exited: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- line{sc.Text(), time.Now()}
		}
		cmd.Wait()
		stderr.Close()
		close(p.exited)
		close(p.lines)
	}()
	return p, nil
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// quit asks the node to stop and waits for it (kills it after a deadline).
func (p *proc) quit() {
	fmt.Fprintf(p.stdin, "quit\n")
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// send writes a command and its marker without waiting; it returns the
// marker to wait for with await.
func (p *proc) send(cmds ...string) (string, error) {
	p.seq++
	mark := fmt.Sprintf("@@%d", p.seq)
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(c)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "echo %s\n", mark)
	_, err := io.WriteString(p.stdin, b.String())
	return mark, err
}

// await collects output lines until mark. An "error:" line fails it.
func (p *proc) await(mark string, timeout time.Duration) ([]line, error) {
	var out []line
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var firstErr error
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return out, fmt.Errorf("%s exited (see %s/stderr.txt, node.log); output: %v", p.name, p.dir, texts(out))
			}
			if l.text == mark {
				return out, firstErr
			}
			if strings.HasPrefix(l.text, "error:") && firstErr == nil {
				firstErr = fmt.Errorf("%s: %s", p.name, l.text)
			}
			out = append(out, l)
		case <-deadline.C:
			return out, fmt.Errorf("%s: no answer after %s; output so far: %v", p.name, timeout, texts(out))
		}
	}
}

// run sends commands and waits for their output; it returns the time from
// the write to the marker.
func (p *proc) run(timeout time.Duration, cmds ...string) ([]line, time.Duration, error) {
	start := time.Now()
	mark, err := p.send(cmds...)
	if err != nil {
		return nil, 0, err
	}
	out, err := p.await(mark, timeout)
	return out, time.Since(start), err
}

func texts(ls []line) []string {
	var s []string
	for _, l := range ls {
		s = append(s, l.text)
	}
	return s
}

// id returns the node's peer ID and its first 127.0.0.1 multiaddr (TCP or
// QUIC, whichever it lists first) with /p2p/.
func (p *proc) id() (string, string, error) {
	out, _, err := p.run(30*time.Second, "id")
	if err != nil {
		return "", "", err
	}
	var id, addr string
	for _, l := range out {
		t := strings.TrimSpace(l.text)
		if s, ok := strings.CutPrefix(t, "peer ID: "); ok {
			id = s
		} else if (strings.HasPrefix(t, "/ip4/127.0.0.1/tcp/") || strings.HasPrefix(t, "/ip4/127.0.0.1/udp/")) && addr == "" {
			addr = t
		}
	}
	if id == "" || addr == "" {
		return "", "", fmt.Errorf("%s: no peer ID or 127.0.0.1 address in %v", p.name, texts(out))
	}
	if !strings.Contains(addr, "/p2p/") {
		addr += "/p2p/" + id
	}
	return id, addr, nil
}

// procCPU is the CPU time (user and system) process pid has used, from
// /proc/PID/stat in clock ticks of 10 ms (USER_HZ is 100 on Linux); -1 if
// it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: count from after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut) // field 14, utime
	fmt.Sscan(f[12], &st) // field 15, stime
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// status reads a field of /proc/PID/status in KiB (VmHWM, VmRSS).
func (p *proc) status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}

// resetHWM resets the process's peak RSS (VmHWM) to its current RSS by
// writing 5 to /proc/PID/clear_refs (Linux >= 4.0), so a later VmHWM is the
// peak of what happened in between. It reports whether that worked.
func (p *proc) resetHWM() bool {
	err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
	return err == nil
}

var _ = syscall.SIGTERM

// makeBBSKey starts a throw-away node once so it makes its BBS modulus,
// and returns the key's path, to be copied into every benchmark node.
func makeBBSKey(bin, work string) (string, error) {
	if d := os.Getenv("P2PBENCH_KEYDIR"); d != "" {
		work = d
	}
	dir := filepath.Join(work, "p2pbench-keytemplate")
	key := filepath.Join(dir, "bbs.key")
	if _, err := os.Stat(key); err == nil {
		return key, nil
	}
	p, err := startNode(bin, "keytemplate", dir, "", "--no-mdns")
	if err != nil {
		return "", err
	}
	if _, _, err := p.run(2*time.Minute, "echo ready"); err != nil {
		p.kill()
		return "", err
	}
	p.quit()
	if _, err := os.Stat(key); err != nil {
		return "", fmt.Errorf("the node made no %s: %w", key, err)
	}
	return key, nil
}

// useWorkFolder makes *work a new folder under the temporary directory,
// named from prefix, when it is empty (cleanup removes it), or makes sure
// the folder given exists (cleanup keeps it).
func useWorkFolder(work *string, prefix string) (cleanup func(), err error) {
	if *work != "" {
		return func() {}, os.MkdirAll(*work, 0o700)
	}
	w, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	*work = w
	return func() { os.RemoveAll(w) }, nil
}
