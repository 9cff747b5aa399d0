package repl

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/transfer"
)

// call is one running command.
type call struct {
	r    *REPL
	out  io.Writer
	name string
}

func (c *call) printf(format string, a ...any) { fmt.Fprintf(c.out, format, a...) }

// table returns a tabwriter over the output; Flush it when done.
func (c *call) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0) }

// flags returns a fresh FlagSet for this call: no state survives between
// commands.
func (c *call) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(c.out)
	return fs
}

type command struct {
	name     string
	aliases  []string
	usage    string
	help     string
	run      func(ctx context.Context, c *call, args []string) error
	complete func(r *REPL) []string
}

func commands() []*command {
	return []*command{
		{name: "files", aliases: []string{"myfiles"}, usage: "files", help: "list the share folder, with size and whether each file is published", run: cmdFiles},
		{name: "publish", aliases: []string{"upload"}, usage: "publish NAME...", help: "hash, record and announce files of the share folder; provide them on the DHT", run: cmdPublish, complete: localNames},
		{name: "published", usage: "published", help: "list what this node publishes", run: cmdPublished},
		{name: "unpublish", aliases: []string{"clear"}, usage: "unpublish NAME|CID... | --all", help: "stop serving and providing files, and announce the withdrawal", run: cmdUnpublish, complete: publishedNames},
		{name: "available", usage: "available", help: "list what other peers publish, with providers and whether they are online", run: cmdAvailable},
		{name: "search", usage: "search TEXT", help: "list what other peers publish whose name (or CID) contains TEXT", run: cmdSearch},
		{name: "get", aliases: []string{"getfile"}, usage: "get NAME|CID [-o PATH] [--from PEER]", help: "download a file from its providers, verified against its CID", run: cmdGet, complete: remoteNames},
		{name: "transfers", usage: "transfers", help: "list running and paused downloads", run: cmdTransfers},
		{name: "cancel", usage: "cancel CID", help: "stop a download and remove its partial data", run: cmdCancel},
		{name: "peers", usage: "peers [--refresh]", help: "list every peer ever seen: online or offline, last seen, round-trip time, how it was found", run: cmdPeers},
		{name: "id", usage: "id", help: "show this node's peer ID and listen addresses", run: cmdID},
		{name: "connect", usage: "connect MULTIADDR", help: "connect to a peer by address (for peers beyond the LAN)", run: cmdConnect},
		{name: "wait", usage: "wait peers N | file NAME [--providers N] | gone NAME | online PEER | offline PEER [--timeout D]", help: "wait until a condition holds (for scripts)", run: cmdWait},
		{name: "echo", usage: "echo TEXT...", help: "print TEXT (for scripts)", run: cmdEcho},
		{name: "help", usage: "help [COMMAND]", help: "list commands, or show one command's usage", run: cmdHelp},
		{name: "quit", aliases: []string{"exit"}, usage: "quit", help: "stop the node and leave", run: func(context.Context, *call, []string) error { return errQuit }},
	}
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q", strings.Join(args, " "))
	}
	return nil
}

func cmdHelp(_ context.Context, c *call, args []string) error {
	if len(args) > 0 {
		cmd, ok := c.r.byName[args[0]]
		if !ok {
			return fmt.Errorf("unknown command %q", args[0])
		}
		c.printf("usage: %s\n  %s\n", cmd.usage, cmd.help)
		if len(cmd.aliases) > 0 {
			c.printf("  also: %s\n", strings.Join(cmd.aliases, ", "))
		}
		return nil
	}
	tw := c.table()
	for _, cmd := range c.r.cmds {
		alias := ""
		if len(cmd.aliases) > 0 {
			alias = " [" + strings.Join(cmd.aliases, ", ") + "]"
		}
		fmt.Fprintf(tw, "%s%s\t%s\n", cmd.usage, alias, cmd.help)
	}
	return tw.Flush()
}

func cmdEcho(_ context.Context, c *call, args []string) error {
	c.printf("%s\n", strings.Join(args, " "))
	return nil
}

func cmdFiles(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	files, err := c.r.d.Share.Files()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		c.printf("share folder %s is empty\n", c.r.d.Share.ShareDir())
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tPUBLISHED\tCID")
	for _, f := range files {
		pub, id := "no", ""
		if f.Published {
			pub, id = "yes", f.CID.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, humanBytes(f.Size), pub, id)
	}
	return tw.Flush()
}

func cmdPublish(ctx context.Context, c *call, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: publish NAME...")
	}
	res, err := c.r.d.Share.Publish(ctx, args...)
	for _, p := range res {
		if p.Already {
			c.printf("already published: %s  %s (nothing changed)\n", p.Entry.Name, p.Entry.CID)
		} else {
			c.printf("published %s  %s  %s  sha256 %s\n", p.Entry.Name, humanBytes(p.Entry.Size), p.Entry.CID, hex.EncodeToString(p.Entry.SHA256[:]))
		}
	}
	return err
}

func cmdPublished(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	entries := c.r.d.Share.Published()
	if len(entries) == 0 {
		c.printf("nothing published\n")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tCID\tSHA256\tSINCE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, humanBytes(e.Size), e.CID, hex.EncodeToString(e.SHA256[:8])+"…", e.Published.Format(time.DateTime))
	}
	return tw.Flush()
}

func cmdUnpublish(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	all := fs.Bool("all", false, "withdraw every published file")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	var gone []shareEntry
	switch {
	case *all && len(pos) > 0:
		return errors.New("give names or --all, not both")
	case *all:
		gone, err = c.r.d.Share.UnpublishAll(ctx)
	case len(pos) == 0:
		return errors.New("usage: unpublish NAME|CID... | --all")
	default:
		gone, err = c.r.d.Share.Unpublish(ctx, pos...)
	}
	for _, e := range gone {
		c.printf("withdrawn %s  %s\n", e.Name, e.CID)
	}
	if err == nil && len(gone) == 0 {
		c.printf("nothing was published\n")
	}
	return err
}

func cmdAvailable(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	return c.printRemotes(c.r.d.Share.Available())
}

func cmdSearch(_ context.Context, c *call, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: search TEXT")
	}
	return c.printRemotes(c.r.d.Share.Search(strings.Join(args, " ")))
}

func (c *call) printRemotes(list []shareRemote) error {
	if len(list) == 0 {
		c.printf("nothing available\n")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tCID\tPROVIDERS")
	for _, r := range list {
		var ps []string
		for _, p := range r.Providers {
			state := "offline"
			if p.Online {
				state = "online"
			}
			ps = append(ps, p.ID.String()+" ("+state+")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, humanBytes(r.Size), r.CID, strings.Join(ps, ", "))
	}
	return tw.Flush()
}

func cmdGet(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	output := fs.String("o", "", "save to this path (must not exist)")
	var from []peer.ID
	fs.Func("from", "fetch only from this peer (repeatable)", func(s string) error {
		id, err := peer.Decode(s)
		if err != nil {
			return fmt.Errorf("bad peer ID %q: %w", s, err)
		}
		from = append(from, id)
		return nil
	})
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: get NAME|CID [-o PATH] [--from PEER]")
	}
	opt := transfer.GetOptions{Output: *output, From: from}
	rem, err := c.r.d.Share.ResolveFetch(pos[0])
	if err != nil {
		return err
	}
	id := rem.CID
	opt.Name = rem.Name
	bar := c.progress(id, opt.Name)
	opt.Progress = bar.update
	res, err := c.r.d.Transfer.Get(ctx, id, opt)
	bar.done()
	switch {
	case errors.Is(err, transfer.ErrPaused):
		why := ""
		if errors.Is(err, transfer.ErrNoProviders) {
			why = " (no provider was reachable)"
		}
		c.printf("paused%s: verified chunks are kept; get %s again to resume, or cancel %s\n", why, pos[0], id)
		return nil
	case err != nil:
		return err
	}
	for _, p := range res.Bad {
		c.printf("warning: peer %s sent data that failed verification and was dropped\n", p)
	}
	rate := float64(res.Size) / max(res.Duration.Seconds(), 1e-9)
	c.printf("saved %s  %s in %s (%s/s) from %d provider(s), sha256 %s verified\n",
		res.Path, humanBytes(res.Size), res.Duration.Round(time.Millisecond), humanBytes(int64(rate)), len(res.Providers), hex.EncodeToString(res.SHA256[:]))
	if res.Resumed > 0 {
		c.printf("resumed: %d chunk(s) were already here, %d fetched\n", res.Resumed, res.Fetched)
	}
	return nil
}

func cmdTransfers(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	list := c.r.d.Transfer.Transfers()
	if len(list) == 0 {
		c.printf("no transfers\n")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "CID\tNAME\tDONE\tRATE\tPROVIDERS\tSTATE")
	for _, t := range list {
		pct := 100.0
		if t.Total > 0 {
			pct = 100 * float64(t.Done) / float64(t.Total)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%s/s\t%d\t%s\n", t.CID, t.Name, pct, humanBytes(int64(t.Rate)), len(t.Providers), t.State)
	}
	return tw.Flush()
}

func cmdCancel(_ context.Context, c *call, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: cancel CID")
	}
	id, err := cid.Decode(args[0])
	if err != nil {
		return fmt.Errorf("bad CID %q: %w", args[0], err)
	}
	if err := c.r.d.Transfer.Cancel(id); err != nil {
		return err
	}
	c.printf("canceled %s, partial data removed\n", id)
	return nil
}

func cmdID(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	c.printf("peer ID: %s\n", c.r.d.Node.Host().ID())
	for _, a := range c.r.d.Node.Addrs() {
		c.printf("  %s\n", a)
	}
	return nil
}

func cmdConnect(ctx context.Context, c *call, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: connect MULTIADDR (ending in /p2p/PEERID)")
	}
	ma, err := multiaddr.NewMultiaddr(args[0])
	if err != nil {
		return fmt.Errorf("bad multiaddr %q: %w", args[0], err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id, err := c.r.d.Node.Connect(ctx, ma)
	if err != nil {
		return err
	}
	c.printf("connected to %s\n", id)
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
