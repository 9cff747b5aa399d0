package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

var savedRe = regexp.MustCompile(`^saved .* from (\d+) provider\(s\), sha256 ([0-9a-f]+) verified`)

// nodeSet is a fetcher and providers of one file, connected to the fetcher.
type nodeSet struct {
	fetcher   *proc
	providers []*proc
	ids       []string
}

// startNodeSet starts k providers, each with file hard-linked into its
// share folder as name and published, and a fetcher connected to all of
// them that has seen the announcement.
func startNodeSet(bin, work, key, file, name string, k int) (*nodeSet, error) {
	ns := &nodeSet{}
	f, err := startNode(bin, "fetcher", filepath.Join(work, "fetcher"), key, "--no-mdns")
	if err != nil {
		return nil, err
	}
	ns.fetcher = f
	for i := range k {
		dir := filepath.Join(work, fmt.Sprintf("provider%d", i+1))
		if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
			return nil, err
		}
		if err := os.Link(file, filepath.Join(dir, "files", name)); err != nil {
			return nil, fmt.Errorf("hard link into the share folder: %w", err)
		}
		p, err := startNode(bin, fmt.Sprintf("provider%d", i+1), dir, key, "--no-mdns")
		if err != nil {
			return nil, err
		}
		ns.providers = append(ns.providers, p)
	}
	for _, p := range ns.providers {
		id, addr, err := p.id()
		if err != nil {
			return nil, err
		}
		ns.ids = append(ns.ids, id)
		if _, _, err := f.run(time.Minute, "connect "+addr); err != nil {
			return nil, err
		}
		if _, _, err := p.run(10*time.Minute, "publish "+name); err != nil {
			return nil, err
		}
	}
	if _, _, err := f.run(2*time.Minute, "wait file "+name+" --timeout 90s"); err != nil {
		return nil, err
	}
	return ns, nil
}

func (ns *nodeSet) quit() {
	for _, p := range append([]*proc{ns.fetcher}, ns.providers...) {
		p.quit()
	}
}

// get fetches name into out and returns the time from the command to its
// summary line, and the number of providers the node reports.
func (ns *nodeSet) get(name, out string, from ...string) (time.Duration, int, error) {
	cmd := "get " + name + " -o " + out
	for _, id := range from {
		cmd += " --from " + id
	}
	lines, d, err := ns.fetcher.run(30*time.Minute, cmd)
	if err != nil {
		return 0, 0, err
	}
	for _, l := range lines {
		if m := savedRe.FindStringSubmatch(l.text); m != nil {
			n, _ := strconv.Atoi(m[1])
			return d, n, nil
		}
	}
	return 0, 0, fmt.Errorf("no summary line in %v", texts(lines))
}

func cmdTransfer(args []string) error {
	fs := flag.NewFlagSet("transfer", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	file := fs.String("file", "", "file to transfer")
	runs := fs.Int("runs", 3, "runs")
	providers := fs.Int("providers", 3, "also fetch from this many providers at once (<2: only 1)")
	baselines := fs.Bool("baselines", true, "measure the TCP and bare libp2p baselines in each run")
	work := fs.String("work", "", "work folder (default: a new one under /tmp)")
	fs.Parse(args)
	defer killAll()
	cleanup, err := useWorkFolder(work, "p2pbench-transfer-")
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := os.Stat(*file)
	if err != nil {
		return err
	}
	size := st.Size()
	if err := warm(*file); err != nil {
		return err
	}
	key, err := makeBBSKey(*bin, filepath.Dir(*work))
	if err != nil {
		return err
	}
	k := max(*providers, 1)
	ns, err := startNodeSet(*bin, *work, key, *file, "big.bin", k)
	if err != nil {
		return err
	}
	defer ns.quit()
	var pair *libp2pPair
	if *baselines {
		if pair, err = newLibp2pPair(*file); err != nil {
			return err
		}
		defer pair.Close()
	}
	outDir := filepath.Join(*work, "out")
	os.MkdirAll(outDir, 0o700)
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	if v, err := ns.fetcher.status("VmRSS"); err == nil {
		emit(Result{Bench: "memory", Case: "idle-fetcher", Metric: "MiB", Value: mib(v), Size: size})
	}
	if v, err := ns.providers[0].status("VmRSS"); err == nil {
		emit(Result{Bench: "memory", Case: "idle-server", Metric: "MiB", Value: mib(v), Size: size})
	}
	for i := range *runs {
		if *baselines {
			d, n, err := tcpCopy(*file, outDir)
			if err != nil {
				return fmt.Errorf("tcp copy: %w", err)
			}
			emit(Result{Bench: "transfer", Case: "tcp", Metric: "MBps", Value: mbps(n, d), Run: i, Size: n})
			d, n, err = pair.copy(outDir)
			if err != nil {
				return fmt.Errorf("libp2p copy: %w", err)
			}
			emit(Result{Bench: "transfer", Case: "libp2p", Metric: "MBps", Value: mbps(n, d), Run: i, Size: n})
		}

		// One provider.
		reset := ns.fetcher.resetHWM() && ns.providers[0].resetHWM()
		note := "VmHWM reset before the get (clear_refs)"
		if !reset {
			note = "VmHWM over the process's life (clear_refs refused)"
		}
		out := filepath.Join(outDir, fmt.Sprintf("get1-%d.bin", i))
		d, np, err := ns.get("big.bin", out, ns.ids[0])
		if err != nil {
			return err
		}
		if err := checkSize(out, size); err != nil {
			return err
		}
		os.Remove(out)
		emit(Result{Bench: "transfer", Case: "get1", Metric: "MBps", Value: mbps(size, d), Run: i, Size: size, N: np})
		fh, _ := ns.fetcher.status("VmHWM")
		sh, _ := ns.providers[0].status("VmHWM")
		emit(Result{Bench: "memory", Case: "fetcher", Metric: "MiB", Value: mib(fh), Run: i, Size: size, Note: note})
		emit(Result{Bench: "memory", Case: "server", Metric: "MiB", Value: mib(sh), Run: i, Size: size, Note: note})

		if k >= 2 {
			for _, p := range append([]*proc{ns.fetcher}, ns.providers...) {
				p.resetHWM()
			}
			out := filepath.Join(outDir, fmt.Sprintf("get%d-%d.bin", k, i))
			d, np, err := ns.get("big.bin", out)
			if err != nil {
				return err
			}
			if err := checkSize(out, size); err != nil {
				return err
			}
			os.Remove(out)
			emit(Result{Bench: "transfer", Case: fmt.Sprintf("get%d", k), Metric: "MBps", Value: mbps(size, d), Run: i, Size: size, N: np})
			fh, _ := ns.fetcher.status("VmHWM")
			var sh int64
			for _, p := range ns.providers {
				v, _ := p.status("VmHWM")
				sh = max(sh, v)
			}
			emit(Result{Bench: "memory", Case: fmt.Sprintf("fetcher-%dp", k), Metric: "MiB", Value: mib(fh), Run: i, Size: size, Note: note})
			emit(Result{Bench: "memory", Case: fmt.Sprintf("server-%dp", k), Metric: "MiB", Value: mib(sh), Run: i, Size: size, Note: note})
		}
	}
	return nil
}

func checkSize(path string, want int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() != want {
		return fmt.Errorf("%s: %d bytes, want %d", path, st.Size(), want)
	}
	return nil
}

// cmdHash compares publishing (the node's publish command, which hashes the
// file with manifest.Build, and manifest.Build in this process) with
// `openssl dgst -sha256`, all reading the file from the page cache.
func cmdHash(args []string) error {
	fs := flag.NewFlagSet("hash", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary (empty: skip the publish command)")
	file := fs.String("file", "", "file to hash")
	runs := fs.Int("runs", 3, "runs")
	var c common
	c.register(fs)
	fs.Parse(args)
	defer killAll()
	st, err := os.Stat(*file)
	if err != nil {
		return err
	}
	size := st.Size()
	if err := warm(*file); err != nil {
		return err
	}
	var node *proc
	if *bin != "" {
		work, err := os.MkdirTemp("", "p2pbench-hash-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		key, err := makeBBSKey(*bin, os.TempDir())
		if err != nil {
			return err
		}
		dir := filepath.Join(work, "node")
		os.MkdirAll(filepath.Join(dir, "files"), 0o700)
		if err := os.Link(*file, filepath.Join(dir, "files", "big.bin")); err != nil {
			return err
		}
		if node, err = startNode(*bin, "publisher", dir, key, "--no-mdns"); err != nil {
			return err
		}
		defer node.quit()
		// The first publish records and announces; later ones hash the
		// file the same way and answer "already published".
		if _, _, err := node.run(10*time.Minute, "publish big.bin"); err != nil {
			return err
		}
	}
	if err := c.start(); err != nil {
		return err
	}
	defer c.stop()
	for i := range *runs {
		start := time.Now()
		outb, err := exec.Command("openssl", "dgst", "-sha256", *file).CombinedOutput()
		if err != nil {
			return fmt.Errorf("openssl: %v: %s", err, outb)
		}
		emit(Result{Bench: "publish", Case: "openssl", Metric: "MBps", Value: mbps(size, time.Since(start)), Run: i, Size: size})

		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		start = time.Now()
		_, err = manifest.Build(context.Background(), f, size, manifest.DefaultChunkSize)
		d := time.Since(start)
		f.Close()
		if err != nil {
			return err
		}
		emit(Result{Bench: "publish", Case: "build", Metric: "MBps", Value: mbps(size, d), Run: i, Size: size})

		if node != nil {
			lines, d, err := node.run(10*time.Minute, "publish big.bin")
			if err != nil {
				return err
			}
			if len(lines) == 0 || !strings.Contains(lines[0].text, "published") {
				return fmt.Errorf("publish: unexpected output %v", texts(lines))
			}
			emit(Result{Bench: "publish", Case: "publish", Metric: "MBps", Value: mbps(size, d), Run: i, Size: size})
		}
	}
	return nil
}
