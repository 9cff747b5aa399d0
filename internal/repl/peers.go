package repl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/share"
)

type (
	shareEntry  = share.Entry
	shareRemote = share.Remote
)

func cmdPeers(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	refresh := fs.Bool("refresh", false, "ping every peer now before listing")
	wide := fs.Bool("wide", false, "print peer IDs in full")
	asJSON := fs.Bool("json", false, "print the peers as JSON, as the local API answers GET /api/v1/peers")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *refresh {
		c.r.d.Node.RefreshPeers(ctx)
	}
	if *asJSON {
		return c.printJSON(api.Peers(c.r.d.Node, c.r.d.People))
	}
	list := c.r.d.Node.Peers().List()
	if len(list) == 0 {
		c.printf("no peers seen yet\n")
		return nil
	}
	short := c.peerFmt(*wide)
	tw := c.table()
	fmt.Fprintln(tw, "PEER\tSTATE\tLAST SEEN\tRTT\tLINK\tFOUND BY\tADDRESS")
	for _, p := range list {
		state, rtt, seen := "offline", "-", "never"
		if p.Online {
			state = "online"
		}
		if p.RTT > 0 {
			rtt = roundRTT(p.RTT).String()
		}
		if !p.LastSeen.IsZero() {
			seen = ago(time.Since(p.LastSeen))
		}
		addr := ""
		if len(p.Addrs) > 0 {
			addr = termSafe(p.Addrs[0].String())
		}
		if c.r.d.People != nil && c.r.d.People.Blocked(p.ID) {
			state = "blocked"
		}
		label := short(p.ID)
		if says := c.saysOf(p.ID); says != "" {
			label += " " + says
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, state, seen, rtt, c.linkOf(p.ID), p.Source, addr)
	}
	return tw.Flush()
}

// roundRTT keeps three significant digits: 1.23ms, 45.6µs, 123ms.
func roundRTT(d time.Duration) time.Duration {
	unit := time.Nanosecond
	for v := d; v >= 1000; v /= 10 {
		unit *= 10
	}
	return d.Round(unit)
}

// ago says how long ago in its largest unit: 5s ago, 3m ago, 2h ago, 4d ago.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// cmdWait blocks until a condition holds or its timeout passes, polling
// the node's state. It lets scripts (the demo, tests) synchronise on
// events instead of sleeping.
func cmdWait(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	providers := fs.Int("providers", 1, "with file: at least this many online providers")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be more than 0", *timeout)
	}
	if *providers < 1 {
		return fmt.Errorf("--providers %d: must be at least 1", *providers)
	}
	if len(pos) != 2 {
		return errors.New("usage: wait peers N | file NAME [--providers N] | gone NAME | online PEER | offline PEER | relay N | reachability public|private [--timeout D]")
	}
	what, arg := pos[0], pos[1]
	var cond func() bool
	switch what {
	case "peers":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 {
			return fmt.Errorf("bad peer count %q", arg)
		}
		cond = func() bool { return countOnline(c) >= n }
	case "file":
		cond = func() bool { return onlineProviders(c.r.d.Share.Available(), arg) >= *providers }
	case "gone":
		cond = func() bool { return !hasName(c.r.d.Share.Available(), arg) }
	case "relay":
		// Relay reservations: a node behind NAT is reachable from beyond
		// its LAN once it has one (its ticket then carries relay addresses).
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			return fmt.Errorf("bad reservation count %q", arg)
		}
		cond = func() bool { return c.r.d.Node.Reservations() >= n }
	case "reachability":
		if arg != "public" && arg != "private" {
			return fmt.Errorf("wait reachability public|private, not %q", arg)
		}
		cond = func() bool { return strings.HasPrefix(reachName(c.r.d.Node.Reachability()), arg) }
	case "online", "offline":
		id, err := c.r.resolvePeer(arg)
		if err != nil {
			return err
		}
		want := what == "online"
		cond = func() bool {
			for _, p := range c.r.d.Node.Peers().List() {
				if p.ID == id {
					return p.Online == want
				}
			}
			return false
		}
	default:
		return fmt.Errorf("cannot wait for %q", what)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err() // Ctrl-C: reported as canceled
			}
			return fmt.Errorf("%s %s: not after %s", what, arg, *timeout)
		case <-tick.C:
		}
	}
	c.printf("ok: %s %s (after %s)\n", what, arg, time.Since(start).Round(time.Millisecond))
	return nil
}

func countOnline(c *call) int {
	n := 0
	for _, p := range c.r.d.Node.Peers().List() {
		if p.Online {
			n++
		}
	}
	return n
}

// isNamed reports whether r is named arg: its name, its CID, or a prefix of
// its CID (as tables print it, at least minShortCID characters).
func isNamed(r share.Remote, arg string) bool {
	id := r.CID.String()
	return r.Name == arg || id == arg || len(arg) >= minShortCID && strings.HasPrefix(id, arg)
}

// onlineProviders counts the online providers of the entries named name
// (see isNamed).
func onlineProviders(list []share.Remote, name string) int {
	n := 0
	for _, r := range list {
		if isNamed(r, name) {
			for _, p := range r.Providers {
				if p.Online {
					n++
				}
			}
		}
	}
	return n
}

func hasName(list []share.Remote, name string) bool {
	for _, r := range list {
		if isNamed(r, name) {
			return true
		}
	}
	return false
}

// Completions.

func commandNames(r *REPL, args []string, _ string) []string {
	if len(args) > 0 {
		return nil
	}
	var out []string
	for _, c := range r.cmds {
		out = append(out, c.name)
	}
	slices.Sort(out)
	return out
}

func localNames(r *REPL, _ []string, _ string) []string {
	files, _ := r.d.Share.Files()
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	slices.Sort(out)
	return out
}

func publishedNames(r *REPL, _ []string, _ string) []string {
	var out []string
	for _, e := range r.d.Share.Published() {
		out = append(out, e.Names()...)
	}
	slices.Sort(out)
	return append(out, "--all")
}

// remoteNames completes get: names others publish, and their CIDs only
// once the word looks like one (with CIDs offered too, a name would be
// lost among 59-character strings). After -o nothing is offered; after
// --from, peers.
func remoteNames(r *REPL, args []string, partial string) []string {
	if len(args) > 0 {
		switch args[len(args)-1] {
		case "-o":
			return nil
		case "--from":
			return peerWords(r, nil, "")
		}
	}
	var names, cids []string
	for _, e := range r.d.Share.Available() {
		names = append(names, e.Names()...)
		cids = append(cids, e.CID.String())
	}
	return getCandidates(names, cids, partial)
}

// getCandidates orders get's candidates: names, sorted, then, when partial
// looks like the start of a CID, CIDs.
func getCandidates(names, cids []string, partial string) []string {
	slices.Sort(names)
	out := slices.Compact(names)
	if looksLikeCID(partial) {
		slices.Sort(cids)
		out = append(out, slices.Compact(cids)...)
	}
	return out
}

// looksLikeCID: every CID p2pshare makes starts "bafk" (CIDv1, raw, base32).
func looksLikeCID(s string) bool { return strings.HasPrefix(s, "bafk") }

func transferCIDs(r *REPL, args []string, _ string) []string {
	if len(args) > 0 {
		return nil
	}
	var out []string
	for _, t := range r.d.Transfer.Transfers() {
		out = append(out, t.CID.String())
	}
	slices.Sort(out)
	return out
}
