package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// freeLoopbackPort returns a 127.0.0.1 address with a port that was free a
// moment ago (for a node's profiling endpoints).
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// profile collects, from t's fetcher and first provider (both started with
// P2PSHARE_PPROF), a CPU profile, the block and mutex profiles (off-CPU
// time: what goroutines waited on) and an execution trace (time blocked in
// system calls: `go tool trace -pprof=syscall FILE`) over d, while the
// fetcher repeats 1-provider gets. They are written to dir as
// TRANSPORT-NODE.KIND.pprof; read them with `go tool pprof bin/p2pshare
// FILE`.
func (t *transferSet) profile(dir, outDir string, d time.Duration) error {
	ns := t.ns
	if len(ns.pprof) < 2 {
		return errors.New("the nodes serve no profiles")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secs := max(int(d.Seconds()), 1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i, node := range []string{"fetcher", "provider"} {
		for _, kind := range []string{"profile", "block", "mutex", "trace"} {
			url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", ns.pprof[i], kind, secs)
			name := kind
			if kind == "profile" {
				name = "cpu"
			}
			out := filepath.Join(dir, fmt.Sprintf("%s-%s.%s.pprof", t.transport, node, name))
			wg.Go(func() {
				if err := fetchTo(url, out); err != nil {
					errs <- fmt.Errorf("%s %s profile: %w", node, name, err)
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	gets := 0
	var getErr error
	for running := true; running && getErr == nil; {
		select {
		case <-done:
			running = false
		default:
			out := filepath.Join(outDir, "profile-get.bin")
			_, _, getErr = ns.get("big.bin", out, ns.ids[0])
			os.Remove(out)
			gets++
		}
	}
	<-done
	close(errs)
	for err := range errs {
		return err
	}
	if getErr != nil {
		return getErr
	}
	logf("profile %s: %d gets during %ds; profiles in %s", t.transport, gets, secs, dir)
	return nil
}

// fetchTo GETs url (a profile on loopback) into the file out.
func fetchTo(url, out string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
