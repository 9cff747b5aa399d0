package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// cmdDHT starts n in-process hosts on 127.0.0.1 (TCP, TLS, yamux, bounded
// resource and connection managers), each with a kad-dht in server mode
// and p2pshare's prefix (proto.Prefix), connects each to -degree random others,
// refreshes every routing table once, then runs -lookups rounds: a random
// node provides a fresh CID, and a node that neither holds the record nor
// is connected to the provider looks it up.
func cmdDHT(args []string) error {
	fs := flag.NewFlagSet("dht", flag.ExitOnError)
	n := fs.Int("n", 50, "hosts")
	degree := fs.Int("degree", 8, "random peers each host dials at start")
	lookups := fs.Int("lookups", 20, "provide + find rounds")
	seed := fs.Uint64("seed", 1, "seed of the topology and choices")
	var c common
	c.register(fs)
	fs.Parse(args)
	rng := rand.New(rand.NewPCG(*seed, uint64(*n)))
	ctx := context.Background()
	rss0 := selfStatus("VmRSS")

	t0 := time.Now()
	hosts := make([]host.Host, *n)
	dhts := make([]*dht.IpfsDHT, *n)
	defer func() {
		for i := range hosts {
			if dhts[i] != nil {
				dhts[i].Close()
			}
			if hosts[i] != nil {
				hosts[i].Close()
			}
		}
	}()
	for i := range *n {
		h, err := newHost(hostConfig{bounded: true, connLow: 32, connHigh: 64})
		if err != nil {
			return fmt.Errorf("host %d: %w", i, err)
		}
		hosts[i] = h
		d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix(proto.Prefix), dht.DisableAutoRefresh())
		if err != nil {
			return fmt.Errorf("dht %d: %w", i, err)
		}
		dhts[i] = d
	}
	// Sparse random topology.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var failed sync.Map
	for i := range *n {
		for _, j := range rng.Perm(*n)[:min(*degree+1, *n)] {
			if j == i {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				if err := hosts[i].Connect(cctx, peer.AddrInfo{ID: hosts[j].ID(), Addrs: hosts[j].Addrs()}); err != nil {
					failed.Store(fmt.Sprint(i, "-", j), err)
				}
			})
		}
	}
	wg.Wait()
	nfail := 0
	failed.Range(func(any, any) bool { nfail++; return true })
	connected := time.Since(t0)
	// Let identify finish so every routing table has its direct peers.
	time.Sleep(2 * time.Second)
	t1 := time.Now()
	for i := range *n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			<-dhts[i].ForceRefresh()
		})
	}
	wg.Wait()
	refreshed := time.Since(t1)
	var rtSizes []float64
	for _, d := range dhts {
		rtSizes = append(rtSizes, float64(d.RoutingTable().Size()))
	}
	runtime.GC()
	rss := selfStatus("VmRSS")
	logf("dht: %d hosts, %d failed dials, connect %s, refresh %s, median routing table %.0f, RSS %.0f MiB",
		*n, nfail, connected.Round(time.Millisecond), refreshed.Round(time.Millisecond), median(rtSizes), float64(rss)/1024)
	if rss > 0 && rss0 > 0 { // 0: /proc/self/status could not be read (at 200 hosts, the open-file limit)
		emit(Result{Bench: "dht", Case: "setup", Metric: "rss_MiB", Value: float64(rss-rss0) / 1024, N: *n, Note: "RSS of the process with all hosts after warm-up, minus at start"})
	}
	emit(Result{Bench: "dht", Case: "setup", Metric: "refresh_s", Value: refreshed.Seconds(), N: *n})
	emit(Result{Bench: "dht", Case: "setup", Metric: "routing_table", Value: median(rtSizes), N: *n})

	if err := c.start(); err != nil {
		return err
	}
	defer c.stop()
	misses := 0
	for round := range *lookups {
		var buf [32]byte
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(buf[:])
		m, _ := mh.Encode(sum[:], mh.SHA2_256)
		key := cid.NewCidV1(cid.Raw, m)

		pi := rng.IntN(*n)
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		start := time.Now()
		err := dhts[pi].Provide(pctx, key, true)
		provide := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("provide: %w", err)
		}

		// A seeker without the record in its own store; prefer one not
		// connected to the provider, else close its connection to it.
		var candidates, unconnected []int
		for _, i := range rng.Perm(*n) {
			if i == pi {
				continue
			}
			provs, _ := dhts[i].ProviderStore().GetProviders(ctx, key.Hash())
			if len(provs) > 0 {
				continue
			}
			candidates = append(candidates, i)
			if hosts[i].Network().Connectedness(hosts[pi].ID()) != network.Connected {
				unconnected = append(unconnected, i)
			}
		}
		var si int
		switch {
		case len(unconnected) > 0:
			si = unconnected[0]
		case len(candidates) > 0:
			si = candidates[0]
			hosts[si].Network().ClosePeer(hosts[pi].ID())
		default:
			return fmt.Errorf("round %d: every node holds the provider record", round)
		}

		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		qctx, events := routing.RegisterForQueryEvents(fctx)
		var mu sync.Mutex
		queried := map[peer.ID]bool{}
		evDone := make(chan struct{})
		go func() {
			defer close(evDone)
			for ev := range events {
				if ev.Type == routing.SendingQuery {
					mu.Lock()
					queried[ev.ID] = true
					mu.Unlock()
				}
			}
		}()
		start = time.Now()
		ch := dhts[si].FindProvidersAsync(qctx, key, 1)
		var found bool
		for ai := range ch {
			if ai.ID == hosts[pi].ID() {
				found = true
				break
			}
		}
		find := time.Since(start)
		mu.Lock()
		contacted := len(queried)
		mu.Unlock()
		cancel()
		<-evDone
		if !found {
			// Reported, not fatal: one miss says something about the DHT
			// (or this machine's file limits), the others still count.
			misses++
			fmt.Fprintf(os.Stderr, "p2pbench: dht: round %d: provider not found (%d contacted)\n", round, contacted)
			continue
		}
		emit(Result{Bench: "dht", Case: "provide", Metric: "ms", Value: ms(provide), Run: round, N: *n})
		emit(Result{Bench: "dht", Case: "find", Metric: "ms", Value: ms(find), Run: round, N: *n})
		emit(Result{Bench: "dht", Case: "contacted", Metric: "peers", Value: float64(contacted), Run: round, N: *n})
	}
	emit(Result{Bench: "dht", Case: "failed", Metric: "lookups", Value: float64(misses), N: *n, Note: fmt.Sprintf("of %d", *lookups)})
	if misses > *lookups/2 {
		return fmt.Errorf("%d of %d lookups did not find the provider", misses, *lookups)
	}
	if hwm := selfStatus("VmHWM"); hwm > 0 {
		emit(Result{Bench: "dht", Case: "setup", Metric: "hwm_MiB", Value: float64(hwm) / 1024, N: *n, Note: "peak RSS of the whole p2pbench process"})
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// selfStatus reads a /proc/self/status field in KiB.
func selfStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
