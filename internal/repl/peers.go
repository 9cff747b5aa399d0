package repl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/share"
)

type (
	shareEntry  = share.Entry
	shareRemote = share.Remote
)

func cmdPeers(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	refresh := fs.Bool("refresh", false, "ping every peer now before listing")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *refresh {
		c.r.d.Node.RefreshPeers(ctx)
	}
	list := c.r.d.Node.Peers().List()
	if len(list) == 0 {
		c.printf("no peers seen yet\n")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "PEER\tSTATE\tLAST SEEN\tRTT\tFOUND BY\tADDRESS")
	for _, p := range list {
		state, rtt, seen := "offline", "-", "never"
		if p.Online {
			state = "online"
		}
		if p.RTT > 0 {
			rtt = p.RTT.Round(10 * time.Microsecond).String()
		}
		if !p.LastSeen.IsZero() {
			seen = time.Since(p.LastSeen).Round(time.Second).String() + " ago"
		}
		addr := ""
		if len(p.Addrs) > 0 {
			addr = p.Addrs[0].String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, state, seen, rtt, p.Source, addr)
	}
	return tw.Flush()
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
	if len(pos) != 2 {
		return errors.New("usage: wait peers N | file NAME [--providers N] | gone NAME | online PEER | offline PEER [--timeout D]")
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
	case "online", "offline":
		id, err := peer.Decode(arg)
		if err != nil {
			return fmt.Errorf("bad peer ID %q: %w", arg, err)
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

// onlineProviders counts the online providers of the entries named name
// (or with that CID).
func onlineProviders(list []share.Remote, name string) int {
	n := 0
	for _, r := range list {
		if r.Name == name || r.CID.String() == name {
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
		if r.Name == name || r.CID.String() == name {
			return true
		}
	}
	return false
}

// Completions.

func localNames(r *REPL) []string {
	files, _ := r.d.Share.Files()
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

func publishedNames(r *REPL) []string {
	out := []string{"--all"}
	for _, e := range r.d.Share.Published() {
		out = append(out, e.Name)
	}
	return out
}

func remoteNames(r *REPL) []string {
	var out []string
	for _, e := range r.d.Share.Available() {
		out = append(out, e.Name, e.CID.String())
	}
	return out
}
