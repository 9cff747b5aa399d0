// Command p2pbench measures p2pshare: transfers between real node processes
// against a plain TCP copy and a bare libp2p stream, publish hashing against
// openssl, a DHT of in-process hosts, mDNS discovery, peak memory and small
// files. Every subcommand prints one JSON object per measurement on stdout;
// "report" aggregates them (median, p95, ratios, targets) into BENCHMARKS.md.
//
// It only ever listens on and dials 127.0.0.1. scripts/bench.sh runs it in a
// private network namespace whose only interface is loopback. The exception
// is "nat lab", which runs inside the NAT lab's sandbox (scripts/nat-lab.sh,
// via scripts/nat-bench.sh) and starts nodes in the lab's namespaces.
//
//	p2pbench gen -file F -size 256MiB
//	p2pbench tcpcopy -file F [-runs N]
//	p2pbench libp2pcopy -file F [-runs N]
//	p2pbench transfer -bin bin/p2pshare -file F [-runs N] [-providers 3]
//	p2pbench hash -bin bin/p2pshare -file F [-runs N]
//	p2pbench dht -n 200 -lookups 20
//	p2pbench discovery -bin bin/p2pshare -n 4 [-runs N]
//	p2pbench small -bin bin/p2pshare -count 200
//	p2pbench report -in results.jsonl -out BENCHMARKS.md
//	p2pbench nat lab -work DIR [-attempts 20] [-transfer-runs 3]   (inside scripts/nat-lab.sh)
//	p2pbench nat report -in nat.jsonl -out nat.md
//	p2pbench hostile -bin bin/p2pshare [-size 64MiB] [-runs 3] [-floods streams,sessions,announce,peertable,dht]
//	p2pbench hostile report -in hostile.jsonl -out hostile.md
//	p2pbench api -bin bin/p2pshare [-size 1GiB] [-runs 3] [-publishers 4] [-files 10000] [-requests 200]
//	p2pbench api report -in api.jsonl -out api.md
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// Result is one measurement, printed as one JSON line.
type Result struct {
	Bench  string  `json:"bench"`  // transfer, publish, dht, discovery, memory, small
	Case   string  `json:"case"`   // e.g. tcp, libp2p, get1, get3
	Metric string  `json:"metric"` // e.g. MBps, ms, peers, MiB
	Value  float64 `json:"value"`
	Run    int     `json:"run"`
	Size   int64   `json:"size,omitempty"` // bytes moved, where it applies
	N      int     `json:"n,omitempty"`    // hosts, nodes or files, where it applies
	Note   string  `json:"note,omitempty"`
}

var (
	outMu sync.Mutex
	enc   = json.NewEncoder(os.Stdout)
)

func emit(r Result) {
	outMu.Lock()
	defer outMu.Unlock()
	enc.Encode(r)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "p2pbench: "+format+"\n", a...)
}

func fatalf(format string, a ...any) {
	logf(format, a...)
	os.Exit(1)
}

var subcommands = map[string]func(args []string) error{
	"gen":        cmdGen,
	"tcpcopy":    cmdTCPCopy,
	"libp2pcopy": cmdLibp2pCopy,
	"transfer":   cmdTransfer,
	"hash":       cmdHash,
	"dht":        cmdDHT,
	"discovery":  cmdDiscovery,
	"small":      cmdSmall,
	"report":     cmdReport,
	"nat":        cmdNAT,
	"hostile":    cmdHostile,
	"api":        cmdAPI,
	"folder":     cmdFolder,
}

func main() {
	if len(os.Args) < 2 || subcommands[os.Args[1]] == nil {
		var names []string
		for k := range subcommands {
			names = append(names, k)
		}
		fatalf("usage: p2pbench {%s} [flags]", strings.Join(names, "|"))
	}
	if err := subcommands[os.Args[1]](os.Args[2:]); err != nil {
		fatalf("%s: %v", os.Args[1], err)
	}
}

// common flags of every subcommand.
type common struct {
	cpuprofile string
	stop       func()
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of this process to this file")
}

func (c *common) start() error {
	c.stop = func() {}
	if c.cpuprofile == "" {
		return nil
	}
	f, err := os.Create(c.cpuprofile)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	c.stop = func() { pprof.StopCPUProfile(); f.Close() }
	return nil
}

func mbps(size int64, d time.Duration) float64 {
	return float64(size) / 1e6 / d.Seconds()
}

// parseSize reads 256MiB, 1GiB, 4096, 4KiB.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
