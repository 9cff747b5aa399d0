package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// cmdDiscovery starts -n node processes with mDNS on (in the namespace's
// loopback) and measures, from each process's start, when it sees its
// first peer and when it sees all the others; "all" is from the first
// process start until the last node sees every other.
func cmdDiscovery(args []string) error {
	fs := flag.NewFlagSet("discovery", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	n := fs.Int("n", 4, "nodes")
	runs := fs.Int("runs", 3, "runs")
	fs.Parse(args)
	defer killAll()
	work, err := os.MkdirTemp("", "p2pbench-discovery-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	key, err := makeBBSKey(*bin, os.TempDir())
	if err != nil {
		return err
	}
	for run := range *runs {
		var ps []*proc
		for i := range *n {
			p, err := startNode(*bin, fmt.Sprintf("node%d", i+1), filepath.Join(work, fmt.Sprintf("run%d-node%d", run, i+1)), key, "--keepalive", "1s")
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		first := ps[0].started
		var wg sync.WaitGroup
		errs := make([]error, *n)
		allAt := make([]time.Time, *n)
		for i, p := range ps {
			wg.Go(func() {
				m1, err := p.send("echo ready", "wait peers 1 --timeout 60s")
				if err != nil {
					errs[i] = err
					return
				}
				out, err := p.await(m1, 90*time.Second)
				if err != nil {
					errs[i] = err
					return
				}
				for _, l := range out {
					switch {
					case l.text == "ready":
						emit(Result{Bench: "discovery", Case: "ready", Metric: "ms", Value: ms(l.at.Sub(p.started)), Run: run, N: *n})
					case strings.HasPrefix(l.text, "ok: peers"):
						emit(Result{Bench: "discovery", Case: "first", Metric: "ms", Value: ms(l.at.Sub(p.started)), Run: run, N: *n})
					}
				}
				m2, err := p.send(fmt.Sprintf("wait peers %d --timeout 60s", *n-1))
				if err != nil {
					errs[i] = err
					return
				}
				out, err = p.await(m2, 90*time.Second)
				if err != nil {
					errs[i] = err
					return
				}
				for _, l := range out {
					if strings.HasPrefix(l.text, "ok: peers") {
						allAt[i] = l.at
					}
				}
			})
		}
		wg.Wait()
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
		var last time.Time
		for _, t := range allAt {
			if t.After(last) {
				last = t
			}
		}
		emit(Result{Bench: "discovery", Case: "all", Metric: "ms", Value: ms(last.Sub(first)), Run: run, N: *n})
		for _, p := range ps {
			p.quit()
		}
	}
	return nil
}

// cmdSmall publishes -count files of -size bytes in one publish command and
// fetches them with one get command per file, all commands written at once.
func cmdSmall(args []string) error {
	fs := flag.NewFlagSet("small", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	count := fs.Int("count", 200, "files")
	sizeS := fs.String("size", "4KiB", "size of each file")
	runs := fs.Int("runs", 2, "runs (fresh files each run, same nodes)")
	fs.Parse(args)
	defer killAll()
	size, err := parseSize(*sizeS)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "p2pbench-small-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	key, err := makeBBSKey(*bin, os.TempDir())
	if err != nil {
		return err
	}
	prov, err := startNode(*bin, "provider", filepath.Join(work, "provider"), key, "--no-mdns")
	if err != nil {
		return err
	}
	defer prov.quit()
	fetch, err := startNode(*bin, "fetcher", filepath.Join(work, "fetcher"), key, "--no-mdns")
	if err != nil {
		return err
	}
	defer fetch.quit()
	_, addr, err := prov.id()
	if err != nil {
		return err
	}
	if _, _, err := fetch.run(time.Minute, "connect "+addr); err != nil {
		return err
	}
	buf := make([]byte, size)
	for run := range *runs {
		var names []string
		for i := range *count {
			name := fmt.Sprintf("r%d-f%05d.bin", run, i)
			rand.Read(buf)
			if err := os.WriteFile(filepath.Join(work, "provider", "files", name), buf, 0o600); err != nil {
				return err
			}
			names = append(names, name)
		}
		lines, d, err := prov.run(10*time.Minute, "publish "+strings.Join(names, " "))
		if err != nil {
			return err
		}
		if got := countPrefix(lines, "published "); got != *count {
			return fmt.Errorf("published %d of %d files: %v", got, *count, texts(lines[:min(5, len(lines))]))
		}
		emit(Result{Bench: "small", Case: "publish", Metric: "files_per_s", Value: float64(*count) / d.Seconds(), Run: run, N: *count, Size: size})

		var waits []string
		for _, nm := range names {
			waits = append(waits, "wait file "+nm+" --timeout 60s")
		}
		if _, _, err := fetch.run(10*time.Minute, waits...); err != nil {
			return err
		}
		var gets []string
		for _, nm := range names {
			gets = append(gets, "get "+nm)
		}
		logf("small: run %d: getting %d files", run, *count)
		lines, d, err = fetch.run(30*time.Minute, gets...)
		if err != nil {
			return err
		}
		if got := countPrefix(lines, "saved "); got != *count {
			return fmt.Errorf("saved %d of %d files", got, *count)
		}
		emit(Result{Bench: "small", Case: "get", Metric: "files_per_s", Value: float64(*count) / d.Seconds(), Run: run, N: *count, Size: size})
	}
	return nil
}

func countPrefix(ls []line, prefix string) int {
	n := 0
	for _, l := range ls {
		if strings.HasPrefix(l.text, prefix) {
			n++
		}
	}
	return n
}
