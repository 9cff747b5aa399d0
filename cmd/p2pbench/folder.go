package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The folder benchmark (issue 10): publishing a folder of many small files
// and a few large ones, and getting the whole collection, each against
// the bare tools on the same tree in the same run:
//
//   - publish DIR against `tar c DIR | sha256sum` (reading and hashing
//     every byte once, nothing recorded);
//   - get COLLECTION against `tar c DIR | TCP over loopback | tar x` into
//     an empty folder, then `sync -f` on it (p2pshare makes its downloads
//     durable before it says they are saved; the baseline does too);
//   - files per second of the get, and the peak RSS of both nodes.
//
// Each run uses a fresh provider (so publishing hashes everything) and a
// fresh fetcher (so nothing is copied from an earlier download).

func cmdFolder(args []string) error {
	if len(args) > 0 && args[0] == "report" {
		return folderReport(args[1:])
	}
	fs := flag.NewFlagSet("folder", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	small := fs.Int("small", 10000, "small files")
	smallSizeS := fs.String("small-size", "4KiB", "size of each small file")
	dirs := fs.Int("dirs", 100, "folders the small files are spread over")
	large := fs.Int("large", 4, "large files")
	largeSizeS := fs.String("large-size", "64MiB", "size of each large file")
	runs := fs.Int("runs", 3, "runs")
	work := fs.String("work", "", "work folder (default: a new one under /tmp)")
	fs.Parse(args)
	defer killAll()
	smallSize, err := parseSize(*smallSizeS)
	if err != nil {
		return err
	}
	largeSize, err := parseSize(*largeSizeS)
	if err != nil {
		return err
	}
	cleanup, err := useWorkFolder(work, "p2pbench-folder-")
	if err != nil {
		return err
	}
	defer cleanup()
	key, err := makeBBSKey(*bin, filepath.Dir(*work))
	if err != nil {
		return err
	}
	share := filepath.Join(*work, "share")
	const name = "tree"
	files, bytes, err := genTree(filepath.Join(share, name), *small, smallSize, *dirs, *large, largeSize)
	if err != nil {
		return err
	}
	logf("folder: %d files, %s, in %s", files, humanSize(bytes), filepath.Join(share, name))
	emit(Result{Bench: "folder", Case: "tree", Metric: "files", Value: float64(files), Size: bytes})
	// Read it all once, so every run reads from the page cache.
	if _, err := shell(fmt.Sprintf("tar c -C %q %q >/dev/null", share, name)); err != nil {
		return err
	}

	for run := range *runs {
		// What a run writes is deleted only when the run ends, and the
		// order of the two gets alternates: creating files costs more on
		// a file system that has just freed many inodes (ext4 without a
		// journal scans past them), so neither get always follows the
		// other's deletions.
		var outs []string
		baselines := func() error {
			// Read and hash every byte.
			d, err := shell(fmt.Sprintf("tar c -C %q %q | sha256sum >/dev/null", share, name))
			if err != nil {
				return err
			}
			emit(Result{Bench: "folder", Case: "tar-sha256", Metric: "MBps", Value: mbps(bytes, d), Run: run, Size: bytes, N: files})
			// The tree over loopback TCP into an empty folder.
			out := filepath.Join(*work, fmt.Sprintf("tar-out-%d", run))
			outs = append(outs, out)
			d, err = tarOverTCP(share, name, out)
			if err != nil {
				return err
			}
			if err := checkTree(filepath.Join(share, name), filepath.Join(out, name)); err != nil {
				return fmt.Errorf("tar baseline: %w", err)
			}
			emit(Result{Bench: "folder", Case: "tar-tcp", Metric: "MBps", Value: mbps(bytes, d), Run: run, Size: bytes, N: files})
			emit(Result{Bench: "folder", Case: "tar-tcp", Metric: "filesPerSec", Value: float64(files) / d.Seconds(), Run: run, N: files})
			return nil
		}
		ours := func() error {
			out, err := folderRun(*bin, key, *work, share, name, run, files, bytes)
			outs = append(outs, out)
			return err
		}
		steps := []func() error{baselines, ours}
		if run%2 == 1 {
			steps[0], steps[1] = ours, baselines
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		for _, o := range outs {
			os.RemoveAll(o)
		}
	}
	return nil
}

// folderRun publishes the tree from a fresh provider and gets it into a
// fresh fetcher; it returns the folder it got the tree into, for the
// caller to delete.
func folderRun(bin, key, work, share, name string, run, files int, bytes int64) (out string, err error) {
	pdir := filepath.Join(work, fmt.Sprintf("provider-%d", run))
	fdir := filepath.Join(work, fmt.Sprintf("fetcher-%d", run))
	prov, err := startNode(bin, "provider", pdir, key, "--no-mdns", "--share", share, "--api", "off")
	if err != nil {
		return "", err
	}
	defer func() { prov.quit(); os.RemoveAll(pdir) }()
	fetch, err := startNode(bin, "fetcher", fdir, key, "--no-mdns", "--api", "off")
	if err != nil {
		return "", err
	}
	defer func() { fetch.quit(); os.RemoveAll(fdir) }()
	_, addr, err := prov.id()
	if err != nil {
		return "", err
	}
	if _, _, err := fetch.run(time.Minute, "connect "+addr); err != nil {
		return "", err
	}
	prov.resetHWM()
	_, d, err := prov.run(30*time.Minute, "publish "+name)
	if err != nil {
		return "", err
	}
	hwm, _ := prov.status("VmHWM")
	emit(Result{Bench: "folder", Case: "publish", Metric: "MBps", Value: mbps(bytes, d), Run: run, Size: bytes, N: files})
	emit(Result{Bench: "folder", Case: "publish", Metric: "filesPerSec", Value: float64(files) / d.Seconds(), Run: run, N: files})
	emit(Result{Bench: "folder", Case: "publish", Metric: "rssMiB", Value: float64(hwm) / 1024, Run: run})
	logf("folder: run %d: publish %d files in %v", run, files, d.Round(time.Millisecond))
	if _, _, err := fetch.run(2*time.Minute, "wait file "+name+" --timeout 90s"); err != nil {
		return "", err
	}

	out = filepath.Join(work, fmt.Sprintf("get-out-%d", run))
	if err := os.MkdirAll(out, 0o700); err != nil {
		return "", err
	}
	prov.resetHWM()
	fetch.resetHWM()
	_, d, err = fetch.run(30*time.Minute, "get "+name+" -o "+out)
	if err != nil {
		return "", err
	}
	phwm, _ := prov.status("VmHWM")
	fhwm, _ := fetch.status("VmHWM")
	got := filepath.Join(out, name)
	if _, err := os.Stat(got); err != nil {
		got = out // saved as the folder given
	}
	if err := checkTree(filepath.Join(share, name), got); err != nil {
		return "", fmt.Errorf("get: %w", err)
	}
	emit(Result{Bench: "folder", Case: "get", Metric: "MBps", Value: mbps(bytes, d), Run: run, Size: bytes, N: files})
	emit(Result{Bench: "folder", Case: "get", Metric: "filesPerSec", Value: float64(files) / d.Seconds(), Run: run, N: files})
	emit(Result{Bench: "folder", Case: "get", Metric: "rssMiB", Value: float64(max(phwm, fhwm)) / 1024, Run: run,
		Note: fmt.Sprintf("provider %d MiB, fetcher %d MiB", phwm>>10, fhwm>>10)})
	logf("folder: run %d: get %d files in %v (%.0f files/s), peak RSS provider %d MiB, fetcher %d MiB",
		run, files, d.Round(time.Millisecond), float64(files)/d.Seconds(), phwm>>10, fhwm>>10)
	return out, nil
}

// genTree writes small files spread over dirs folders and large files at
// the top of root, pseudo-random (every file different), and returns the
// file count and total size.
func genTree(root string, small int, smallSize int64, dirs, large int, largeSize int64) (int, int64, error) {
	buf := make([]byte, smallSize)
	var total int64
	for i := range small {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i%max(dirs, 1)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, 0, err
		}
		fillPseudo(buf, uint64(i)+1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.bin", i)), buf, 0o644); err != nil {
			return 0, 0, err
		}
		total += smallSize
	}
	for i := range large {
		if err := genFile(filepath.Join(root, fmt.Sprintf("large%d.bin", i)), largeSize, uint64(1_000_000+i), false); err != nil {
			return 0, 0, err
		}
		total += largeSize
	}
	return small + large, total, nil
}

// fillPseudo fills b with bytes that depend on seed (a xorshift stream):
// small files need only differ, not be strong randomness.
func fillPseudo(b []byte, seed uint64) {
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// shell runs a bash command line and returns its wall time.
func shell(cmd string) (time.Duration, error) {
	start := time.Now()
	c := exec.Command("bash", "-o", "pipefail", "-c", cmd)
	c.Stderr = os.Stderr
	if err := c.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w", cmd, err)
	}
	return time.Since(start), nil
}

// tarOverTCP sends `tar c` of share/name over a loopback TCP connection to
// `tar x` into out, then syncs out's file system, and returns the time.
func tarOverTCP(share, name, out string) (time.Duration, error) {
	if err := os.MkdirAll(out, 0o700); err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	recvErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			recvErr <- err
			return
		}
		defer conn.Close()
		x := exec.CommandContext(ctx, "tar", "x", "-C", out)
		x.Stdin = conn
		x.Stderr = os.Stderr
		recvErr <- x.Run()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	c := exec.CommandContext(ctx, "tar", "c", "-C", share, name)
	c.Stdout = conn
	c.Stderr = os.Stderr
	err = c.Run()
	conn.Close()
	if err := errors.Join(err, <-recvErr); err != nil {
		return 0, fmt.Errorf("tar over TCP: %w", err)
	}
	if err := exec.Command("sync", "-f", out).Run(); err != nil {
		return 0, fmt.Errorf("sync -f: %w", err)
	}
	return time.Since(start), nil
}

// checkTree compares the files under got with those under want: the same
// relative paths and sizes, and the same bytes for a sample.
func checkTree(want, got string) error {
	list := func(root string) (map[string]int64, error) {
		m := map[string]int64{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			m[filepath.ToSlash(rel)] = info.Size()
			return nil
		})
		return m, err
	}
	w, err := list(want)
	if err != nil {
		return err
	}
	g, err := list(got)
	if err != nil {
		return err
	}
	if len(w) != len(g) {
		return fmt.Errorf("%d files in %s, want %d", len(g), got, len(w))
	}
	n := 0
	for p, size := range w {
		if g[p] != size {
			return fmt.Errorf("%s: %d bytes, want %d", p, g[p], size)
		}
		if n++; n%997 == 1 || size > 1<<20 {
			if err := sameFile(filepath.Join(want, p), filepath.Join(got, p)); err != nil {
				return err
			}
		}
	}
	return nil
}

func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !slices.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s", b, a)
		}
		if ea != nil || eb != nil {
			return nil
		}
	}
}

// Targets of issue 10.
const (
	folderPublishRatio = 0.5
	folderGetRatio     = 0.5
	folderFilesPerSec  = 2000
	folderMaxRSS       = 200
)

func folderReport(args []string) error {
	a, raw, err := parseReportArgs("folder report", "results.jsonl", "JSON lines of p2pbench folder", "bash scripts/bench.sh --folder", args)
	if err != nil {
		return err
	}
	type gk struct{ cas, metric string }
	vals := map[gk][]float64{}
	byRun := map[gk]map[int]float64{}
	var size int64
	var files float64
	notes := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	for {
		var r Result
		if err := dec.Decode(&r); err != nil {
			if err == io.EOF {
				break
			}
			continue
		}
		if r.Bench != "folder" {
			continue
		}
		k := gk{r.Case, r.Metric}
		if r.Case == "tree" {
			size, files = r.Size, r.Value
			continue
		}
		vals[k] = append(vals[k], r.Value)
		if byRun[k] == nil {
			byRun[k] = map[int]float64{}
		}
		byRun[k][r.Run] = r.Value
		if r.Note != "" {
			notes[r.Case] = append(notes[r.Case], r.Note)
		}
	}
	// ratio is the median over runs of a/b, each run against its own
	// baseline.
	ratio := func(a, b gk) float64 {
		var rs []float64
		for run, v := range byRun[a] {
			if base, ok := byRun[b][run]; ok && base > 0 {
				rs = append(rs, v/base)
			}
		}
		return median(rs)
	}
	if len(vals[gk{"get", "MBps"}]) == 0 || len(vals[gk{"tar-tcp", "MBps"}]) == 0 {
		return fmt.Errorf("%s: no folder results", a.in)
	}
	f0, spread, status := fmt0, spreadP5Max, metMissed
	var w strings.Builder
	fmt.Fprintf(&w, "## Folders\n\n")
	fmt.Fprintf(&w, "Measured %s on %s (%d cores, %s RAM), commit %s, with `%s`", time.Now().Format("2006-01-02"), cpuModel(), runtime.NumCPU(), memTotal(), a.commit, a.command)
	if a.elapsed > 0 {
		fmt.Fprintf(&w, " in %s", a.elapsed.Round(time.Second))
	}
	fmt.Fprintf(&w, ". The tree: %.0f files, %s. Ratios are per run, against the baseline measured in the same run.\n\n", files, humanSize(size))
	fmt.Fprintf(&w, "| Figure | Median | Spread | Runs | Target | Result |\n|---|---|---|---|---|---|\n")
	row := func(r ...string) { fmt.Fprintf(&w, "| %s |\n", strings.Join(r, " | ")) }
	tb := vals[gk{"tar-sha256", "MBps"}]
	row("`tar c DIR | sha256sum` (MB/s)", f0(median(tb)), spread(tb), fmt.Sprint(len(tb)), "(baseline)", "")
	if p := vals[gk{"publish", "MBps"}]; len(p) > 0 {
		r := ratio(gk{"publish", "MBps"}, gk{"tar-sha256", "MBps"})
		row("`publish DIR` (MB/s)", f0(median(p)), spread(p), fmt.Sprint(len(p)),
			fmt.Sprintf("≥ %.0f%% of baseline", 100*folderPublishRatio), fmt.Sprintf("%.0f%%, %s", 100*r, status(r >= folderPublishRatio)))
	}
	if p := vals[gk{"publish", "filesPerSec"}]; len(p) > 0 {
		row("`publish DIR` (files/s)", f0(median(p)), spread(p), fmt.Sprint(len(p)), "", "")
	}
	tt := vals[gk{"tar-tcp", "MBps"}]
	row("`tar c | TCP | tar x`, then `sync -f` (MB/s)", f0(median(tt)), spread(tt), fmt.Sprint(len(tt)), "(baseline)", "")
	if v := vals[gk{"tar-tcp", "filesPerSec"}]; len(v) > 0 {
		row("`tar c | TCP | tar x`, then `sync -f` (files/s)", f0(median(v)), spread(v), fmt.Sprint(len(v)), "", "")
	}
	g := vals[gk{"get", "MBps"}]
	r := ratio(gk{"get", "MBps"}, gk{"tar-tcp", "MBps"})
	row("`get COLLECTION` (MB/s)", f0(median(g)), spread(g), fmt.Sprint(len(g)),
		fmt.Sprintf("≥ %.0f%% of baseline", 100*folderGetRatio), fmt.Sprintf("%.0f%%, %s", 100*r, status(r >= folderGetRatio)))
	if v := vals[gk{"get", "filesPerSec"}]; len(v) > 0 {
		row("`get COLLECTION` (files/s)", f0(median(v)), spread(v), fmt.Sprint(len(v)),
			fmt.Sprintf("≥ %d", folderFilesPerSec), status(median(v) >= folderFilesPerSec))
	}
	if v := vals[gk{"get", "rssMiB"}]; len(v) > 0 {
		m := slices.Max(v)
		row("peak RSS of either node during the get (MiB)", f0(median(v)), "max "+f0(m), fmt.Sprint(len(v)),
			fmt.Sprintf("< %d MiB", folderMaxRSS), status(m < folderMaxRSS))
	}
	if v := vals[gk{"publish", "rssMiB"}]; len(v) > 0 {
		row("peak RSS of the publisher while publishing (MiB)", f0(median(v)), "max "+f0(slices.Max(v)), fmt.Sprint(len(v)), "", "")
	}
	fmt.Fprintf(&w, "\nSpread: `p5 / max`. Peak RSS per run: %s.\n\n", strings.Join(notes["get"], "; "))
	w.WriteString(folderMethodText)
	fmt.Print(w.String())
	if a.out != "" {
		return os.WriteFile(a.out, []byte(w.String()), 0o644)
	}
	return nil
}

const folderMethodText = `How these are measured (` + "`p2pbench folder`" + `, in bench.sh's loopback-only namespace): a tree of
small files spread over folders and a few large files (pseudo-random bytes, every file different) is
written once and read once, so every run reads it from the page cache. Each run measures the two
baselines and then starts a fresh provider (` + "`--share`" + ` the tree's parent, so ` + "`publish tree`" + ` hashes
everything) and a fresh fetcher (so nothing is copied from an earlier download), connected over TCP on
127.0.0.1. What a run writes is deleted when the run ends, and the order of the baselines and the
nodes alternates from run to run: on this machine's file system (ext4 without a journal) creating files
right after many were deleted costs several times more, so neither side always follows the other's
deletions. ` + "`publish tree`" + ` and ` + "`get tree -o OUT`" + ` are timed from the command to the end of its output; the
get's tree is then compared with the source (every path and size, and the bytes of a sample and of
every large file). The get baseline makes its copy durable (` + "`sync -f`" + `) as a get does before it reports
the files saved. Peak RSS is VmHWM, reset (` + "`clear_refs`" + ` 5) before the command.
`
