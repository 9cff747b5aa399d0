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

// savedRe is a get's summary line: the download's duration as the node
// measured it, and the number of providers.
var savedRe = regexp.MustCompile(`^saved .* in (\S+) \([^)]*\) from (\d+) provider\(s\), every chunk verified`)

// nodeSet is a fetcher and providers of one file, connected to the fetcher.
type nodeSet struct {
	// nodeTime: get returns the duration the fetching node reports rather
	// than the time from the command to its summary line (the hostile
	// benchmark runs at a low priority, so its own clock reads late).
	nodeTime  bool
	fetcher   *proc
	providers []*proc
	ids       []string
	// pprof is each node's profiling address (fetcher first), if any.
	pprof []string
}

// nodeArgs are the listen flags and discovery of the nodes of one
// transport: "tcp" and "quic" listen on 127.0.0.1 with that transport
// only, without mDNS, and the fetcher connects to each provider's address;
// "default" gives no --listen flag (every interface, TCP and QUIC: what a
// user gets) and keeps mDNS on, which finds the providers (in the bench's
// namespace, only loopback exists).
func nodeArgs(transport string) (listen []string, extra []string, err error) {
	switch transport {
	case "tcp":
		return []string{"/ip4/127.0.0.1/tcp/0"}, []string{"--no-mdns"}, nil
	case "quic":
		return []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, []string{"--no-mdns"}, nil
	case "default":
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("transport %q: want tcp, quic or default", transport)
}

// startNodeSet starts k providers over transport (nodeArgs), each with
// file hard-linked into its share folder as name and published, and a
// fetcher connected to all of them that has seen the announcement. With
// profile, every node serves its profiles on a loopback port (ns.pprof).
func startNodeSet(bin, work, key, file, name, transport string, k int, profile bool) (*nodeSet, error) {
	listen, extra, err := nodeArgs(transport)
	if err != nil {
		return nil, err
	}
	ns := &nodeSet{}
	start := func(label, dir string) (*proc, error) {
		var env []string
		if profile {
			addr, err := freeLoopbackPort()
			if err != nil {
				return nil, err
			}
			env = []string{"P2PSHARE_PPROF=" + addr, "P2PSHARE_PPROF_BLOCK=1"}
			ns.pprof = append(ns.pprof, addr)
		}
		return startNodeEnv(bin, label, dir, key, env, listen, extra...)
	}
	f, err := start("fetcher", filepath.Join(work, "fetcher"))
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
		p, err := start(fmt.Sprintf("provider%d", i+1), dir)
		if err != nil {
			return nil, err
		}
		ns.providers = append(ns.providers, p)
	}
	if transport == "default" {
		if _, _, err := f.run(2*time.Minute, fmt.Sprintf("wait peers %d --timeout 90s", k)); err != nil {
			return nil, fmt.Errorf("providers found by mDNS: %w", err)
		}
	}
	for _, p := range ns.providers {
		id, addr, err := p.id()
		if err != nil {
			return nil, err
		}
		ns.ids = append(ns.ids, id)
		if transport != "default" {
			if _, _, err := f.run(time.Minute, "connect "+addr); err != nil {
				return nil, err
			}
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
			n, _ := strconv.Atoi(m[2])
			if ns.nodeTime {
				if nd, err := time.ParseDuration(m[1]); err == nil {
					d = nd
				}
			}
			return d, n, nil
		}
	}
	return 0, 0, fmt.Errorf("no summary line in %v", texts(lines))
}

// link reports the fetcher's view of its connection to provider i
// (`peers --wide`: the LINK column names the transport).
func (ns *nodeSet) link(i int) string {
	lines, _, err := ns.fetcher.run(time.Minute, "peers --wide")
	if err != nil {
		return "?"
	}
	short := ns.ids[i][len(ns.ids[i])-6:]
	for _, l := range lines {
		if strings.Contains(l.text, short) {
			return strings.Join(strings.Fields(l.text), " ")
		}
	}
	return "?"
}

// transferSet is the node set of one transport and the names of its
// results: the TCP set keeps the historical names (get1, get3, fetcher,
// server, ...); the others are prefixed with their transport.
type transferSet struct {
	transport string
	ns        *nodeSet
	k         int
}

func (t *transferSet) name(c string) string {
	if t.transport == "tcp" {
		return c
	}
	return t.transport + "-" + c
}

func cmdTransfer(args []string) error {
	fs := flag.NewFlagSet("transfer", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	file := fs.String("file", "", "file to transfer")
	runs := fs.Int("runs", 3, "runs")
	providers := fs.Int("providers", 3, "also fetch from this many providers at once (<2: only 1; the default configuration always has 1)")
	transports := fs.String("transports", "tcp", "comma-separated node configurations: tcp, quic, default (no --listen, mDNS)")
	baselines := fs.Bool("baselines", true, "measure the TCP and bare libp2p baselines in each run")
	work := fs.String("work", "", "work folder (default: a new one under /tmp)")
	profile := fs.String("profile", "", "after the runs, profile the fetcher and the first provider of every configuration during repeated 1-provider gets; write CPU, block and mutex profiles to this folder")
	profileFor := fs.Duration("profile-for", 10*time.Second, "how long to profile each configuration")
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
	var sets []*transferSet
	bare := map[string]*libp2pPair{} // bare streams, by transport
	for _, tr := range strings.Split(*transports, ",") {
		k := max(*providers, 1)
		if tr == "default" {
			k = 1
		}
		ns, err := startNodeSet(*bin, filepath.Join(*work, tr), key, *file, "big.bin", tr, k, *profile != "")
		if err != nil {
			return fmt.Errorf("%s: %w", tr, err)
		}
		defer ns.quit()
		sets = append(sets, &transferSet{transport: tr, ns: ns, k: k})
		logf("transfer %s: fetcher's link to provider1: %s", tr, ns.link(0))
		bt := tr
		if tr == "default" {
			bt = "tcp" // the target compares the default path with bare TCP
		}
		if *baselines && bare[bt] == nil {
			pair, err := newLibp2pPair(*file, bt)
			if err != nil {
				return err
			}
			defer pair.Close()
			bare[bt] = pair
		}
	}
	outDir := filepath.Join(*work, "out")
	os.MkdirAll(outDir, 0o700)
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	// Idle RSS of the first (TCP) set: all sets run the same binary.
	if v, err := sets[0].ns.fetcher.status("VmRSS"); err == nil {
		emit(Result{Bench: "memory", Case: "idle-fetcher", Metric: "MiB", Value: mib(v), Size: size})
	}
	if v, err := sets[0].ns.providers[0].status("VmRSS"); err == nil {
		emit(Result{Bench: "memory", Case: "idle-server", Metric: "MiB", Value: mib(v), Size: size})
	}
	for i := range *runs {
		if *baselines {
			d, n, err := tcpCopy(*file, outDir)
			if err != nil {
				return fmt.Errorf("tcp copy: %w", err)
			}
			emit(Result{Bench: "transfer", Case: "tcp", Metric: "MBps", Value: mbps(n, d), Run: i, Size: n})
			for _, bt := range []string{"tcp", "quic"} {
				pair := bare[bt]
				if pair == nil {
					continue
				}
				for _, dir := range []string{outDir, ""} {
					d, n, err = pair.copy(dir)
					if err != nil {
						return fmt.Errorf("libp2p copy over %s: %w", bt, err)
					}
					emit(Result{Bench: "transfer", Case: bareCase(bt, dir == ""), Metric: "MBps", Value: mbps(n, d), Run: i, Size: n})
				}
			}
		}
		for _, t := range sets {
			if err := t.measure(i, size, outDir); err != nil {
				return fmt.Errorf("%s: %w", t.transport, err)
			}
		}
	}
	if *profile != "" {
		for _, t := range sets {
			if err := t.profile(*profile, outDir, *profileFor); err != nil {
				return fmt.Errorf("profile %s: %w", t.transport, err)
			}
		}
	}
	return nil
}

// measure runs the gets of run i on t's nodes: from one provider, then
// from all (k >= 2), with the peak RSS of each node during each.
func (t *transferSet) measure(i int, size int64, outDir string) error {
	ns := t.ns
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	reset := ns.fetcher.resetHWM() && ns.providers[0].resetHWM()
	note := "VmHWM reset before the get (clear_refs)"
	if !reset {
		note = "VmHWM over the process's life (clear_refs refused)"
	}
	out := filepath.Join(outDir, fmt.Sprintf("%s-get1-%d.bin", t.transport, i))
	fc, sc := procCPU(ns.fetcher.cmd.Process.Pid), procCPU(ns.providers[0].cmd.Process.Pid)
	d, np, err := ns.get("big.bin", out, ns.ids[0])
	if err != nil {
		return err
	}
	// CPU per GiB moved: what the get costs, whatever else shares the
	// machine's cores (unlike its rate).
	if fc >= 0 && sc >= 0 {
		gib := float64(size) / (1 << 30)
		fc = procCPU(ns.fetcher.cmd.Process.Pid) - fc
		sc = procCPU(ns.providers[0].cmd.Process.Pid) - sc
		emit(Result{Bench: "cpu", Case: t.name("fetcher"), Metric: "s_per_GiB", Value: fc.Seconds() / gib, Run: i, Size: size})
		emit(Result{Bench: "cpu", Case: t.name("server"), Metric: "s_per_GiB", Value: sc.Seconds() / gib, Run: i, Size: size})
	}
	if err := checkSize(out, size); err != nil {
		return err
	}
	os.Remove(out)
	emit(Result{Bench: "transfer", Case: t.name("get1"), Metric: "MBps", Value: mbps(size, d), Run: i, Size: size, N: np})
	fh, _ := ns.fetcher.status("VmHWM")
	sh, _ := ns.providers[0].status("VmHWM")
	emit(Result{Bench: "memory", Case: t.name("fetcher"), Metric: "MiB", Value: mib(fh), Run: i, Size: size, Note: note})
	emit(Result{Bench: "memory", Case: t.name("server"), Metric: "MiB", Value: mib(sh), Run: i, Size: size, Note: note})
	if t.k < 2 {
		return nil
	}
	for _, p := range append([]*proc{ns.fetcher}, ns.providers...) {
		p.resetHWM()
	}
	out = filepath.Join(outDir, fmt.Sprintf("%s-get%d-%d.bin", t.transport, t.k, i))
	d, np, err = ns.get("big.bin", out)
	if err != nil {
		return err
	}
	if err := checkSize(out, size); err != nil {
		return err
	}
	os.Remove(out)
	emit(Result{Bench: "transfer", Case: t.name(fmt.Sprintf("get%d", t.k)), Metric: "MBps", Value: mbps(size, d), Run: i, Size: size, N: np})
	fh, _ = ns.fetcher.status("VmHWM")
	sh = 0
	for _, p := range ns.providers {
		v, _ := p.status("VmHWM")
		sh = max(sh, v)
	}
	emit(Result{Bench: "memory", Case: t.name(fmt.Sprintf("fetcher-%dp", t.k)), Metric: "MiB", Value: mib(fh), Run: i, Size: size, Note: note})
	emit(Result{Bench: "memory", Case: t.name(fmt.Sprintf("server-%dp", t.k)), Metric: "MiB", Value: mib(sh), Run: i, Size: size, Note: note})
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
