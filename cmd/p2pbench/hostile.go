//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/multiformats/go-multihash"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// The hostile benchmark: an honest node's get from a victim node while one
// hostile peer (hosts in this process, on loopback) floods the victim, as a
// ratio to the same get with no attacker, and the victim's peak RSS during
// each flood. The attacks are those of internal/hostile's tests, run for
// the length of one get against the real binary.

// victimTarget is what the attackers know of the victim.
type victimTarget struct {
	ai peer.AddrInfo
}

// flood is one attack. start sets it up and starts it; the returned stop
// ends it and says what the attacker did.
type flood struct {
	name  string // case in the results
	desc  string // for the report
	start func(v victimTarget) (stop func() string, err error)
}

var floods = []flood{
	{"streams", "stream exhaustion (one peer, 10 connections x 100 streams that never negotiate)", startStreamsFlood},
	{"sessions", "session slots (200 throwaway identities x 4 idle authenticated fetch sessions)", startSessionsFlood},
	{"announce", "announcement flood (20 self-made origin keys through one relay, ~4,000 entries a message, every 50 ms)", startAnnounceFlood},
	{"peertable", "peer-table flood (throwaway identities with black-hole addresses, 4 at a time)", startPeerTableFlood},
	{"dht", "DHT record flood (ADD_PROVIDER for random keys, as fast as the victim reads)", startDHTFlood},
	{"cpu", "control, no attack: the attackers' process spins one core and sends the victim nothing; what sharing the machine's cores with an attacker costs by itself", startCPUControl},
}

func cmdHostile(args []string) error {
	if len(args) > 0 && args[0] == "report" {
		return hostileReport(args[1:])
	}
	fs := flag.NewFlagSet("hostile", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	file := fs.String("file", "", "file the honest peer gets (default: a new pseudo-random one of -size)")
	sizeS := fs.String("size", "64MiB", "size of the file made when -file is not given")
	runs := fs.Int("runs", 3, "runs of the baseline and of each flood, interleaved")
	warmup := fs.Duration("warmup", 2*time.Second, "how long each flood runs before the honest get starts")
	keepalive := fs.String("victim-keepalive", "2s", "the victim's --keepalive (how often it dials the peers in its table)")
	only := fs.String("floods", "", "comma-separated floods to run (default all: streams,sessions,announce,peertable,dht)")
	work := fs.String("work", "", "work folder (default: a new one under /tmp)")
	attackerProcs := fs.Int("attacker-procs", 1, "GOMAXPROCS of this process, where the attackers run (on a small machine they share the cores with the victim and the fetcher)")
	attackerNice := fs.Int("attacker-nice", 19, "niceness of this process, where the attackers run, set once the victim and the fetcher have started (they keep their own): at 19 the attackers use the cores the victim and the fetcher leave idle, as an attacker on another machine would not take them at all; 0 shares them evenly")
	fs.Parse(args)
	runtime.GOMAXPROCS(*attackerProcs)
	defer killAll()
	cleanup, err := useWorkFolder(work, "p2pbench-hostile-")
	if err != nil {
		return err
	}
	defer cleanup()
	if *file == "" {
		size, err := parseSize(*sizeS)
		if err != nil {
			return err
		}
		*file = filepath.Join(*work, "data.bin")
		if err := genFile(*file, size, 12, false); err != nil {
			return err
		}
	}
	st, err := os.Stat(*file)
	if err != nil {
		return err
	}
	size := st.Size()
	if err := warm(*file); err != nil {
		return err
	}
	todo := floods
	if *only != "" {
		todo = nil
		for _, n := range strings.Split(*only, ",") {
			i := slices.IndexFunc(floods, func(f flood) bool { return f.name == n })
			if i < 0 {
				return fmt.Errorf("no flood %q", n)
			}
			todo = append(todo, floods[i])
		}
	}
	key, err := makeBBSKey(*bin, filepath.Dir(*work))
	if err != nil {
		return err
	}

	// The victim shares the file; the honest fetcher is connected and has
	// seen its announcement.
	vdir := filepath.Join(*work, "victim")
	if err := os.MkdirAll(filepath.Join(vdir, "files"), 0o700); err != nil {
		return err
	}
	if err := os.Link(*file, filepath.Join(vdir, "files", "big.bin")); err != nil {
		return fmt.Errorf("hard link into the share folder: %w", err)
	}
	victim, err := startNode(*bin, "victim", vdir, key, "--no-mdns", "--keepalive", *keepalive)
	if err != nil {
		return err
	}
	fetcher, err := startNode(*bin, "fetcher", filepath.Join(*work, "fetcher"), key, "--no-mdns")
	if err != nil {
		return err
	}
	ns := &nodeSet{fetcher: fetcher, providers: []*proc{victim}, nodeTime: *attackerNice != 0}
	defer ns.quit()
	vid, vaddr, err := victim.id()
	if err != nil {
		return err
	}
	ns.ids = []string{vid}
	ai, err := peer.AddrInfoFromString(vaddr)
	if err != nil {
		return fmt.Errorf("the victim's address %q: %w", vaddr, err)
	}
	v := victimTarget{ai: *ai}
	if *attackerNice != 0 {
		if err := niceSelf(*attackerNice); err != nil {
			return err
		}
	}
	emit(Result{Bench: "hostile", Case: "machine", Metric: "attackerNice", Value: float64(*attackerNice)})
	if _, _, err := fetcher.run(time.Minute, "connect "+vaddr); err != nil {
		return err
	}
	if _, _, err := victim.run(10*time.Minute, "publish big.bin"); err != nil {
		return err
	}
	if _, _, err := fetcher.run(2*time.Minute, "wait file big.bin --timeout 90s"); err != nil {
		return err
	}
	outDir := filepath.Join(*work, "out")
	os.MkdirAll(outDir, 0o700)
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	// One untimed get: the fetcher has a session and the file is cached.
	if _, _, err := ns.get("big.bin", filepath.Join(outDir, "warm.bin"), vid); err != nil {
		return err
	}
	os.Remove(filepath.Join(outDir, "warm.bin"))

	seq := 0
	// measure runs one honest get (during the flood f, if not nil) and
	// emits its rate and the victim's peak RSS. pair is the same for a
	// flood's get and the baseline get before it.
	measure := func(run, pair int, f *flood) error {
		cas, note := "none", ""
		if !victim.resetHWM() {
			note = "VmHWM over the process's life (clear_refs refused); "
		}
		var stop func() string
		if f != nil {
			cas = f.name
			var err error
			if stop, err = f.start(v); err != nil {
				return fmt.Errorf("flood %s: %w", f.name, err)
			}
			time.Sleep(*warmup) // the flood runs alone first
		}
		seq++
		out := filepath.Join(outDir, fmt.Sprintf("get-%d.bin", seq))
		vcpu0, fcpu0, acpu0 := procCPU(victim.cmd.Process.Pid), procCPU(fetcher.cmd.Process.Pid), selfCPU()
		d, _, gerr := ns.get("big.bin", out, vid)
		vcpu, fcpu, acpu := procCPU(victim.cmd.Process.Pid)-vcpu0, procCPU(fetcher.cmd.Process.Pid)-fcpu0, selfCPU()-acpu0
		hwm, _ := victim.status("VmHWM")
		if stop != nil {
			note += stop()
		}
		rate := 0.0
		if gerr == nil {
			if err := checkSize(out, size); err != nil {
				return err
			}
			rate = mbps(size, d)
		} else {
			note += "; the get failed: " + gerr.Error()
			logf("hostile: get during %s failed: %v", cas, gerr)
		}
		os.Remove(out)
		emit(Result{Bench: "hostile", Case: cas, Metric: "MBps", Value: rate, Run: run, Size: size, N: pair, Note: note})
		emit(Result{Bench: "hostile", Case: cas, Metric: "rssMiB", Value: mib(hwm), Run: run, Size: size})
		// CPU during the get, in cores: the attackers share this machine's
		// cores with the victim and the fetcher, which a remote attacker
		// would not.
		if vcpu >= 0 && d > 0 {
			emit(Result{Bench: "hostile", Case: cas, Metric: "victimCores", Value: vcpu.Seconds() / d.Seconds(), Run: run})
			emit(Result{Bench: "hostile", Case: cas, Metric: "fetcherCores", Value: fcpu.Seconds() / d.Seconds(), Run: run})
			emit(Result{Bench: "hostile", Case: cas, Metric: "attackerCores", Value: acpu.Seconds() / d.Seconds(), Run: run})
		}
		logf("hostile: run %d, %s: %.0f MB/s in %v, victim peak RSS %.0f MiB, CPU during the get: victim %v, fetcher %v, attackers %v (%s)",
			run, cas, rate, d.Round(time.Millisecond), mib(hwm), vcpu.Round(time.Millisecond), fcpu.Round(time.Millisecond), acpu.Round(time.Millisecond), note)
		// Let what the flood left behind (closing connections, resets)
		// settle before the next measurement.
		time.Sleep(time.Second)
		return nil
	}
	emitLoad := func() {
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			var l float64
			if _, err := fmt.Sscan(string(b), &l); err == nil {
				emit(Result{Bench: "hostile", Case: "machine", Metric: "load1", Value: l})
			}
		}
	}
	emitLoad()
	defer emitLoad()
	for run := range *runs {
		for i := range todo {
			// A baseline before every flood: the ratio compares neighbours.
			if err := measure(run, i+1, nil); err != nil {
				return err
			}
			if err := measure(run, i+1, &todo[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// niceSelf sets the niceness of every thread of this process; threads
// made later inherit it from the thread that makes them. (setpriority's
// PRIO_PROCESS is per thread on Linux, so setting it for pid 0 would nice
// only the calling one.) The nodes already started keep theirs.
func niceSelf(n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("nice the attackers: %w", err)
	}
	for _, t := range tasks {
		var tid int
		if _, err := fmt.Sscan(t.Name(), &tid); err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("nice the attackers (thread %d): %w", tid, err)
		}
	}
	return nil
}

// selfCPU is the CPU time this process (the attackers) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// attackerIP is the loopback address the attackers listen and dial from,
// while the victim and the honest fetcher use 127.0.0.1: the victim's
// per-address limits then tell them apart, as on a real network. The TCP
// transport binds outgoing sockets to the listening address (reuseport),
// which connectTo checks.
const attackerIP = "127.0.0.2"

// newBenchAttacker is a libp2p host listening on attackerIP (TCP only)
// that dials nothing but loopback, with no resource limits of its own:
// what stops an attack must be the victim.
func newBenchAttacker(opts ...libp2p.Option) (host.Host, error) {
	return libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/" + attackerIP + "/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ConnectionGater(loopbackOnly{}),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}, opts...)...)
}

func connectTo(h host.Host, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		return err
	}
	for _, c := range h.Network().ConnsToPeer(ai.ID) {
		if ip, err := manet.ToIP(c.LocalMultiaddr()); err != nil || ip.String() != attackerIP {
			return fmt.Errorf("attacker connection from %s, not from %s", c.LocalMultiaddr(), attackerIP)
		}
	}
	return nil
}

// hosts closes a set of attacker hosts.
type hosts []host.Host

func (hs hosts) close() {
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Go(func() { h.Close() })
	}
	wg.Wait()
}

// startStreamsFlood: one identity on 10 connections, each holding 100
// streams that never negotiate a protocol (a yamux SYN and silence); a
// stream the victim resets is opened again. As internal/hostile's
// TestStreamExhaustion.
func startStreamsFlood(v victimTarget) (func() string, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	const conns, perConn = 10, 100
	var hs hosts
	for range conns {
		h, err := newBenchAttacker(libp2p.Identity(key))
		if err != nil {
			hs.close()
			return nil, err
		}
		hs = append(hs, h)
		if err := connectTo(h, v.ai); err != nil {
			hs.close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var open, opened atomic.Int64
	for _, h := range hs {
		wg.Go(func() {
			var streams sync.WaitGroup
			defer streams.Wait()
			mine := atomic.Int64{}
			for ctx.Err() == nil {
				for mine.Load() < perConn && ctx.Err() == nil {
					st, err := h.Network().NewStream(ctx, v.ai.ID)
					if err != nil {
						break
					}
					mine.Add(1)
					open.Add(1)
					opened.Add(1)
					streams.Go(func() {
						defer func() { mine.Add(-1); open.Add(-1) }()
						stop := context.AfterFunc(ctx, func() { st.Reset() })
						defer stop()
						var b [1]byte
						st.Read(b[:]) // until the victim resets it, or the flood stops
						st.Reset()
					})
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond): // pace the re-opening of refused streams
				}
			}
		})
	}
	return func() string {
		cancel()
		wg.Wait()
		hs.close()
		return fmt.Sprintf("%d silent streams opened on %d connections", opened.Load(), conns)
	}, nil
}

// startSessionsFlood: 200 throwaway identities, each keeping 4 fetch
// sessions that complete the authenticated handshake and then send
// nothing; a session the victim closes (evicts) is opened again. As
// internal/hostile's TestSessionSlots.
func startSessionsFlood(v victimTarget) (func() string, error) {
	const ids, perPeer = 200, 4
	var hs hosts
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	sem := make(chan struct{}, 16)
	for range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h, err := newBenchAttacker()
			if err == nil {
				if err = connectTo(h, v.ai); err != nil {
					h.Close()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmp(firstErr, err)
				return
			}
			hs = append(hs, h)
		})
	}
	wg.Wait()
	if firstErr != nil {
		hs.close()
		return nil, firstErr
	}
	ctx, cancel := context.WithCancel(context.Background())
	var held, accepted, refused atomic.Int64
	hsem := make(chan struct{}, 16) // handshakes at once
	for _, h := range hs {
		for range perPeer {
			wg.Go(func() {
				for ctx.Err() == nil {
					select {
					case hsem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					st, err := idleFetchSession(ctx, h, v.ai.ID)
					<-hsem
					if err != nil {
						refused.Add(1)
						select {
						case <-ctx.Done():
						case <-time.After(200 * time.Millisecond): // pace retries
						}
						continue
					}
					accepted.Add(1)
					held.Add(1)
					stop := context.AfterFunc(ctx, func() { st.Reset() })
					io.Copy(io.Discard, st) // until the victim closes it, or the flood stops
					stop()
					st.Reset()
					held.Add(-1)
				}
			})
		}
	}
	return func() string {
		cancel()
		wg.Wait()
		hs.close()
		return fmt.Sprintf("%d identities; %d authenticated idle sessions accepted, %d refused or failed", ids, accepted.Load(), refused.Load())
	}, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// idleFetchSession opens a fetch stream from h to the victim and completes
// the authenticated handshake, then sends nothing.
func idleFetchSession(ctx context.Context, h host.Host, victim peer.ID) (network.Stream, error) {
	st, err := h.NewStream(ctx, victim, proto.FetchID)
	if err != nil {
		return nil, err
	}
	st.SetDeadline(time.Now().Add(20 * time.Second))
	r := proto.NewReader(st, proto.MaxResponseSize)
	if _, err := bbsaes.Initiate(ctx, struct {
		io.Reader
		io.Writer
	}{r, st}, bbsaes.Config{
		ProtocolID: proto.FetchID,
		LocalKey:   h.Peerstore().PrivKey(h.ID()),
		RemotePeer: victim,
	}); err != nil {
		st.Reset()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	st.SetDeadline(time.Time{})
	return st, nil
}

// startAnnounceFlood: one connected peer on the announce topic relays
// announcements signed by 20 keys of its own making, each message about
// 900 KiB of entries with 200-byte names and fresh random CIDs, one every
// 50 ms. As internal/hostile's TestAnnouncementFloodThroughOneRelay.
func startAnnounceFlood(v victimTarget) (func() string, error) {
	h, err := newBenchAttacker()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	fail := func(err error) (func() string, error) {
		cancel()
		h.Close()
		return nil, err
	}
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithPeerOutboundQueueSize(4096))
	if err != nil {
		return fail(err)
	}
	topic, err := ps.Join(proto.AnnounceTopic)
	if err != nil {
		return fail(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return fail(err)
	}
	go func() { // discard what arrives: the attacker's memory is not measured, but keep it flat
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()
	if err := connectTo(h, v.ai); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(ps.ListPeers(proto.AnnounceTopic), v.ai.ID) {
		if time.Now().After(deadline) {
			return fail(errors.New("the victim did not join the announce topic with the attacker"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	keys := make([]crypto.PrivKey, 20)
	for i := range keys {
		if keys[i], _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
			return fail(err)
		}
	}
	msgs := announceFloodMessages(10000, 200)
	var sent, entries atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			key := keys[(i/len(msgs))%len(keys)]
			m := gproto.Clone(msgs[i%len(msgs)]).(*proto.Announcement)
			for _, e := range m.Entries {
				e.Cid = randomCID().Bytes()
			}
			m.TimeUnixNano = time.Now().UnixNano()
			data, err := gproto.Marshal(m)
			if err != nil {
				return
			}
			id, _ := peer.IDFromPrivateKey(key)
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err = topic.Publish(pctx, data, pubsub.WithSecretKeyAndPeerId(key, id), pubsub.WithReadiness(pubsub.MinTopicSize(1)))
			pcancel()
			if err != nil {
				return
			}
			sent.Add(1)
			entries.Add(int64(len(m.Entries)))
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})
	return func() string {
		cancel()
		wg.Wait()
		sub.Cancel()
		h.Close()
		return fmt.Sprintf("%d announcements, %d entries sent", sent.Load(), entries.Load())
	}, nil
}

// announceFloodMessages splits n entries with names of nameLen bytes into
// announcements that fit GossipSub's 1 MiB message limit.
func announceFloodMessages(n, nameLen int) []*proto.Announcement {
	var out []*proto.Announcement
	cur := &proto.Announcement{}
	size := 0
	for i := range n {
		name := fmt.Sprintf("%07d-", i)
		e := &proto.CatalogEntry{Name: name + strings.Repeat("f", nameLen-len(name)), Size: 1 << 20,
			Cid: randomCID().Bytes(), Sha256: make([]byte, 32), ChunkSize: 256 << 10, PublishedUnix: time.Now().Unix()}
		if s := gproto.Size(e) + 4; size+s > 900<<10 {
			out = append(out, cur)
			cur, size = &proto.Announcement{}, 0
		}
		cur.Entries = append(cur.Entries, e)
		size += gproto.Size(e) + 4
	}
	return append(out, cur)
}

func randomCID() cid.Cid {
	var b [32]byte
	rand.Read(b[:])
	mh, _ := multihash.Encode(b[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

// startPeerTableFlood: throwaway identities that identify as p2pshare
// peers (they list the DHT protocol), advertise only a loopback address
// that accepts TCP and never answers (a black hole, which the victim's
// keepalive dials until its timeout), stay 300 ms and go; four at a time.
// As internal/hostile's TestPeerTableFlood.
func startPeerTableFlood(v victimTarget) (func() string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hole, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		l.Close()
		return nil, err
	}
	kad := protocol.ID(proto.Prefix + "/kad/1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var joined atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				h, err := newBenchAttacker(
					libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return []ma.Multiaddr{hole} }))
				if err != nil {
					return
				}
				h.SetStreamHandler(kad, func(s network.Stream) { s.Reset() })
				if connectTo(h, v.ai) == nil {
					joined.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(300 * time.Millisecond): // long enough for identify
					}
				}
				h.Close()
			}
		})
	}
	return func() string {
		cancel()
		wg.Wait()
		l.Close()
		return fmt.Sprintf("%d throwaway identities connected and left", joined.Load())
	}, nil
}

// startDHTFlood: one peer sends ADD_PROVIDER records for random keys on a
// DHT stream as fast as the victim reads them (a stream the victim ends is
// opened again). As internal/hostile's TestDHTProviderRecords.
func startDHTFlood(v victimTarget) (func() string, error) {
	h, err := newBenchAttacker()
	if err != nil {
		return nil, err
	}
	if err := connectTo(h, v.ai); err != nil {
		h.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	self := dhtpb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: h.ID(), Addrs: h.Addrs()}})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			st, err := h.NewStream(ctx, v.ai.ID, protocol.ID(proto.Prefix+"/kad/1.0.0"))
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			stop := context.AfterFunc(ctx, func() { st.Reset() })
			w := msgio.NewVarintWriter(st)
			for ctx.Err() == nil {
				var k [32]byte
				rand.Read(k[:])
				mh, _ := multihash.Sum(k[:], multihash.SHA2_256, -1)
				m := dhtpb.NewMessage(dhtpb.Message_ADD_PROVIDER, mh, 0)
				m.ProviderPeers = self
				b, err := gproto.Marshal(m)
				if err != nil || w.WriteMsg(b) != nil {
					break
				}
				sent.Add(1)
			}
			stop()
			st.Reset()
		}
	})
	return func() string {
		cancel()
		wg.Wait()
		h.Close()
		return fmt.Sprintf("%d ADD_PROVIDER records sent", sent.Load())
	}, nil
}

// startCPUControl is no attack: it keeps one core busy in this process, as
// the attackers could at most (GOMAXPROCS), so that the report can tell
// what a flood costs beyond the CPU it takes from the victim and the
// fetcher on a small machine.
func startCPUControl(victimTarget) (func() string, error) {
	var stopped atomic.Bool
	var spins atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stopped.Load() {
			for range 1 << 16 {
				spins.Add(1)
			}
		}
	})
	return func() string {
		stopped.Store(true)
		wg.Wait()
		return fmt.Sprintf("%d spins", spins.Load())
	}, nil
}

// Targets of issue 12's "Measured".
const (
	hostileMinRatio = 0.80
	hostileMaxRSS   = 250.0 // MiB
)

// hostileReport turns the JSON lines of `p2pbench hostile` into the
// markdown section "## Hostile peers" of BENCHMARKS.md.
func hostileReport(args []string) error {
	a, b, err := parseReportArgs("hostile report", "hostile.jsonl", "JSON lines from `p2pbench hostile`", "bash scripts/bench.sh --hostile", args)
	if err != nil {
		return err
	}
	type gkey struct{ cas, metric string }
	vals := map[gkey][]float64{}
	notes := map[string][]string{}
	type pkey struct{ run, n int }
	baseOf := map[pkey]float64{}     // the baseline get before each flood's
	ratios := map[string][]float64{} // each flood get over its baseline
	var size int64
	var pending []Result
	for _, l := range strings.Split(string(b), "\n") {
		var r Result
		if json.Unmarshal([]byte(l), &r) != nil || r.Bench != "hostile" {
			continue
		}
		vals[gkey{r.Case, r.Metric}] = append(vals[gkey{r.Case, r.Metric}], r.Value)
		if r.Metric == "MBps" {
			if r.Case == "none" {
				baseOf[pkey{r.Run, r.N}] = r.Value
			} else {
				pending = append(pending, r)
			}
			if r.Note != "" {
				notes[r.Case] = append(notes[r.Case], r.Note)
			}
			size = r.Size
		}
	}
	for _, r := range pending {
		if b, ok := baseOf[pkey{r.Run, r.N}]; ok && b > 0 {
			ratios[r.Case] = append(ratios[r.Case], r.Value/b)
		}
	}
	base := vals[gkey{"none", "MBps"}]
	if len(base) == 0 {
		return fmt.Errorf("%s: no baseline get (case none)", a.in)
	}
	f0, spread, status := fmt0, spreadP5Max, metMissed
	var w strings.Builder
	fmt.Fprintf(&w, "## Hostile peers\n\n")
	fmt.Fprintf(&w, "Measured %s on %s (%d cores, %s RAM), commit %s, with `%s`", time.Now().Format("2006-01-02"), cpuModel(), runtime.NumCPU(), memTotal(), a.commit, a.command)
	if a.elapsed > 0 {
		fmt.Fprintf(&w, " in %s", a.elapsed.Round(time.Second))
	}
	fmt.Fprintf(&w, ". Ratios compare runs of the same invocation; the honest get is of %s.", humanSize(size))
	if l := vals[gkey{"machine", "load1"}]; len(l) > 0 {
		fmt.Fprintf(&w, " Load average (1 min) of the machine at the start and the end: %s (other work shares its cores).", strings.ReplaceAll(strings.Trim(fmt.Sprintf("%.1f", l), "[]"), " ", " and "))
	}
	if n := vals[gkey{"machine", "attackerNice"}]; len(n) > 0 {
		fmt.Fprintf(&w, " The attackers ran at nice %.0f.", n[0])
	} else {
		fmt.Fprintf(&w, " The attackers ran at nice 0.")
	}
	fmt.Fprintf(&w, "\n\n")
	fmt.Fprintf(&w, "| Figure | Median | Spread | Runs | Target | Result |\n|---|---|---|---|---|---|\n")
	row := func(r ...string) { fmt.Fprintf(&w, "| %s |\n", strings.Join(r, " | ")) }
	row("honest get, no attacker (MB/s)", f0(median(base)), spread(base), fmt.Sprint(len(base)), "(baseline)", "")
	if v := vals[gkey{"none", "rssMiB"}]; len(v) > 0 {
		row("victim peak RSS, no attacker (MiB)", f0(median(v)), "max "+f0(slices.Max(v)), fmt.Sprint(len(v)), "", "")
	}
	// control is the cpu control's ratio: what sharing the cores with the
	// attackers' process costs by itself.
	control := 0.0
	if g := vals[gkey{"cpu", "MBps"}]; len(g) > 0 {
		control = median(g) / median(base)
		if rs := ratios["cpu"]; len(rs) > 0 {
			control = median(rs)
		}
	}
	var extra []string
	for _, f := range floods {
		g := vals[gkey{f.name, "MBps"}]
		if len(g) == 0 {
			continue
		}
		ratio := median(g) / median(base)
		if rs := ratios[f.name]; len(rs) > 0 {
			ratio = median(rs)
		}
		if f.name == "cpu" {
			row("honest get while the attackers' process only spins one core, control (MB/s)", f0(median(g)), spread(g), fmt.Sprint(len(g)),
				"(no target)", fmt.Sprintf("%.0f%%", 100*ratio))
			extra = append(extra, fmt.Sprintf("- cpu: %s.", f.desc))
			continue
		}
		result := fmt.Sprintf("%.0f%%, %s", 100*ratio, status(ratio >= hostileMinRatio))
		if control > 0 {
			// What the flood costs beyond sharing the machine's cores
			// with the attackers' process at all.
			result += fmt.Sprintf(" (%.0f%% of the control)", 100*ratio/control)
		}
		row(fmt.Sprintf("honest get during %s (MB/s)", f.name), f0(median(g)), spread(g), fmt.Sprint(len(g)),
			fmt.Sprintf("≥ %.0f%% of baseline", 100*hostileMinRatio), result)
		if r := vals[gkey{f.name, "rssMiB"}]; len(r) > 0 {
			m := slices.Max(r)
			row(fmt.Sprintf("victim peak RSS during %s (MiB)", f.name), f0(median(r)), "max "+f0(m), fmt.Sprint(len(r)),
				fmt.Sprintf("< %.0f MiB", hostileMaxRSS), status(m < hostileMaxRSS))
		}
		cpu := ""
		core := func(cas, who string) string {
			if v := vals[gkey{cas, who + "Cores"}]; len(v) > 0 {
				return fmt.Sprintf("%.2f", median(v))
			}
			return "?"
		}
		if len(vals[gkey{f.name, "victimCores"}]) > 0 {
			cpu = fmt.Sprintf(" CPU during the get (median, in cores; with no attacker in brackets): victim %s (%s), fetcher %s (%s), attackers %s.",
				core(f.name, "victim"), core("none", "victim"), core(f.name, "fetcher"), core("none", "fetcher"), core(f.name, "attacker"))
		}
		extra = append(extra, fmt.Sprintf("- %s: %s. Per run: %s.%s", f.name, f.desc, strings.Join(notes[f.name], "; "), cpu))
	}
	fmt.Fprintf(&w, "\nSpread: `p5 / max` for throughputs; the RSS target applies to the maximum. Ratio: the median over runs of\n"+
		"each flood's get divided by the get with no attacker just before it.\n\n")
	fmt.Fprintf(&w, "%s\n\n", strings.Join(extra, "\n"))
	w.WriteString(hostileMethodText)
	fmt.Print(w.String())
	if a.out != "" {
		return os.WriteFile(a.out, []byte(w.String()), 0o644)
	}
	return nil
}

const hostileMethodText = `How these are measured (` + "`p2pbench hostile`" + `, in bench.sh's loopback-only namespace): the victim is a
real node (` + "`bin/p2pshare --no-mdns --keepalive 2s`" + `, listening on 127.0.0.1; the short keepalive makes the
peer-table flood's black holes due within the window of one get) sharing a pseudo-random file; the honest
fetcher is another node, connected to it, that has fetched the file once before (untimed), so it starts
each get with a kept session, as a peer that was already exchanging files would. Each get is
` + "`get big.bin -o OUT --from VICTIM`" + `, timed by the fetching node (the duration its ` + "`saved`" + ` line reports: the p2pbench
process runs niced, below, so its own clock would read the end late). The attacker is
libp2p hosts inside the p2pbench process (TCP from 127.0.0.2, so that the victim's per-address limits tell
them from the fetcher as on a real network; no resource limits of their own, GOMAXPROCS 1 so
that they leave the victim and the fetcher at least one of the machine's cores), running the
attack loops of ` + "`internal/hostile`" + `'s tests: each flood is set up (connections, identities), runs alone for
2 s, keeps running through the honest get and stops after it. A get with no attacker runs right before each
flood's, in every run, so the baseline interleaves with the floods. The victim's peak RSS is its VmHWM
after the get, reset (` + "`clear_refs`" + ` 5) before the flood starts; what a flood leaves in memory (announced
entries, peer-table rows, provider records) stays for the later floods, as it would on a node under attack.
The CPU figures are user and system time of the victim and fetcher processes (/proc/PID/stat) and of the p2pbench process
(the attackers) during the get, divided by its wall time. On this 2-core machine the attackers' own CPU
would be taken from the victim and the fetcher, which an attacker on another machine does not do, so the
p2pbench process lowers its priority (` + "`-attacker-nice`" + `, 19 by default; set after the victim and the fetcher
have started, which keep nice 0): the attackers run on what the victim and the fetcher leave idle, and what
a flood costs the honest get is the victim's work of handling it. The ` + "`cpu`" + ` row is the control for that
method: the attackers' process spins one core (as much as the floods may use) and sends nothing. Niced, it
still costs the get about 20% on this VM (a thread spinning on the second vCPU slows the first, which
priorities cannot undo), so each flood's result also says how it compares with the control: near 100%, the
flood costs the victim little beyond the attackers' mere presence on the machine. ` + "`-attacker-nice 0`" + ` measures them co-located
(the figures before 2026-11-30's second session: the control then cost 29%).
`
