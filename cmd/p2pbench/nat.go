//go:build linux

package main

// p2pbench nat: NAT traversal measured in the NAT lab (scripts/nat-lab.sh).
//
//	P2PBENCH_KEYDIR=DIR scripts/nat-lab.sh --sandbox -- bin/p2pbench nat key
//	P2PBENCH_KEYDIR=DIR scripts/nat-lab.sh --nat-a cone --nat-b cone -- \
//	    bin/p2pbench nat lab -bin bin/p2pshare -work DIR/cc -attempts 20 [-transfer-runs 3]
//	bin/p2pbench nat report -in results.jsonl -out nat.md
//
// scripts/nat-bench.sh runs the whole set.
//
// "lab" runs inside a lab (it reads the LAB_* variables) and only starts
// node processes in the lab's namespaces with `ip netns exec`: every byte
// it makes flow stays on the lab's veth links. A public node (relay
// service on) runs in the lab's public host; publishers run in home A,
// behind its NAT, and fetchers in home B.
//
// Hole punching: for each attempt a fresh fetcher (new --data, so a new
// peer ID and a new NAT mapping) in home B runs `get TICKET` for a small
// file published in home A; the outcome is its output (saved or error) and
// the LINK of the publisher in `peers --wide`; the time from the fetcher's
// first relayed dial to the publisher to the direct connection comes from
// the debug logs of both nodes (go-libp2p's "dialing peer through relay"
// and "hole punch successful" lines; one clock, one machine).
//
// Throughput (-transfer-runs > 0, for cone/cone): a 256 MiB get over the
// hole-punched connection (fetcher in home B) against the same get from a
// fetcher in home A's own namespace (the LAN case: no NAT, no router), for
// TCP and for QUIC (both ends listen on that transport only), interleaved.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/p2pshare/p2pshare/internal/natlab"
)

func cmdNAT(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "lab":
			return natLab(args[1:])
		case "report":
			return natReport(args[1:])
		case "key":
			// Make the BBS key every lab's nodes copy ($P2PBENCH_KEYDIR), once,
			// before labs run side by side.
			fs := flag.NewFlagSet("nat key", flag.ExitOnError)
			bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
			work := fs.String("work", os.TempDir(), "where to make it (unless $P2PBENCH_KEYDIR is set)")
			fs.Parse(args[1:])
			_, err := makeBBSKey(*bin, *work)
			return err
		}
	}
	return errors.New("usage: p2pbench nat lab [flags] (inside scripts/nat-lab.sh) | nat key [flags] | nat report [flags]")
}

// transports of the throughput runs: the name and the --listen address
// that restricts a node to it.
var natTransports = []struct{ name, listen string }{
	{"tcp", "/ip4/0.0.0.0/tcp/0"},
	{"quic", "/ip4/0.0.0.0/udp/0/quic-v1"},
}

// longKeepalive is the keepalive of the nodes that outlive the fetchers
// (the public node, the punch publisher). With the default (10 s) they
// keep dialling every departed fetcher at its old addresses, all behind
// NAT B's one public address, where nothing answers: those pending dials
// count against go-libp2p's limit of connections per IP address (8), and
// after a dozen fetchers the public node refuses new ones from home B. A
// long keepalive keeps that artefact of many short-lived peers behind one
// NAT out of the punch figures.
const longKeepalive = "1h"

// natBench is one lab's run: the lab, the public node and what they share.
type natBench struct {
	lab   *natlab.Lab
	bin   string
	work  string
	key   string
	combo string            // "cone/cone"
	pubID string            // the public node's
	boot  map[string]string // its address per transport, with /p2p/
	small int64             // size of the publishers' small files
	start time.Time         // of the lab's first node
	seq   uint64            // makes every publisher's files different
	seqMu sync.Mutex
}

// startIn starts a node in network namespace ns, driven like startNode's
// (which listens on the p2pbench process's loopback, useless here). args
// must say what to listen on.
func (nb *natBench) startIn(ns, name string, args ...string) (*proc, error) {
	dir := filepath.Join(nb.work, name)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(nb.key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bbs.key"), b, 0o600); err != nil {
		return nil, err
	}
	if os.Getenv("P2PBENCH_NAT_DEBUG") != "" { // every node logs at debug level (a later flag wins)
		args = append(args, "--log-level", "debug")
	}
	cmd := nb.lab.Command(natlab.Host{NS: ns}, nb.bin, append([]string{"--data", dir, "--no-mdns"}, args...)...)
	return startCmd(cmd, name, dir)
}

// peerID asks a node for its peer ID.
func peerID(p *proc) (string, error) {
	out, _, err := p.run(30*time.Second, "id")
	if err != nil {
		return "", err
	}
	for _, l := range out {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l.text), "peer ID: "); ok {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: no peer ID in %v", p.name, texts(out))
}

// waitReservation polls `id` until the node holds a relay reservation.
func waitReservation(p *proc, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < timeout {
		out, _, err := p.run(30*time.Second, "id")
		if err != nil {
			return 0, err
		}
		for _, l := range out {
			if strings.HasPrefix(l.text, "relay reservations: ") {
				return time.Since(start), nil
			}
		}
		time.Sleep(500 * time.Millisecond) // polling a process we do not control, with a deadline
	}
	return 0, fmt.Errorf("%s: no relay reservation after %s", p.name, timeout)
}

var ticketRe = regexp.MustCompile(`^p2ps1[a-z0-9]+$`)

// publishAndShare publishes name (already in the node's share folder) and
// returns its ticket.
func publishAndShare(p *proc, name string) (string, error) {
	if _, _, err := p.run(5*time.Minute, "publish "+name); err != nil {
		return "", err
	}
	out, _, err := p.run(30*time.Second, "share "+name)
	if err != nil {
		return "", err
	}
	for _, l := range out {
		if ticketRe.MatchString(strings.TrimSpace(l.text)) {
			return strings.TrimSpace(l.text), nil
		}
	}
	return "", fmt.Errorf("%s: no ticket in %v", p.name, texts(out))
}

// linkTo returns the LINK column of `peers --wide` for peer id ("tcp
// (punched)", "relay (punch failed)", ...), or "" if id is not listed.
func linkTo(p *proc, id string) (string, error) {
	out, _, err := p.run(30*time.Second, "peers --wide")
	if err != nil {
		return "", err
	}
	for _, l := range out {
		if cols := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l.text), -1); len(cols) >= 5 && cols[0] == id {
			return cols[4], nil
		}
	}
	return "", nil
}

// natGet runs `get TICKET -o out` and returns its duration, and the error
// line if it failed (err is for the harness failing, not the get). A get
// that used more than one provider is an error: each file has one.
func natGet(p *proc, ticket, out string, timeout time.Duration) (d time.Duration, errLine string, err error) {
	lines, d, err := p.run(timeout, "get "+ticket+" -o "+out)
	for _, l := range lines {
		if m := savedRe.FindStringSubmatch(l.text); m != nil {
			if m[2] != "1" {
				return d, "", fmt.Errorf("%s: %q: want one provider", p.name, l.text)
			}
			return d, "", nil
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l.text, "error:") {
			return d, l.text, nil
		}
	}
	if err == nil {
		err = fmt.Errorf("%s: get: neither saved nor error in %v", p.name, texts(lines))
	}
	return d, "", err
}

func natLab(args []string) error {
	fs := flag.NewFlagSet("nat lab", flag.ExitOnError)
	bin := fs.String("bin", "bin/p2pshare", "p2pshare binary")
	work := fs.String("work", "", "work folder (required; node folders and logs are kept there)")
	attempts := fs.Int("attempts", 20, "hole-punch attempts (a fresh fetcher each)")
	parallel := fs.Int("parallel", 1, "hole-punch attempts run at the same time (see natLab)")
	smallS := fs.String("small", "1MiB", "size of the file of the hole-punch attempts")
	runs := fs.Int("transfer-runs", 0, "runs of the throughput comparison (0: none)")
	sizeS := fs.String("size", "256MiB", "size of the throughput file")
	fs.Parse(args)
	defer killAll()
	if *work == "" {
		return errors.New("-work is required")
	}
	lab, err := natlab.FromEnv()
	if err != nil {
		return err
	}
	small, err := parseSize(*smallS)
	if err != nil {
		return err
	}
	size, err := parseSize(*sizeS)
	if err != nil {
		return err
	}
	if *bin, err = filepath.Abs(*bin); err != nil {
		return err
	}
	if err := os.MkdirAll(*work, 0o700); err != nil {
		return err
	}
	key, err := makeBBSKey(*bin, *work)
	if err != nil {
		return err
	}
	nb := &natBench{lab: lab, bin: *bin, work: *work, key: key, combo: string(lab.NatA) + "/" + string(lab.NatB),
		small: small, start: time.Now()}
	pub, err := nb.startIn(lab.Public.NS, "public", "--listen", "/ip4/0.0.0.0/tcp/4001",
		"--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--relay-service", "on", "--log-level", "info", "--keepalive", longKeepalive)
	if err != nil {
		return err
	}
	if nb.pubID, err = peerID(pub); err != nil {
		return err
	}
	nb.boot = map[string]string{
		"tcp":  fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", lab.Public.IP, nb.pubID),
		"quic": fmt.Sprintf("/ip4/%s/udp/4001/quic-v1/p2p/%s", lab.Public.IP, nb.pubID),
	}
	if *attempts > 0 {
		if err := nb.punches(*attempts, *parallel); err != nil {
			return err
		}
	}
	if *runs > 0 {
		return nb.throughput(*runs, size)
	}
	return nil
}

// publisher is a node in home A that publishes files of its own.
type publisher struct {
	p                   *proc
	id                  string
	small, big          string // file names in its share folder (big: throughput publishers only)
	smallTicket, ticket string // their tickets
}

// startPublisher starts a node in home A with a small file (and a big one
// if bigSize > 0) in its share folder, each different from every other
// publisher's, so no get can find a second provider.
func (nb *natBench) startPublisher(name string, bigSize int64, args ...string) (*publisher, error) {
	nb.seqMu.Lock()
	nb.seq++
	seed := nb.seq
	nb.seqMu.Unlock()
	dir := filepath.Join(nb.work, name)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return nil, err
	}
	pb := &publisher{small: "small-" + name + ".bin"}
	if err := genFile(filepath.Join(dir, "files", pb.small), nb.small, seed, false); err != nil {
		return nil, err
	}
	if bigSize > 0 {
		pb.big = "big-" + name + ".bin"
		f := filepath.Join(dir, "files", pb.big)
		if err := genFile(f, bigSize, seed+1<<32, false); err != nil {
			return nil, err
		}
		if err := warm(f); err != nil {
			return nil, err
		}
	}
	p, err := nb.startIn(nb.lab.A.NS, name, args...)
	if err != nil {
		return nil, err
	}
	pb.p = p
	return pb, nil
}

// readyPublisher waits for the publisher's relay reservation, then
// publishes its files and gets their tickets.
func (nb *natBench) readyPublisher(pb *publisher) error {
	var err error
	if pb.id, err = peerID(pb.p); err != nil {
		return err
	}
	d, err := waitReservation(pb.p, 2*time.Minute)
	if err != nil {
		return err
	}
	logf("%s %s: reservation after %s (since the lab's start: %s)", nb.combo, pb.p.name, d.Round(time.Millisecond), time.Since(nb.start).Round(time.Millisecond))
	emit(Result{Bench: "nat", Case: nb.combo, Metric: "reservation-ms", Value: ms(time.Since(pb.p.started)), Note: "publisher's start to its relay reservation"})
	if pb.smallTicket, err = publishAndShare(pb.p, pb.small); err != nil {
		return err
	}
	if pb.big != "" {
		pb.ticket, err = publishAndShare(pb.p, pb.big)
	}
	return err
}

// punches runs the hole-punch attempts against one publisher with the
// node's default listen addresses (TCP and QUIC), parallel at a time.
//
// More than one at a time is faster but not clean: all fetchers share NAT
// B's public address, and the public node's DHT dials departed ones there,
// so with 2 at a time it soon holds go-libp2p's limit of 8 connections per
// IP address and refuses new fetchers (seen in the lab: "resource manager
// blocked accept").
func (nb *natBench) punches(attempts, parallel int) error {
	pb, err := nb.startPublisher("a-punch", 0, "--bootstrap", nb.boot["tcp"], "--log-level", "debug", "--keepalive", longKeepalive)
	if err != nil {
		return err
	}
	if err := nb.readyPublisher(pb); err != nil {
		return err
	}
	sem := make(chan struct{}, max(parallel, 1))
	errs := make([]error, attempts)
	var wg sync.WaitGroup
	for i := range attempts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := nb.punchAttempt(i, pb.p, pb.id, pb.smallTicket, nb.boot["tcp"], nb.small); err != nil {
				errs[i] = fmt.Errorf("%s attempt %d: %w", nb.combo, i+1, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// punchAttempt starts a fresh fetcher in home B, gets the ticket's file and
// reports whether the hole punch worked and how long things took.
func (nb *natBench) punchAttempt(i int, pub *proc, pubID, ticket, boot string, size int64) error {
	name := fmt.Sprintf("b-punch-%02d", i+1)
	pubLog := filepath.Join(pub.dir, "node.log")
	pubOff := fileSize(pubLog)
	b, err := nb.startIn(nb.lab.B.NS, name, "--bootstrap", boot, "--log-level", "debug")
	if err != nil {
		return err
	}
	defer b.quit()
	if _, _, err := b.run(time.Minute, "wait peers 1 --timeout 30s"); err != nil {
		return err
	}
	out := filepath.Join(b.dir, "got.bin")
	d, errLine, err := natGet(b, ticket, out, 2*time.Minute)
	if err != nil {
		return err
	}
	link, err := linkTo(b, pubID)
	if err != nil {
		return err
	}
	bID, err := peerID(b)
	if err != nil {
		return err
	}
	ok := errLine == ""
	if ok {
		if err := checkSize(out, size); err != nil {
			return err
		}
		os.Remove(out)
	}
	// Both logs are complete enough once the get is over: the lines that
	// matter were written before the get could finish (or fail).
	ev := punchEvents(filepath.Join(b.dir, "node.log"), 0, pubID)
	evA := punchEvents(pubLog, pubOff, bID)
	direct := ev.success
	if !evA.success.IsZero() && (direct.IsZero() || evA.success.Before(direct)) {
		direct = evA.success
	}
	punched := strings.HasPrefix(link, "tcp") || strings.HasPrefix(link, "quic")
	note := fmt.Sprintf("link %q; A offered %s, B offered %s", link, transportsOf(ev.theirAddrs), transportsOf(evA.theirAddrs))
	if !ok {
		note += "; " + errLine
	}
	logf("%s attempt %d: punched=%v get=%v in %s (%s)", nb.combo, i+1, punched, ok, d.Round(time.Millisecond), note)
	emit(Result{Bench: "nat", Case: nb.combo, Metric: "punched", Value: b2f(punched), Run: i, Note: note})
	emit(Result{Bench: "nat", Case: nb.combo, Metric: "get-ok", Value: b2f(ok), Run: i, Size: size})
	if ok {
		emit(Result{Bench: "nat", Case: nb.combo, Metric: "get-ms", Value: ms(d), Run: i, Size: size})
	} else {
		emit(Result{Bench: "nat", Case: nb.combo, Metric: "fail-ms", Value: ms(d), Run: i, Size: size, Note: errLine})
	}
	if punched && len(ev.relayDials) > 0 && !direct.IsZero() {
		emit(Result{Bench: "nat", Case: nb.combo, Metric: "relay-to-direct-ms", Value: ms(direct.Sub(ev.relayDials[0])), Run: i})
		// The relayed connection whose DCUtR succeeded: the last one dialled
		// before the direct connection.
		last := ev.relayDials[0]
		for _, t := range ev.relayDials {
			if !t.After(direct) {
				last = t
			}
		}
		emit(Result{Bench: "nat", Case: nb.combo, Metric: "punch-ms", Value: ms(direct.Sub(last)), Run: i})
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// throughput compares, for each transport, a get over the hole-punched
// connection (fetcher in home B) with the same get in home A's namespace
// (the LAN case), interleaved: every run does both for both transports,
// alternating which goes first.
func (nb *natBench) throughput(runs int, size int64) error {
	type set struct {
		pub      *publisher
		lan, wan *proc
	}
	sets := map[string]*set{}
	// Both publishers start at once: the wait for a reservation is mostly
	// AutoNAT's start-up delay.
	for _, t := range natTransports {
		pb, err := nb.startPublisher("a-"+t.name+"-1", size, "--listen", t.listen, "--bootstrap", nb.boot[t.name])
		if err != nil {
			return err
		}
		sets[t.name] = &set{pub: pb}
	}
	for _, t := range natTransports {
		st := sets[t.name]
		// Warm-up, not timed: a small get makes the connections the big
		// gets then use, the hole-punched one included. When the punch
		// fails (see the punch figures; a node whose only connection to
		// the public node is QUIC from an unlisted port has no address to
		// punch with), the publisher and both fetchers are replaced, up to
		// three times.
		for try := 1; ; try++ {
			err := nb.throughputSet(t.name, t.listen, try, &st.pub, &st.lan, &st.wan)
			if err == nil {
				break
			}
			if try == 3 {
				return err
			}
			logf("%s %s try %d: %v; starting over with new nodes", nb.combo, t.name, try, err)
			for _, p := range []*proc{st.pub.p, st.lan, st.wan} {
				if p != nil {
					p.quit()
				}
			}
			if st.pub, err = nb.startPublisher(fmt.Sprintf("a-%s-%d", t.name, try+1), size, "--listen", t.listen, "--bootstrap", nb.boot[t.name]); err != nil {
				return err
			}
			st.lan, st.wan = nil, nil
		}
	}
	for r := range runs {
		for _, t := range natTransports {
			st := sets[t.name]
			order := []*proc{st.lan, st.wan}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, p := range order {
				out := filepath.Join(p.dir, fmt.Sprintf("big-%d.bin", r))
				d, errLine, err := natGet(p, st.pub.ticket, out, 10*time.Minute)
				if err != nil {
					return err
				}
				if errLine != "" {
					return fmt.Errorf("%s: %s", p.name, errLine)
				}
				if err := checkSize(out, size); err != nil {
					return err
				}
				os.Remove(out)
				link, err := linkTo(p, st.pub.id)
				if err != nil {
					return err
				}
				where, want := "lan", t.name
				if p == st.wan {
					where, want = "punched", t.name+" (punched)"
				}
				if link != want {
					return fmt.Errorf("%s: the publisher's link is %q, not %q", p.name, link, want)
				}
				logf("%s run %d: %s %s %.0f MB/s (link %s)", nb.combo, r+1, where, t.name, mbps(size, d), link)
				emit(Result{Bench: "nat", Case: where + "-" + t.name, Metric: "MBps", Value: mbps(size, d), Run: r, Size: size, Note: "link " + link})
			}
		}
	}
	return nil
}

// throughputSet readies one transport's publisher (already started) and
// starts its two fetchers, each warmed up with the small file: lan in the
// publisher's namespace, connected to its LAN address; wan in home B,
// through the ticket (so through the relay, then the hole punch).
func (nb *natBench) throughputSet(t, listen string, try int, pub **publisher, lan, wan **proc) error {
	pb := *pub
	if err := nb.readyPublisher(pb); err != nil {
		return err
	}
	lanAddr, err := addrOn(pb.p, nb.lab.A.IP, t)
	if err != nil {
		return err
	}
	if *lan, err = nb.startIn(nb.lab.A.NS, fmt.Sprintf("lan-%s-%d", t, try), "--listen", listen); err != nil {
		return err
	}
	if _, _, err := (*lan).run(time.Minute, "connect "+lanAddr+"/p2p/"+pb.id); err != nil {
		return err
	}
	if err := warmUp(*lan, pb.smallTicket); err != nil {
		return err
	}
	if *wan, err = nb.startIn(nb.lab.B.NS, fmt.Sprintf("wan-%s-%d", t, try), "--listen", listen, "--bootstrap", nb.boot[t]); err != nil {
		return err
	}
	if _, _, err := (*wan).run(time.Minute, "wait peers 1 --timeout 30s"); err != nil {
		return err
	}
	return warmUp(*wan, pb.smallTicket)
}

// warmUp gets the small file behind ticket once, untimed.
func warmUp(p *proc, ticket string) error {
	out := filepath.Join(p.dir, "warmup.bin")
	if _, errLine, err := natGet(p, ticket, out, 2*time.Minute); err != nil {
		return err
	} else if errLine != "" {
		return fmt.Errorf("%s warm-up: %s", p.name, errLine)
	}
	return os.Remove(out)
}

// addrOn returns the node's listen address on ip for transport t ("tcp" or
// "quic"), from `id`.
func addrOn(p *proc, ip, t string) (string, error) {
	out, _, err := p.run(30*time.Second, "id")
	if err != nil {
		return "", err
	}
	for _, l := range out {
		a := strings.TrimSpace(l.text)
		if !strings.HasPrefix(a, "/ip4/"+ip+"/") || strings.Contains(a, "/p2p-circuit") {
			continue
		}
		if (t == "quic") == strings.Contains(a, "/quic-v1") {
			a, _, _ = strings.Cut(a, "/p2p/")
			return a, nil
		}
	}
	return "", fmt.Errorf("%s: no %s address on %s in %v", p.name, t, ip, texts(out))
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// punchLogEvents are the moments of one peer's hole punch in a node.log.
type punchLogEvents struct {
	relayDials []time.Time // every "dialing peer through relay" to the peer
	success    time.Time   // first "hole punch successful" with the peer
	theirAddrs []string    // the addresses the peer offered for the punch
}

// punchEvents reads a node.log (go-log's plaintext format: time, level,
// logger, caller, message, JSON fields, tab-separated) from off and finds
// the hole-punch events that concern peer id.
func punchEvents(path string, off int64, id string) punchLogEvents {
	var ev punchLogEvents
	f, err := os.Open(path)
	if err != nil {
		return ev
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return ev
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 6 || !strings.Contains(fields[5], id) {
			continue
		}
		var kv map[string]any
		if json.Unmarshal([]byte(fields[5]), &kv) != nil {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", fields[0])
		if err != nil {
			continue
		}
		addrs := func() []string {
			var s []string
			if l, ok := kv["addrs"].([]any); ok {
				for _, a := range l {
					if as, ok := a.(string); ok {
						s = append(s, as)
					}
				}
			}
			return s
		}
		switch fields[4] {
		case "dialing peer through relay":
			if kv["destination_peer"] == id {
				ev.relayDials = append(ev.relayDials, at)
			}
		case "hole punch successful":
			if kv["destination_peer"] == id && ev.success.IsZero() {
				ev.success = at
			}
		case "received hole punch request": // we are the receiver: the peer's addresses
			if kv["peer"] == id && ev.theirAddrs == nil {
				ev.theirAddrs = addrs()
			}
		case "holepunchConnect": // the addresses we dial: the peer's
			if kv["destination_peer"] == id && ev.theirAddrs == nil {
				ev.theirAddrs = addrs()
			}
		}
	}
	return ev
}

// transportsOf names the transports of a list of multiaddrs: "tcp+quic".
func transportsOf(addrs []string) string {
	var ts []string
	for _, a := range addrs {
		t := "tcp"
		if strings.Contains(a, "/quic") {
			t = "quic"
		}
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return "nothing"
	}
	return strings.Join(ts, "+")
}

// natReport turns the JSON lines of `nat lab` runs into the markdown
// section "## NAT lab" of BENCHMARKS.md.
func natReport(args []string) error {
	a, b, err := parseReportArgs("nat report", "nat.jsonl", "JSON lines from `p2pbench nat lab` runs", "bash scripts/nat-bench.sh", args)
	if err != nil {
		return err
	}
	type gkey struct{ cas, metric string }
	vals := map[gkey][]float64{}
	notes := map[gkey][]string{}
	sizes := map[gkey]int64{}
	byRun := map[gkey]map[int]float64{}
	var combos []string
	for _, l := range strings.Split(string(b), "\n") {
		var r Result
		if json.Unmarshal([]byte(l), &r) != nil || r.Bench != "nat" {
			continue
		}
		k := gkey{r.Case, r.Metric}
		vals[k] = append(vals[k], r.Value)
		notes[k] = append(notes[k], r.Note)
		sizes[k] = r.Size
		if byRun[k] == nil {
			byRun[k] = map[int]float64{}
		}
		byRun[k][r.Run] = r.Value
		if r.Metric == "punched" && !slices.Contains(combos, r.Case) {
			combos = append(combos, r.Case)
		}
	}
	var rows [][6]string
	add := func(r ...string) { rows = append(rows, [6]string(r)) }
	f0 := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	timeRow := func(figure string, k gkey) {
		if v := vals[k]; len(v) > 0 {
			add(figure, f0(median(v)), "p95 "+f0(percentile(v, 95)), fmt.Sprint(len(v)), "", "")
		}
	}
	var extra []string
	for _, c := range combos {
		p := vals[gkey{c, "punched"}]
		n, k := len(p), 0
		for _, v := range p {
			k += int(v)
		}
		add(fmt.Sprintf("%s: hole punch succeeded (LINK tcp/quic punched)", c), fmt.Sprintf("%d/%d (%.0f%%)", k, n, 100*float64(k)/float64(n)), "", fmt.Sprint(n), "", "")
		timeRow(c+": fetcher's first relayed dial to the publisher → direct connection (ms)", gkey{c, "relay-to-direct-ms"})
		timeRow(c+": relayed connection whose DCUtR succeeded → direct connection (ms)", gkey{c, "punch-ms"})
		sz := humanSize(sizes[gkey{c, "get-ok"}])
		timeRow(fmt.Sprintf("%s: `get TICKET` of %s that succeeded, command to saved (ms)", c, sz), gkey{c, "get-ms"})
		timeRow(fmt.Sprintf("%s: `get TICKET` of %s that failed, command to error (ms)", c, sz), gkey{c, "fail-ms"})
		extra = append(extra, fmt.Sprintf("- %s: publisher's LINK as the fetcher saw it: %s; transports offered for the punch: %s.",
			c, countOf(notes[gkey{c, "punched"}], linkOfNote), countOf(notes[gkey{c, "punched"}], offeredOfNote)))
		// A success whose punch worked only on a later relayed connection:
		// the DCUtR of the first one was lost.
		var late []float64
		for run, first := range byRun[gkey{c, "relay-to-direct-ms"}] {
			if punch, ok := byRun[gkey{c, "punch-ms"}][run]; ok && first-punch > 1000 {
				late = append(late, first-punch)
			}
		}
		if len(late) > 0 {
			extra = append(extra, fmt.Sprintf("  In %d of %d successes the direct connection came from a later relayed connection (median %.1f s after the first), not from the first one's DCUtR.",
				len(late), k, median(late)/1000))
		}
		if e := notes[gkey{c, "fail-ms"}]; len(e) > 0 {
			extra = append(extra, fmt.Sprintf("  Failures said: %s.", countOf(e, whyOfError)))
		}
		if v := vals[gkey{c, "reservation-ms"}]; len(v) > 0 {
			extra = append(extra, fmt.Sprintf("  The publishers had their relay reservations %.1f s after the lab's nodes started.", median(v)/1000))
		}
	}
	for _, t := range natTransports {
		lan, wan := vals[gkey{"lan-" + t.name, "MBps"}], vals[gkey{"punched-" + t.name, "MBps"}]
		if len(lan) == 0 || len(wan) == 0 {
			continue
		}
		sz := humanSize(sizes[gkey{"lan-" + t.name, "MBps"}])
		T := strings.ToUpper(t.name)
		spread := func(v []float64) string { return f0(percentile(v, 5)) + " / " + f0(slices.Max(v)) }
		add(fmt.Sprintf("%s get, %s, fetcher in the publisher's namespace (MB/s)", sz, T), f0(median(lan)), spread(lan), fmt.Sprint(len(lan)), "(baseline)", "")
		add(fmt.Sprintf("%s get, %s, hole-punched across two cone NATs (MB/s)", sz, T), f0(median(wan)), spread(wan), fmt.Sprint(len(wan)),
			T+" in one namespace", fmt.Sprintf("%.0f%%", 100*median(wan)/median(lan)))
	}

	var w strings.Builder
	fmt.Fprintf(&w, "## NAT lab\n\n")
	fmt.Fprintf(&w, "Measured %s on %s (%d cores, %s RAM), commit %s, with `%s`", time.Now().Format("2006-01-02"), cpuModel(), runtime.NumCPU(), memTotal(), a.commit, a.command)
	if a.elapsed > 0 {
		fmt.Fprintf(&w, " in %s", a.elapsed.Round(time.Second))
	}
	fmt.Fprintf(&w, ". Ratios compare runs of the same invocation.\n\n")
	fmt.Fprintf(&w, "| Figure | Median | Spread | Runs | Baseline | Ratio |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&w, "| %s |\n", strings.Join(r[:], " | "))
	}
	fmt.Fprintf(&w, "\nSpread: `p95` (nearest rank) for times, `p5 / max` for throughputs.\n\n")
	if len(extra) > 0 {
		fmt.Fprintf(&w, "%s\n\n", strings.Join(extra, "\n"))
	}
	w.WriteString(natMethodText)
	fmt.Print(w.String())
	if a.out != "" {
		return os.WriteFile(a.out, []byte(w.String()), 0o644)
	}
	return nil
}

// countOf groups strings by key and prints "a ×3, b ×1", most common first.
func countOf(ss []string, key func(string) string) string {
	n := map[string]int{}
	var keys []string
	for _, s := range ss {
		k := key(s)
		if n[k] == 0 {
			keys = append(keys, k)
		}
		n[k]++
	}
	slices.SortStableFunc(keys, func(a, b string) int { return n[b] - n[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

var (
	linkNoteRe    = regexp.MustCompile(`^link "([^"]*)"`)
	offeredNoteRe = regexp.MustCompile(`A offered ([a-z+]+), B offered ([a-z+]+)`)
	whyRe         = regexp.MustCompile(`limited relay \((.*?)\); what helps`)
)

func linkOfNote(s string) string {
	if m := linkNoteRe.FindStringSubmatch(s); m != nil && m[1] != "" {
		return "`" + m[1] + "`"
	}
	return "none"
}

func offeredOfNote(s string) string {
	if m := offeredNoteRe.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("A %s / B %s", m[1], m[2])
	}
	return "?"
}

func whyOfError(s string) string {
	if m := whyRe.FindStringSubmatch(s); m != nil {
		return "\"" + m[1] + "\""
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return "\"" + s + "\""
}

const natMethodText = `How these are measured (` + "`p2pbench nat`" + `, run by ` + "`scripts/nat-bench.sh`" + ` in the NAT lab of
` + "`scripts/nat-lab.sh`" + `, one lab per NAT combination): a node with ` + "`--relay-service on`" + ` listens on TCP and QUIC in the
lab's public host; publishers run in home A behind NAT A, bootstrap to it and wait for a relay reservation
(` + "`id`" + ` shows ` + "`relay reservations`" + `), then ` + "`share`" + ` prints the ticket. Each hole-punch attempt starts a fresh
fetcher in home B (new ` + "`--data`" + `: new peer ID, new NAT mapping; default listen addresses, TCP and QUIC), waits
for ` + "`wait peers 1`" + ` (the public node) and runs ` + "`get TICKET -o OUT`" + ` of a pseudo-random file; success is the
publisher's LINK in the fetcher's ` + "`peers --wide`" + ` being a punched ` + "`tcp`" + ` or ` + "`quic`" + ` connection (a limited relay
cannot carry the file, so a saved file implies it). Times come from the debug logs of both nodes (one
clock): the fetcher's first ` + "`dialing peer through relay`" + ` to the publisher (its DHT dials it through the relay
as soon as the public node names it, before the get), the last such dial before the direct connection
(the relayed connection whose DCUtR worked), and the first ` + "`hole punch successful`" + ` in either log.
Attempts run one at a time; the three NAT cases run side by side, each in its own lab, and the throughput
runs alone afterwards in a fourth. The public node and the publisher run with ` + "`--keepalive 1h`" + `: with the default
they keep dialling departed fetchers behind NAT B's one address, and those dials count against go-libp2p's
limit of 8 connections per IP address. Throughput: publishers and fetchers restricted to one
transport (` + "`--listen /ip4/0.0.0.0/tcp/0`" + ` or ` + "`/udp/0/quic-v1`" + `); the baseline fetcher runs in the publisher's own
namespace and connects to its LAN address (no NAT, no router: the kernel's local path), the other in home B
gets through the ticket; both first fetch a small file (untimed, so the punch is done), then the runs
alternate which goes first. Timed from writing ` + "`get`" + ` to its ` + "`saved ... verified`" + ` line; the file is read from
the page cache and written to disk.
`
