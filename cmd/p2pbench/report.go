package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

type key struct {
	bench, cas, metric string
	size               int64
	n                  int
}

type stats struct {
	vals []float64
}

func (s *stats) median() float64 { return median(s.vals) }
func (s *stats) p95() float64    { return percentile(s.vals, 95) }
func (s *stats) p5() float64     { return percentile(s.vals, 5) }
func (s *stats) max() float64    { return slices.Max(s.vals) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank percentile.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	r := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(r-1, 0), len(s)-1)]
}

// Cells of the section reports (hostile, folder): a whole number, the
// spread of throughputs as "p5 / max", and whether a target was met.
func fmt0(v float64) string { return fmt.Sprintf("%.0f", v) }

func spreadP5Max(v []float64) string { return fmt0(percentile(v, 5)) + " / " + fmt0(slices.Max(v)) }

func metMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

type row struct {
	figure, median, spread, runs, baseline, ratio, target, status string
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "results.jsonl", "JSON lines from the other subcommands")
	out := fs.String("out", "BENCHMARKS.md", "markdown file to write")
	mode := fs.String("mode", "quick", "quick or full (for the header)")
	command := fs.String("cmd", "bash scripts/bench.sh", "the command that produced the results")
	commit := fs.String("commit", "", "git commit measured")
	elapsed := fs.Duration("elapsed", 0, "wall time of the whole run")
	notesFile := fs.String("notes", "", "markdown appended at the end (profile findings)")
	fs.Parse(args)
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	groups := map[key]*stats{}
	notes := map[key]string{}
	var order []key
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		k := key{r.Bench, r.Case, r.Metric, r.Size, r.N}
		if r.Bench == "transfer" || r.Bench == "dht" || r.Bench == "small" || r.Bench == "discovery" {
			k.n = 0 // n is the provider count or the file count: not part of the key
			if r.Bench == "dht" || r.Bench == "discovery" {
				k.n = r.N
			}
		}
		if groups[k] == nil {
			groups[k] = &stats{}
			order = append(order, k)
		}
		groups[k].vals = append(groups[k].vals, r.Value)
		if r.Note != "" {
			notes[k] = r.Note
		}
	}
	get := func(bench, cas, metric string, size int64, n int) *stats {
		return groups[key{bench, cas, metric, size, n}]
	}
	sizes := func(bench string) []int64 {
		var s []int64
		for _, k := range order {
			if k.bench == bench && !slices.Contains(s, k.size) {
				s = append(s, k.size)
			}
		}
		slices.Sort(s)
		return s
	}
	ns := func(bench string) []int {
		var s []int
		for _, k := range order {
			if k.bench == bench && !slices.Contains(s, k.n) {
				s = append(s, k.n)
			}
		}
		slices.Sort(s)
		return s
	}
	f1 := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	f0 := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	pct := func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }
	metStr := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	var rows []row
	var summary []string

	// 1. Transfer. Each get is compared with the bare libp2p stream of the
	// transport it rode, to /dev/null (the target), and with the
	// same stream written and fsynced; the default configuration (no
	// --listen, mDNS) with bare TCP.
	for _, sz := range sizes("transfer") {
		tcp := get("transfer", "tcp", "MBps", sz, 0)
		thr := func(name string, s *stats) row {
			return row{figure: fmt.Sprintf("transfer %s: %s (MB/s)", humanSize(sz), name), median: f0(s.median()),
				spread: f0(s.p5()) + " / " + f0(s.max()), runs: fmt.Sprint(len(s.vals))}
		}
		if tcp != nil {
			r := thr("plain TCP copy, fsync", tcp)
			r.baseline = "(baseline)"
			rows = append(rows, r)
		}
		for _, b := range []struct{ cas, name string }{
			{"libp2p", "bare libp2p stream (TCP+TLS+yamux), fsync"},
			{"bare-tcp", "bare libp2p stream (TCP+TLS+yamux), to /dev/null"},
			{"libp2p-quic", "bare libp2p stream (QUIC), fsync"},
			{"bare-quic", "bare libp2p stream (QUIC), to /dev/null"},
		} {
			s := get("transfer", b.cas, "MBps", sz, 0)
			if s == nil {
				continue
			}
			r := thr(b.name, s)
			r.baseline = "TCP copy"
			if tcp != nil {
				r.ratio = pct(s.median() / tcp.median())
			}
			rows = append(rows, r)
		}
		for _, g := range []struct{ prefix, transport, label, null, fsync string }{
			{"", "TCP", "", "bare-tcp", "libp2p"},
			{"quic-", "QUIC", "QUIC, ", "bare-quic", "libp2p-quic"},
			{"default-", "TCP", "default flags (mDNS, TCP and QUIC), ", "bare-tcp", "libp2p"},
		} {
			for _, n := range []string{"1", "2", "3", "4"} {
				c := g.prefix + "get" + n
				s := get("transfer", c, "MBps", sz, 0)
				if s == nil {
					continue
				}
				r := thr(fmt.Sprintf("`get`, %s%s provider(s), encrypted+verified", g.label, n), s)
				null, fsync := get("transfer", g.null, "MBps", sz, 0), get("transfer", g.fsync, "MBps", sz, 0)
				switch {
				case null != nil:
					ratio := s.median() / null.median()
					r.baseline = "bare " + g.transport + ", /dev/null"
					r.ratio = pct(ratio)
					if fsync != nil {
						r.ratio += fmt.Sprintf(" (%s of fsync)", pct(s.median()/fsync.median()))
					}
					r.target = ">= 45% of bare " + g.transport
					r.status = metStr(ratio >= 0.45)
				case fsync != nil && g.prefix == "":
					// Results from before the /dev/null baseline.
					ratio := s.median() / fsync.median()
					r.baseline, r.ratio = "bare libp2p", pct(ratio)
					r.target = ">= 50% of bare libp2p and >= 350 MB/s"
					r.status = metStr(ratio >= 0.5 && s.median() >= 350)
				}
				if r.status != "" {
					summary = append(summary, fmt.Sprintf("transfer %s %s%s providers: %s", humanSize(sz), g.label, n, strings.Trim(r.status, "*")))
				}
				rows = append(rows, r)
			}
		}
		for _, c := range []struct{ prefix, label string }{{"", "TCP"}, {"quic-", "QUIC"}, {"default-", "default flags"}} {
			f, sv := get("cpu", c.prefix+"fetcher", "s_per_GiB", sz, 0), get("cpu", c.prefix+"server", "s_per_GiB", sz, 0)
			if f == nil || sv == nil {
				continue
			}
			rows = append(rows, row{figure: fmt.Sprintf("CPU of a %s get, 1 provider, %s: fetching + serving node (s per GiB)", humanSize(sz), c.label),
				median: f1(f.median() + sv.median()), spread: fmt.Sprintf("%s + %s", f1(f.median()), f1(sv.median())), runs: fmt.Sprint(len(f.vals))})
		}
	}

	// 2. Publish.
	for _, sz := range sizes("publish") {
		ossl := get("publish", "openssl", "MBps", sz, 0)
		for _, c := range []struct{ cas, name string }{{"openssl", "`openssl dgst -sha256`"}, {"build", "manifest.Build in process"}, {"publish", "`publish` command (node)"}} {
			s := get("publish", c.cas, "MBps", sz, 0)
			if s == nil {
				continue
			}
			r := row{figure: fmt.Sprintf("publish %s: %s (MB/s)", humanSize(sz), c.name), median: f0(s.median()),
				spread: f0(s.p5()) + " / " + f0(s.max()), runs: fmt.Sprint(len(s.vals))}
			if c.cas == "openssl" {
				r.baseline = "(baseline)"
			} else if ossl != nil {
				ratio := s.median() / ossl.median()
				r.baseline, r.ratio, r.target = "openssl", pct(ratio), ">= 60% of openssl"
				r.status = metStr(ratio >= 0.6)
				summary = append(summary, fmt.Sprintf("publish %s (%s): %s", humanSize(sz), c.cas, strings.Trim(r.status, "*")))
			}
			rows = append(rows, r)
		}
	}

	// 5. Memory (from the transfer runs).
	for _, sz := range sizes("memory") {
		for _, c := range []struct{ cas, idle, name string }{
			{"fetcher", "idle-fetcher", "fetching node, 1 provider"},
			{"server", "idle-server", "serving node, 1 provider"},
			{"fetcher-3p", "idle-fetcher", "fetching node, 3 providers"},
			{"server-3p", "idle-server", "serving nodes (max), 3 providers"},
			{"quic-fetcher", "idle-fetcher", "fetching node, 1 provider, QUIC"},
			{"quic-server", "idle-server", "serving node, 1 provider, QUIC"},
			{"quic-fetcher-3p", "idle-fetcher", "fetching node, 3 providers, QUIC"},
			{"quic-server-3p", "idle-server", "serving nodes (max), 3 providers, QUIC"},
			{"default-fetcher", "idle-fetcher", "fetching node, 1 provider, default flags"},
			{"default-server", "idle-server", "serving node, 1 provider, default flags"},
		} {
			s := get("memory", c.cas, "MiB", sz, 0)
			if s == nil {
				continue
			}
			r := row{figure: fmt.Sprintf("peak RSS during a %s get: %s (MiB)", humanSize(sz), c.name), median: f0(s.median()),
				spread: "max " + f0(s.max()), runs: fmt.Sprint(len(s.vals)), target: "< 150 MiB"}
			if idle := get("memory", c.idle, "MiB", sz, 0); idle != nil {
				r.baseline = fmt.Sprintf("idle RSS %s", f0(idle.median()))
				r.ratio = fmt.Sprintf("%.1fx", s.max()/idle.median())
			}
			r.status = metStr(s.max() < 150)
			summary = append(summary, fmt.Sprintf("peak RSS %s %s: %s", humanSize(sz), c.cas, strings.Trim(r.status, "*")))
			rows = append(rows, r)
		}
	}

	// 3. DHT.
	var base50 map[string]float64
	for _, n := range ns("dht") {
		cur := map[string]float64{}
		for _, c := range []struct{ cas, metric, name string }{
			{"provide", "ms", "time to Provide (ms)"},
			{"find", "ms", "time to first provider (ms)"},
			{"contacted", "peers", "distinct peers queried until found"},
		} {
			s := get("dht", c.cas, c.metric, 0, n)
			if s == nil {
				continue
			}
			cur[c.cas] = s.median()
			r := row{figure: fmt.Sprintf("DHT %d hosts: %s", n, c.name), median: f1(s.median()),
				spread: "p95 " + f1(s.p95()), runs: fmt.Sprint(len(s.vals))}
			if base50 != nil && base50[c.cas] > 0 {
				r.baseline = "same, 50 hosts"
				r.ratio = fmt.Sprintf("%.2fx", s.median()/base50[c.cas])
			}
			if c.cas == "find" && n >= 200 {
				r.target = "median < 100 ms"
				r.status = metStr(s.median() < 100)
				summary = append(summary, fmt.Sprintf("DHT find %d hosts: %s", n, strings.Trim(r.status, "*")))
			}
			rows = append(rows, r)
		}
		if s := get("dht", "failed", "lookups", 0, n); s != nil {
			rows = append(rows, row{figure: fmt.Sprintf("DHT %d hosts: lookups that did not find the provider", n),
				median: f0(s.median()), runs: fmt.Sprint(len(s.vals))})
		}
		if s := get("dht", "setup", "rss_MiB", 0, n); s != nil {
			rows = append(rows, row{figure: fmt.Sprintf("DHT %d hosts: RSS of all hosts in one process (MiB)", n),
				median: f0(s.median()), spread: fmt.Sprintf("%.1f per host", s.median()/float64(n)), runs: fmt.Sprint(len(s.vals))})
		}
		if s := get("dht", "setup", "routing_table", 0, n); s != nil {
			rows = append(rows, row{figure: fmt.Sprintf("DHT %d hosts: routing table size after warm-up", n),
				median: f0(s.median()), runs: fmt.Sprint(len(s.vals))})
		}
		if n == 50 {
			base50 = cur
		}
	}

	// 4. Discovery.
	for _, n := range ns("discovery") {
		first, all, ready := get("discovery", "first", "ms", 0, n), get("discovery", "all", "ms", 0, n), get("discovery", "ready", "ms", 0, n)
		if ready != nil {
			rows = append(rows, row{figure: fmt.Sprintf("discovery, %d nodes: process start to first command answered (ms)", n),
				median: f0(ready.median()), spread: "p95 " + f0(ready.p95()), runs: fmt.Sprint(len(ready.vals)), baseline: "(baseline)"})
		}
		if first != nil {
			r := row{figure: fmt.Sprintf("discovery, %d nodes: start to first peer by mDNS (ms)", n),
				median: f0(first.median()), spread: "p95 " + f0(first.p95()), runs: fmt.Sprint(len(first.vals))}
			if ready != nil {
				r.baseline, r.ratio = "start to ready", fmt.Sprintf("%.1fx", first.median()/ready.median())
			}
			rows = append(rows, r)
		}
		if all != nil {
			r := row{figure: fmt.Sprintf("discovery, %d nodes: first start until all see each other (ms)", n),
				median: f0(all.median()), spread: "p95 " + f0(all.p95()), runs: fmt.Sprint(len(all.vals))}
			if first != nil {
				r.baseline, r.ratio = "first peer", fmt.Sprintf("%.1fx", all.median()/first.median())
			}
			rows = append(rows, r)
		}
	}

	// 6. Small files.
	for _, sz := range sizes("small") {
		pub, g := get("small", "publish", "files_per_s", sz, 0), get("small", "get", "files_per_s", sz, 0)
		var count string
		for _, k := range order {
			if k.bench == "small" {
				count = ""
			}
		}
		_ = count
		if pub != nil {
			rows = append(rows, row{figure: fmt.Sprintf("small files (%s each): publish, one command (files/s)", humanSize(sz)),
				median: f0(pub.median()), spread: f0(pub.p5()) + " / " + f0(pub.max()), runs: fmt.Sprint(len(pub.vals)), baseline: "(baseline)"})
		}
		if g != nil {
			r := row{figure: fmt.Sprintf("small files (%s each): get, one command per file (files/s)", humanSize(sz)),
				median: f0(g.median()), spread: f0(g.p5()) + " / " + f0(g.max()), runs: fmt.Sprint(len(g.vals))}
			if pub != nil {
				r.baseline, r.ratio = "publish", pct(g.median()/pub.median())
			}
			rows = append(rows, r)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# p2pshare benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `%s` (%s mode) on %s", *command, *mode, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if *commit != "" {
		fmt.Fprintf(&b, ", commit %s", *commit)
	}
	if *elapsed > 0 {
		fmt.Fprintf(&b, ", %s of wall time", elapsed.Round(time.Second))
	}
	fmt.Fprintf(&b, ".\n\n")
	fmt.Fprintf(&b, "Machine: %d cores (`nproc`), CPU `%s`, %s RAM, Linux %s, %s. Shared and noisy: every figure is the median of the runs shown, and is compared with a baseline measured in the same run, interleaved with it.\n\n",
		runtime.NumCPU(), cpuModel(), memTotal(), strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")), runtime.Version())
	fmt.Fprintf(&b, "All traffic is loopback inside a private network namespace (`unshare -rn`); nodes listen on 127.0.0.1 only.\n\n")
	fmt.Fprintf(&b, "| figure | median | spread | runs | baseline | ratio | target | status |\n|---|---:|---|---:|---|---:|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.figure, r.median, r.spread, r.runs, r.baseline, r.ratio, r.target, r.status)
	}
	fmt.Fprintf(&b, "\nSpread: `p5 / max` over the runs for throughputs, `p95` (nearest rank) for times, `max` for memory (the target applies to the max).\n\n")
	if len(summary) > 0 {
		fmt.Fprintf(&b, "Targets: %s.\n\n", strings.Join(summary, "; "))
	}
	b.WriteString(methodText)
	if *notesFile != "" {
		if nb, err := os.ReadFile(*notesFile); err == nil {
			b.WriteString("\n")
			b.Write(nb)
		}
	}
	if _, err := io.WriteString(os.Stdout, b.String()); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

const methodText = `## How each figure is measured

- **Transfer**: ` + "`bin/p2pshare`" + ` processes, each with its own ` + "`--data`" + `, in three configurations:
  TCP only (` + "`--listen /ip4/127.0.0.1/tcp/0 --no-mdns`" + `; a fetcher and 3 providers), QUIC only
  (` + "`--listen /ip4/127.0.0.1/udp/0/quic-v1 --no-mdns`" + `; a fetcher and 3 providers; the fetcher connects to each
  provider's address) and default flags (no ` + "`--listen`" + `, mDNS on: what a user gets; a fetcher and one provider
  that find each other by mDNS), driven through piped stdin by ` + "`p2pbench transfer`" + `
  (each command is followed by ` + "`echo @@N`" + `; the time runs from writing ` + "`get big.bin -o OUT [--from P1]`" + `
  to reading the marker after the ` + "`saved ... verified`" + ` line). The file is pseudo-random (AES-CTR),
  hard-linked into each provider's share folder and read once beforehand, so every sender reads from the page
  cache; every receiver writes to disk. Baselines, interleaved with the gets in every run: a plain TCP copy over
  loopback (read + write through a 1 MiB buffer, receiver writes the file and fsyncs) and a bare libp2p stream
  between two in-process hosts configured like internal/p2p's (TCP, TLS then Noise, yamux, the same
  resource-manager limits; and the same over QUIC), whose receiver drops what it reads (/dev/null: the target's
  baseline, for each get that of the transport it rode, TCP for the default flags) or writes and fsyncs it.
  No sendfile/splice in the baselines. CPU: user + system time of the fetching and the serving node during
  each 1-provider get (/proc/PID/stat), per GiB moved.
- **Publish**: the ` + "`publish`" + ` command of one node on the same (cached) file, timed from the command to its
  marker (the node hashes every time; later runs answer "already published"), and ` + "`manifest.Build`" + ` in the
  p2pbench process, against ` + "`openssl dgst -sha256 FILE`" + ` run in the same loop iteration.
- **Memory**: VmHWM from /proc/PID/status of the fetching and the serving node(s), reset before each get
  by writing 5 to /proc/PID/clear_refs, so it is the peak during that get. The baseline is the node's
  idle RSS before the first get.
- **DHT**: ` + "`p2pbench dht`" + `: N in-process hosts (TCP on 127.0.0.1, TLS, yamux, resource manager scaled to
  64 MiB / 256 fds each, connection manager 32/64), kad-dht ModeServer with prefix /p2pshare and no auto refresh;
  each host dials 8 random others, then every routing table is force-refreshed once. Each lookup round: a
  random host provides a fresh CID (time to Provide), then a host that holds no record and is not connected to
  the provider (its connection is closed if needed) runs FindProvidersAsync; the time to the first provider and
  the distinct peers sent a query (routing.RegisterForQueryEvents, SendingQuery events) until then.
- **Discovery**: N node processes started together with mDNS on in the namespace's loopback; from each
  process's start to ` + "`ok: peers 1`" + `, and from the first start until the last ` + "`ok: peers N-1`" + `. Nodes get a
  pre-made BBS key, so start-up excludes making the modulus.
- **Small files**: random files published with one ` + "`publish`" + ` command; fetched with one ` + "`get NAME`" + ` per
  file, all commands written at once, timed to the marker after the last.
`

func humanSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func cpuModel() string {
	for _, l := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown"
}

func memTotal() string {
	for _, l := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

// reportArgs are the flags of every section report (`p2pbench X report`).
type reportArgs struct {
	in, out, command, commit string
	elapsed                  time.Duration
}

// parseReportArgs parses a section report's flags and reads its input.
func parseReportArgs(name, defIn, inHelp, defCmd string, args []string) (reportArgs, []byte, error) {
	var a reportArgs
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&a.in, "in", defIn, inHelp)
	fs.StringVar(&a.out, "out", "", "markdown file to write (it is printed too)")
	fs.StringVar(&a.command, "cmd", defCmd, "the command that produced the results")
	fs.StringVar(&a.commit, "commit", "", "git commit measured")
	fs.DurationVar(&a.elapsed, "elapsed", 0, "wall time of the whole run")
	fs.Parse(args)
	b, err := os.ReadFile(a.in)
	return a, b, err
}
