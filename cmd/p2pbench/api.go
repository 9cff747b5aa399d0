//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/client"
)

// cmdAPI measures the local API and what the web UI costs a node (issue 9,
// "Measured"), on a real daemon (`p2pshare daemon`) with a directory of
// -files remote entries published by -publishers nodes:
//
//   - the latency of GET /api/v1/available against GET /api/v1/id;
//   - events per second delivered to an SSE client (GET /api/v1/events)
//     during a get started through the API, and the get's rate with that
//     client connected against no client, interleaved, -runs each;
//   - the daemon's RSS with no entries, with the directory full, and with
//     the web UI's load on it (its event stream and the list calls it
//     makes on opening).
//
// "p2pbench api report" turns the results into BENCHMARKS.md's section.
func cmdAPI(args []string) error {
	if len(args) > 0 && args[0] == "report" {
		return apiReport(args[1:])
	}
	fs := flag.NewFlagSet("api", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	sizeS := fs.String("size", "1GiB", "size of the file fetched during the event-stream runs")
	runs := fs.Int("runs", 3, "gets with an SSE client and gets without, interleaved")
	publishers := fs.Int("publishers", 4, "nodes publishing the small files")
	files := fs.Int("files", 10000, "small files published in all (remote entries of the daemon)")
	requests := fs.Int("requests", 200, "GET /api/v1/available (and /api/v1/id) requests timed")
	work := fs.String("work", "", "work folder (default: a new one under /tmp)")
	fs.Parse(args)
	if *publishers < 1 || *files < *publishers || *runs < 1 || *requests < 1 {
		return errors.New("-publishers, -runs and -requests must be at least 1, and -files at least -publishers")
	}
	size, err := parseSize(*sizeS)
	if err != nil {
		return err
	}
	defer killAll()
	cleanup, err := useWorkFolder(work, "p2pbench-api-")
	if err != nil {
		return err
	}
	defer cleanup()
	emitLoad()
	key, err := makeBBSKey(*bin, filepath.Dir(*work))
	if err != nil {
		return err
	}

	// The provider of the big file and the publishers of the small ones
	// run the prompt (no API: nothing here calls theirs).
	provDir := filepath.Join(*work, "provider")
	if err := os.MkdirAll(filepath.Join(provDir, "files"), 0o700); err != nil {
		return err
	}
	logf("api: generating a %s file", humanSize(size))
	if err := genFile(filepath.Join(provDir, "files", "big.bin"), size, 7, false); err != nil {
		return err
	}
	prov, err := startNode(*bin, "provider", provDir, key, "--no-mdns", "--api", "off")
	if err != nil {
		return err
	}
	defer prov.quit()
	if _, _, err := prov.run(10*time.Minute, "publish big.bin"); err != nil {
		return err
	}
	pubs := []*proc{prov}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, *publishers)
	logf("api: %d publishers publishing %d small files", *publishers, *files)
	for i := range *publishers {
		n := *files / *publishers
		if i < *files%*publishers {
			n++
		}
		wg.Go(func() {
			p, err := startSmallPublisher(*bin, filepath.Join(*work, fmt.Sprintf("pub%d", i+1)), key, i+1, n)
			if p != nil {
				mu.Lock()
				pubs = append(pubs, p)
				mu.Unlock()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	defer func() {
		for _, p := range pubs[1:] {
			p.quit()
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	d, c, err := startDaemon(*bin, filepath.Join(*work, "daemon"), key)
	if err != nil {
		return err
	}
	defer d.stop()
	ctx := context.Background()
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	rss := func(cas, field, note string, n int) {
		if v, err := d.status(field); err == nil {
			emit(Result{Bench: "api", Case: cas, Metric: "rssMiB", Value: mib(v), N: n, Note: note})
		}
	}
	// Settle: let start-up's allocations be collected before reading RSS.
	time.Sleep(2 * time.Second)
	rss("rss-empty", "VmRSS", "", 0)

	// Fill the daemon's directory: it pulls each peer's catalog on connect.
	fillStart := time.Now()
	for _, p := range pubs {
		_, addr, err := p.id()
		if err != nil {
			return err
		}
		if err := c.Call(ctx, "POST", "/api/v1/connect", nil, api.ConnectRequest{Addr: addr}, nil); err != nil {
			return fmt.Errorf("connect the daemon to %s: %w", p.name, err)
		}
	}
	want := *files + 1
	var entries int
	for deadline := time.Now().Add(3 * time.Minute); ; {
		var list []json.RawMessage
		if err := c.Call(ctx, "GET", "/api/v1/available", nil, nil, &list); err != nil {
			return err
		}
		if entries = len(list); entries >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon lists %d remote entries after 3 minutes, want %d", entries, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	emit(Result{Bench: "api", Case: "fill", Metric: "ms", Value: ms(time.Since(fillStart)), N: entries, Size: int64(*publishers)})
	time.Sleep(2 * time.Second)
	rss("rss-idle", "VmRSS", "", entries)

	// Latency, interleaved with its baseline. Answers are read whole (not
	// decoded): what a client waits for.
	sizes := map[string]int64{}
	for _, path := range []string{"/api/v1/id", "/api/v1/available"} {
		b, err := c.Raw(ctx, path)
		if err != nil {
			return err
		}
		sizes[path] = int64(len(b))
	}
	logf("api: timing %d requests of /api/v1/available (%d entries, %d bytes) and of /api/v1/id", *requests, entries, sizes["/api/v1/available"])
	for i := range *requests {
		for _, path := range []string{"/api/v1/id", "/api/v1/available"} {
			start := time.Now()
			if err := c.Call(ctx, "GET", path, nil, nil, nil); err != nil {
				return fmt.Errorf("GET %s: %w", path, err)
			}
			took := time.Since(start)
			cas := strings.TrimPrefix(path, "/api/v1/")
			emit(Result{Bench: "api", Case: cas, Metric: "ms", Value: ms(took), Run: i, N: entries, Size: sizes[path]})
		}
	}

	// The web UI opened: its event stream and the lists it reads first.
	d.resetHWM()
	ui, err := openSSE(ctx, c)
	if err != nil {
		return err
	}
	for _, path := range []string{"id", "files", "published", "available", "gets", "peers"} {
		if _, err := c.Raw(ctx, "/api/v1/"+path); err != nil {
			ui.close()
			return err
		}
	}
	time.Sleep(2 * time.Second)
	rss("rss-ui", "VmRSS", "", entries)
	rss("rss-ui-peak", "VmHWM", "", entries)
	ui.close()

	// Gets through the API, with an SSE client and without, interleaved;
	// one untimed get first so that every timed one starts alike.
	outDir := filepath.Join(*work, "out")
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return err
	}
	if _, err := apiGet(ctx, c, filepath.Join(outDir, "warm.bin"), size); err != nil {
		return fmt.Errorf("warm-up get: %w", err)
	}
	for run := range *runs {
		order := []bool{true, false}
		if run%2 == 1 {
			order = []bool{false, true}
		}
		for _, withSSE := range order {
			cas := "get-none"
			var s *sseClient
			if withSSE {
				cas = "get-sse"
				if s, err = openSSE(ctx, c); err != nil {
					return err
				}
			}
			d.resetHWM()
			cpu0, t0 := procCPU(d.cmd.Process.Pid), time.Now()
			j, err := apiGet(ctx, c, filepath.Join(outDir, fmt.Sprintf("%s-%d.bin", cas, run)), size)
			cpu, wall := procCPU(d.cmd.Process.Pid)-cpu0, time.Since(t0)
			if err != nil {
				if s != nil {
					s.close()
				}
				return err
			}
			dur := time.Duration(j.DurationMS * float64(time.Millisecond))
			if dur <= 0 {
				return fmt.Errorf("get job %s: no duration in its answer", j.ID)
			}
			emit(Result{Bench: "api", Case: cas, Metric: "MBps", Value: mbps(size, dur), Run: run, Size: size})
			emit(Result{Bench: "api", Case: cas, Metric: "daemonCores", Value: cpu.Seconds() / wall.Seconds(), Run: run, Size: size})
			if v, err := d.status("VmHWM"); err == nil {
				emit(Result{Bench: "api", Case: cas, Metric: "rssMiB", Value: mib(v), Run: run, Size: size})
			}
			if s != nil {
				n, all, err := s.waitDone(j.ID, 10*time.Second)
				s.close()
				if err != nil {
					return err
				}
				emit(Result{Bench: "api", Case: "events", Metric: "per_s", Value: float64(n) / dur.Seconds(), Run: run, Size: size, N: n,
					Note: fmt.Sprintf("%d transfer events of the job, %d events in all", n, all)})
			}
		}
	}
	rss("rss-end", "VmRSS", "", entries)
	emitLoad()
	return nil
}

// emitLoad records the machine's 1-minute load average: the cores are
// shared, and the report says how busy they were.
func emitLoad() {
	var l float64
	if _, err := fmt.Sscan(readFile("/proc/loadavg"), &l); err == nil {
		emit(Result{Bench: "api", Case: "machine", Metric: "load1", Value: l})
	}
}

// startSmallPublisher starts a node that publishes n small random files
// (distinct contents, so distinct entries), in commands of 500 names.
func startSmallPublisher(bin, dir, key string, idx, n int) (*proc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	var names []string
	for i := range n {
		name := fmt.Sprintf("p%d-f%05d.txt", idx, i)
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, "files", name), buf, 0o600); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	p, err := startNode(bin, fmt.Sprintf("publisher%d", idx), dir, key, "--no-mdns", "--api", "off")
	if err != nil {
		return nil, err
	}
	var cmds []string
	for chunk := range slices.Chunk(names, 500) {
		cmds = append(cmds, "publish "+strings.Join(chunk, " "))
	}
	lines, _, err := p.run(10*time.Minute, cmds...)
	if err != nil {
		return p, err
	}
	if got := countPrefix(lines, "published "); got != n {
		return p, fmt.Errorf("%s published %d of %d files: %v", p.name, got, n, texts(lines[:min(5, len(lines))]))
	}
	return p, nil
}

// daemon is a `p2pshare daemon` process and its API client.
type daemon struct{ *proc }

// startDaemon starts `p2pshare daemon` on dir with its API on a free
// loopback port, waits for its start-up line and opens its API.
func startDaemon(bin, dir, key string) (*daemon, *apiClient, error) {
	p, err := startNode(bin, "daemon", dir, key, "--no-mdns", "--api", "127.0.0.1:0", "daemon")
	if err != nil {
		return nil, nil, err
	}
	d := &daemon{p}
	deadline := time.After(2 * time.Minute)
	for started := false; !started; {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return nil, nil, fmt.Errorf("the daemon exited (see %s/stderr.txt, node.log)", dir)
			}
			started = strings.HasPrefix(l.text, "p2pshare daemon: peer")
		case <-deadline:
			d.stop()
			return nil, nil, fmt.Errorf("the daemon did not start in 2 minutes (see %s/stderr.txt)", dir)
		}
	}
	go func() { // keep its stdout drained
		for range p.lines {
		}
	}()
	addr, err := api.ReadAddr(dir)
	if err != nil {
		d.stop()
		return nil, nil, err
	}
	token, err := api.ReadToken(dir)
	if err != nil {
		d.stop()
		return nil, nil, err
	}
	return d, &apiClient{client.New(dir, addr, token)}, nil
}

// stop sends SIGTERM, which stops a daemon cleanly, and kills it if it
// has not exited after a deadline.
func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.kill()
	}
}

type apiClient struct{ *client.Client }

// Raw makes a GET and reads the whole answer without decoding it.
func (c *apiClient) Raw(ctx context.Context, path string) ([]byte, error) {
	var raw json.RawMessage
	if err := c.Call(ctx, "GET", path, nil, nil, &raw); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return raw, nil
}

// apiGet starts a get of big.bin into out through the API, polls the job
// until it ends (the same way with or without an event stream, every
// 100 ms) and checks the file.
func apiGet(ctx context.Context, c *apiClient, out string, size int64) (api.Job, error) {
	var j api.Job
	if err := c.Call(ctx, "POST", "/api/v1/get", nil, api.GetRequest{Target: "big.bin", Output: out}, &j); err != nil {
		return j, fmt.Errorf("POST /api/v1/get: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Minute); !j.Finished(); {
		if time.Now().After(deadline) {
			return j, fmt.Errorf("get job %s: still %s after 10 minutes", j.ID, j.State)
		}
		time.Sleep(100 * time.Millisecond)
		if err := c.Call(ctx, "GET", "/api/v1/gets/"+url.PathEscape(j.ID), nil, nil, &j); err != nil {
			return j, err
		}
	}
	if j.State != api.JobDone {
		return j, fmt.Errorf("get job %s ended %s: %s", j.ID, j.State, j.Error)
	}
	if err := checkSize(out, size); err != nil {
		return j, err
	}
	return j, os.Remove(out)
}

// sseClient reads an event stream as the web UI does: every event, its
// JSON decoded.
type sseClient struct {
	es     *client.Events
	mu     sync.Mutex
	all    int            // events read
	byJob  map[string]int // transfer events per job
	doneOf map[string]bool
	wake   chan struct{}
	ended  chan struct{}
	err    error
}

func openSSE(ctx context.Context, c *apiClient) (*sseClient, error) {
	es, err := c.Events(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the event stream: %w", err)
	}
	s := &sseClient{es: es, byJob: map[string]int{}, doneOf: map[string]bool{}, wake: make(chan struct{}, 1), ended: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *sseClient) read() {
	defer close(s.ended)
	for {
		ev, err := s.es.Next()
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		var data any
		var j api.Job
		if ev.Name == api.EventTransfer {
			err = json.Unmarshal(ev.Data, &j)
		} else {
			err = json.Unmarshal(ev.Data, &data)
		}
		s.mu.Lock()
		s.all++
		if err == nil && ev.Name == api.EventTransfer {
			s.byJob[j.ID]++
			if j.Finished() {
				s.doneOf[j.ID] = true
			}
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// waitDone waits until the stream has delivered job id's last event and
// returns the job's transfer events and all events read.
func (s *sseClient) waitDone(id string, timeout time.Duration) (int, int, error) {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		n, all, done, err := s.byJob[id], s.all, s.doneOf[id], s.err
		s.mu.Unlock()
		if done {
			return n, all, nil
		}
		if err != nil {
			return n, all, fmt.Errorf("event stream ended before job %s's last event: %w", id, err)
		}
		select {
		case <-s.wake:
		case <-s.ended:
		case <-deadline:
			return n, all, fmt.Errorf("event stream: no final event of job %s after %s (%d of its events read)", id, timeout, n)
		}
	}
}

func (s *sseClient) close() {
	s.es.Close()
	<-s.ended
}

// apiGetMinRatio: the get with an SSE client open must keep this share of
// the rate with none (issue 9: no more than 5% slower).
const apiGetMinRatio = 0.95

func apiReport(args []string) error {
	a, b, err := parseReportArgs("api report", "api.jsonl", "JSON lines from `p2pbench api`", "bash scripts/bench.sh --api", args)
	if err != nil {
		return err
	}
	type gkey struct{ cas, metric string }
	vals := map[gkey][]float64{}
	byRun := map[gkey]map[int]float64{}
	var size, bodySize int64
	var entries, publishers int
	for _, l := range strings.Split(string(b), "\n") {
		var r Result
		if json.Unmarshal([]byte(l), &r) != nil || r.Bench != "api" {
			continue
		}
		k := gkey{r.Case, r.Metric}
		vals[k] = append(vals[k], r.Value)
		if byRun[k] == nil {
			byRun[k] = map[int]float64{}
		}
		byRun[k][r.Run] = r.Value
		switch {
		case r.Case == "available":
			entries, bodySize = r.N, r.Size
		case r.Case == "fill":
			publishers = int(r.Size)
		case r.Metric == "MBps":
			size = r.Size
		}
	}
	need := []gkey{{"id", "ms"}, {"available", "ms"}, {"get-none", "MBps"}, {"get-sse", "MBps"}, {"events", "per_s"}}
	for _, k := range need {
		if len(vals[k]) == 0 {
			return fmt.Errorf("%s: no %s %s results", a.in, k.cas, k.metric)
		}
	}
	// Each run's get with the client over the one without in that run.
	var ratios []float64
	for run, v := range byRun[gkey{"get-sse", "MBps"}] {
		if base := byRun[gkey{"get-none", "MBps"}][run]; base > 0 {
			ratios = append(ratios, v/base)
		}
	}
	ratio := median(ratios)
	f0 := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	f1 := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	n := func(v []float64) string { return fmt.Sprint(len(v)) }
	var w strings.Builder
	fmt.Fprintf(&w, "## Local API and web UI\n\n")
	fmt.Fprintf(&w, "Measured %s on %s (%d cores, %s RAM), commit %s, with `%s`", time.Now().Format("2006-01-02"), cpuModel(), runtime.NumCPU(), memTotal(), a.commit, a.command)
	if a.elapsed > 0 {
		fmt.Fprintf(&w, " in %s", a.elapsed.Round(time.Second))
	}
	fmt.Fprintf(&w, ". The daemon lists %d remote entries; the get is of %s.", entries, humanSize(size))
	if l := vals[gkey{"machine", "load1"}]; len(l) > 0 {
		fmt.Fprintf(&w, " Load average (1 min) of the machine at the start and the end: %s (other work shares its cores).", strings.ReplaceAll(strings.Trim(fmt.Sprintf("%.1f", l), "[]"), " ", " and "))
	}
	fmt.Fprintf(&w, "\n\n| Figure | Median | Spread | Runs | Baseline | Ratio | Target | Result |\n|---|---|---|---|---|---|---|---|\n")
	row := func(r ...string) { fmt.Fprintf(&w, "| %s |\n", strings.Join(r, " | ")) }
	id, av := vals[gkey{"id", "ms"}], vals[gkey{"available", "ms"}]
	row("`GET /api/v1/id` latency (ms)", f1(median(id)), "p95 "+f1(percentile(id, 95)), n(id), "(baseline)", "", "", "")
	row(fmt.Sprintf("`GET /api/v1/available` latency, %d entries, %s answer (ms)", entries, humanBytes(bodySize)), f1(median(av)), "p95 "+f1(percentile(av, 95)), n(av),
		"`id`", fmt.Sprintf("%.0fx", median(av)/median(id)), "", "")
	none, sse := vals[gkey{"get-none", "MBps"}], vals[gkey{"get-sse", "MBps"}]
	spread := func(v []float64) string { return f0(percentile(v, 5)) + " / " + f0(slices.Max(v)) }
	row(fmt.Sprintf("get %s through the API, no event-stream client (MB/s)", humanSize(size)), f0(median(none)), spread(none), n(none), "(baseline)", "", "", "")
	status := "met"
	if !(ratio >= apiGetMinRatio) {
		status = "**missed**"
	}
	row(fmt.Sprintf("get %s through the API, an SSE client connected (MB/s)", humanSize(size)), f0(median(sse)), spread(sse), n(sse),
		"no client, same run", fmt.Sprintf("%.0f%%", 100*ratio), fmt.Sprintf("≥ %.0f%%", 100*apiGetMinRatio), status)
	ev := vals[gkey{"events", "per_s"}]
	row("events delivered to the SSE client during the get (per s)", f1(median(ev)), f1(percentile(ev, 5))+" / "+f1(slices.Max(ev)), n(ev), "", "", "", "")
	if c1, c0 := vals[gkey{"get-sse", "daemonCores"}], vals[gkey{"get-none", "daemonCores"}]; len(c1) > 0 && len(c0) > 0 {
		row("daemon CPU during the get, no client / SSE client (cores)", fmt.Sprintf("%.2f / %.2f", median(c0), median(c1)), "", n(c1), "", "", "", "")
	}
	mem := func(cas, label, base string) {
		if v := vals[gkey{cas, "rssMiB"}]; len(v) > 0 {
			ratio := ""
			if b := vals[gkey{base, "rssMiB"}]; base != "" && len(b) > 0 {
				ratio = fmt.Sprintf("%.2fx", median(v)/median(b))
			}
			spread := ""
			if len(v) > 1 {
				spread = "max " + f0(slices.Max(v))
			}
			bl := map[string]string{"": "", "rss-empty": "idle, no entries", "rss-idle": "idle, same entries", "get-none": "no client"}[base]
			row(label, f0(median(v)), spread, n(v), bl, ratio, "", "")
		}
	}
	mem("rss-empty", "daemon RSS, idle, no remote entries (MiB)", "")
	mem("rss-idle", fmt.Sprintf("daemon RSS, idle, %d remote entries (MiB)", entries), "rss-empty")
	mem("rss-ui", "daemon RSS, web UI's load: SSE client + the six lists it reads on opening (MiB)", "rss-idle")
	mem("rss-ui-peak", "daemon peak RSS while the UI's lists are answered (MiB)", "rss-idle")
	mem("get-none", "daemon peak RSS during the get, no client (MiB)", "")
	mem("get-sse", "daemon peak RSS during the get, SSE client (MiB)", "get-none")
	fmt.Fprintf(&w, "\nSpread: `p95` (nearest rank) for times, `p5 / max` for rates, `max` for memory. Ratio of the gets: the median over runs\n"+
		"of each run's get with the SSE client divided by the same run's get without one.\n\n")
	fmt.Fprintf(&w, apiMethodText, publishers, max(entries-1, 0))
	fmt.Print(w.String())
	if a.out != "" {
		return os.WriteFile(a.out, []byte(w.String()), 0o644)
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

const apiMethodText = `How these are measured (` + "`p2pbench api`" + `, in bench.sh's loopback-only namespace): the node measured is
` + "`bin/p2pshare daemon --no-mdns --api 127.0.0.1:0`" + `, listening on 127.0.0.1; %d prompt nodes publish %d files of
256 random bytes between them, and one more the big pseudo-random file; the daemon connects to them through
` + "`POST /api/v1/connect`" + ` and pulls their catalogs. Requests carry the token (` + "`Authorization: Bearer`" + `, from
` + "`<data>/api.token`" + `) over one kept-alive connection (internal/client), and are timed to the last byte of the
answer, read whole but not decoded; ` + "`id`" + ` and ` + "`available`" + ` alternate. The SSE client is internal/client's event
stream, decoding every event's JSON as the UI does; it connects before the get and its events/s are the job's
transfer events (queued, running, progress, done) over the get's duration. Each get is ` + "`POST /api/v1/get`" + `
into a new file, polled through ` + "`GET /api/v1/gets/ID`" + ` every 100 ms in both cases, and its rate is the size over
the job's ` + "`duration_ms`" + ` (the node's own timing of the transfer); one untimed get comes first, then each run
has a get with the client and one without, the order alternating between runs. RSS is VmRSS of
/proc/PID/status 2 s after the state is reached (start-up, catalogs pulled, UI opened); peaks are VmHWM, reset
(` + "`clear_refs`" + ` 5) before the UI's requests or the get. The daemon's CPU is its user and system time from the POST to the
end of the polling, over that time. The client runs in the p2pbench process, on the same 2 cores, as a browser would.
`
