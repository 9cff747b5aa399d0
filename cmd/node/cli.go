package main

// The command-line client: `p2pshare COMMAND [ARGS]` calls the API of the
// node running on the data folder (internal/client). Every command takes
// --json, which prints the API's answer (the types of internal/api, whose
// field names are stable) instead of text; the exit status is 1 on any
// error.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/term"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/client"
	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/repl"
	"github.com/p2pshare/p2pshare/internal/shortid"
)

type clientCommand struct {
	name, usage, help string
	run               func(ctx context.Context, cc *cli, args []string) error
}

func clientCommands() []clientCommand {
	return []clientCommand{
		{"files", "files", "list the share folder, with size and whether each file is published", cliFiles},
		{"publish", "publish NAME... [--to WHO[,...] | --public]", "hash, record and announce files and folders of the share folder; --to: only for those peers and groups", cliPublish},
		{"published", "published", "list what this node publishes", cliPublished},
		{"unpublish", "unpublish NAME|CID... | --all", "stop serving files and announce the withdrawal", cliUnpublish},
		{"available", "available", "list what other peers publish", cliAvailable},
		{"search", "search TEXT", "list what other peers publish whose name (or CID) contains TEXT", cliSearch},
		{"get", "get NAME|CID|TICKET [-o PATH|FOLDER] [--from PEER] [--wait]", "start a download in the node (it runs in the background; --wait follows it to the end)", cliGet},
		{"transfers", "transfers", "list queued, running and paused downloads", cliTransfers},
		{"cancel", "cancel CID|JOB", "stop a download and remove its partial data", cliCancel},
		{"peers", "peers [--refresh]", "list every peer seen: online or offline, last seen, round-trip time", cliPeers},
		{"id", "id", "show the node's peer ID, reachability and addresses", cliID},
		{"share", "share NAME|CID", "print a ticket for a published file", cliShare},
		{"connect", "connect MULTIADDR", "connect to a peer by address", cliConnect},
		{"ui", "ui [--open]", "print a one-time link (valid 2 minutes) that logs a browser into the web UI; --open opens it", cliUI},
	}
}

func findClientCommand(name string) (clientCommand, bool) {
	for _, c := range clientCommands() {
		if c.name == name {
			return c, true
		}
	}
	return clientCommand{}, false
}

// cli is one run of a client command.
type cli struct {
	data    string
	json    bool
	out     io.Writer
	errOut  io.Writer
	tty     bool // out is a terminal: progress is drawn
	c       *client.Client
	printed bool // --json: the answer (maybe with an error) is printed
}

// runClient runs one client command against the node on dataDir.
func runClient(dataDir string, args []string, stdout, stderr *os.File) error {
	cmd, ok := findClientCommand(args[0])
	if !ok {
		return fmt.Errorf("unknown command %q (p2pshare help lists the commands)", args[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cc := &cli{data: dataDir, out: stdout, errOut: stderr, tty: term.IsTerminal(int(stdout.Fd()))}
	err := cmd.run(ctx, cc, args[1:])
	if err != nil && cc.json && !cc.printed {
		cc.printJSON(api.Error{Error: err.Error()})
	}
	var ae *client.Error
	if err != nil && !errors.Is(err, client.ErrNoNode) && !errors.Is(err, errUsage) && !errors.As(err, &ae) {
		err = fmt.Errorf("%s: %w", cmd.name, err)
	}
	return err
}

// errUsage marks wrong arguments.
var errUsage = errors.New("usage")

func usageError(usage string) error { return fmt.Errorf("%w: p2pshare %s", errUsage, usage) }

// flags is a FlagSet for a command with the flags every command has.
func (cc *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&cc.json, "json", false, "print the answer as JSON")
	fs.StringVar(&cc.data, "data", cc.data, "data folder of the node to talk to")
	return fs
}

// parse parses args and connects to the node. It checks the count of
// positional arguments: at least lo, at most hi (-1: any).
func (cc *cli) parse(fs *flag.FlagSet, args []string, lo, hi int, usage string) ([]string, error) {
	pos, err := repl.ParseInterleaved(fs, args)
	if err != nil {
		return nil, fmt.Errorf("%w (usage: p2pshare %s)", err, usage)
	}
	if len(pos) < lo || (hi >= 0 && len(pos) > hi) {
		return nil, usageError(usage)
	}
	cc.c, err = client.Open(cc.data)
	return pos, err
}

// call makes one API call. With --json the answer is printed as it came;
// otherwise it is decoded into out for the text output.
func (cc *cli) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var raw json.RawMessage
	err := cc.c.Call(ctx, method, path, q, body, &raw)
	var ae *client.Error
	if cc.json && len(raw) > 0 && (err == nil || errors.As(err, &ae)) {
		cc.printJSON(raw)
	}
	if err != nil {
		if len(raw) > 0 && out != nil {
			json.Unmarshal(raw, out)
		}
		return err
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (cc *cli) printJSON(v any) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		raw, _ = json.Marshal(v)
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		b.Reset()
		b.Write(raw)
	}
	b.WriteByte('\n')
	cc.out.Write(b.Bytes())
	cc.printed = true
}

func (cc *cli) printf(format string, a ...any) {
	if !cc.json {
		fmt.Fprintf(cc.out, format, a...)
	}
}

func (cc *cli) table() *tabwriter.Writer { return tabwriter.NewWriter(cc.out, 0, 4, 2, ' ', 0) }

// shortIDs cuts IDs (CIDs, peer IDs) as the prompt's tables do (see
// internal/shortid); the cut ID is accepted back by every command. --wide
// is not needed: --json gives every ID in full.
func shortIDs(ids []string, min int) func(string) string {
	return shortid.Shortener(ids, min, false)
}

func cliFiles(ctx context.Context, cc *cli, args []string) error {
	if _, err := cc.parse(cc.flags("files"), args, 0, 0, "files"); err != nil {
		return err
	}
	var files []api.LocalFile
	if err := cc.call(ctx, http.MethodGet, "/api/v1/files", nil, nil, &files); err != nil || cc.json {
		return err
	}
	if len(files) == 0 {
		cc.printf("the share folder is empty\n")
		return nil
	}
	var ids []string
	for _, f := range files {
		ids = append(ids, f.CID)
	}
	short := shortIDs(ids, 12)
	tw := cc.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tPUBLISHED\tCID")
	for _, f := range files {
		pub := "no"
		switch {
		case f.Changed:
			pub = "changed (publish again)"
		case f.Published:
			pub = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", repl.TermSafe(f.Name), repl.HumanBytes(f.Size), pub, short(f.CID))
	}
	return tw.Flush()
}

func cliPublish(ctx context.Context, cc *cli, args []string) error {
	const usage = "publish NAME... [--to WHO[,...] | --public]"
	fs := cc.flags("publish")
	to := fs.String("to", "", "only these see and may fetch what is published: peers (names, peer IDs or unique prefixes) and groups, comma separated")
	public := fs.Bool("public", false, "everyone sees and may fetch what is published (the default for a new file)")
	names, err := cc.parse(fs, args, 1, -1, usage)
	if err != nil {
		return err
	}
	req := api.PublishRequest{Names: names, Public: *public}
	if *public && *to != "" {
		return fmt.Errorf("%w: give --to or --public, not both (p2pshare %s)", errUsage, usage)
	}
	var peers []api.Peer
	if *to != "" || !cc.json {
		// To resolve --to's names, and to show who an entry is for.
		if err := cc.c.Call(ctx, http.MethodGet, "/api/v1/peers", nil, nil, &peers); err != nil {
			return err
		}
	}
	if *to != "" {
		if req.To, err = resolveAudience(*to, peers); err != nil {
			return err
		}
	}
	var res api.Published
	err = cc.call(ctx, http.MethodPost, "/api/v1/publish", nil, req, &res)
	for _, p := range res.Files {
		name := repl.TermSafe(p.Name)
		if p.Folder {
			name += "/"
		}
		switch {
		case p.Retargeted:
			cc.printf("%s  %s now for: %s\n", name, p.CID, audienceText(p.Entry, peers))
		case p.Already:
			cc.printf("already published: %s  %s (nothing changed)\n", name, p.CID)
		case p.Folder:
			cc.printf("published folder %s  %s  %s  (%d files)\n", name, repl.HumanBytes(p.Size), p.CID, p.Files)
		default:
			cc.printf("published %s  %s  %s  sha256 %s\n", name, repl.HumanBytes(p.Size), p.CID, p.SHA256)
		}
		if !p.Already && len(p.ToPeers)+len(p.ToGroups) > 0 {
			cc.printf("  only for: %s\n", audienceText(p.Entry, peers))
		}
	}
	return err
}

// resolveAudience reads the words of --to (comma separated) as the API's
// "to" takes them, full peer IDs and group names, with the peers the node
// knows (GET /api/v1/peers): a word is a peer's name (the node's nick for
// it), a group some peer is in, or a full peer ID or the unique prefix of
// a known one, in that order, as at the prompt. Any other word (but one
// that looks like a peer ID) is passed on as the name of a group (one
// with no members yet): the answer shows it as such.
func resolveAudience(list string, peers []api.Peer) ([]string, error) {
	var ids []peer.ID
	for _, p := range peers {
		if id, err := peer.Decode(p.PeerID); err == nil {
			ids = append(ids, id)
		}
	}
	var out []string
	for _, w := range strings.Split(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		var nick, group []string
		for _, p := range peers {
			if p.Nick != "" && strings.EqualFold(p.Nick, w) {
				nick = append(nick, p.PeerID)
			}
			for _, g := range p.Groups {
				if strings.EqualFold(g, w) && !slices.Contains(group, g) {
					group = append(group, g)
				}
			}
		}
		switch {
		case len(nick) == 1:
			out = append(out, nick[0])
		case len(nick) > 1:
			return nil, fmt.Errorf("--to %s: %d peers have that name; give a peer ID", w, len(nick))
		case len(group) == 1:
			out = append(out, group[0])
		default:
			id, err := people.ResolveID(w, ids)
			switch {
			case err == nil:
				out = append(out, id.String())
			case shortid.IsAmbiguous(err):
				return nil, fmt.Errorf("--to %s: %w", w, err)
			case strings.HasPrefix(w, "12D3Koo") || strings.HasPrefix(w, "Qm"):
				// Meant as a peer ID, not a group.
				return nil, fmt.Errorf("--to %s: no known peer ID starts with it (give the whole ID of a peer the node has not met)", w)
			default:
				out = append(out, w)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--to names no one")
	}
	return out, nil
}

// audienceText is who e is for: peers by the node's name for them, or
// their short ID, and groups.
func audienceText(e api.Entry, peers []api.Peer) string {
	if len(e.ToPeers)+len(e.ToGroups) == 0 {
		return "everyone"
	}
	nicks := make(map[string]string)
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.PeerID)
		if p.Nick != "" {
			nicks[p.PeerID] = p.Nick
		}
	}
	short := shortIDs(append(ids, e.ToPeers...), 12)
	var parts []string
	for _, id := range e.ToPeers {
		if n, ok := nicks[id]; ok {
			parts = append(parts, repl.TermSafe(n)+" ("+short(id)+")")
		} else {
			parts = append(parts, short(id))
		}
	}
	for _, g := range e.ToGroups {
		parts = append(parts, "group "+repl.TermSafe(g))
	}
	return strings.Join(parts, ", ")
}

func cliPublished(ctx context.Context, cc *cli, args []string) error {
	if _, err := cc.parse(cc.flags("published"), args, 0, 0, "published"); err != nil {
		return err
	}
	var list []api.Entry
	if err := cc.call(ctx, http.MethodGet, "/api/v1/published", nil, nil, &list); err != nil || cc.json {
		return err
	}
	if len(list) == 0 {
		cc.printf("nothing published\n")
		return nil
	}
	var ids []string
	for _, e := range list {
		ids = append(ids, e.CID)
	}
	short := shortIDs(ids, 12)
	tw := cc.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tCID\tSINCE")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", repl.TermSafe(e.Name), repl.HumanBytes(e.Size), short(e.CID), e.PublishedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func cliUnpublish(ctx context.Context, cc *cli, args []string) error {
	fs := cc.flags("unpublish")
	all := fs.Bool("all", false, "withdraw every published file")
	const usage = "unpublish NAME|CID... | --all"
	pos, err := cc.parse(fs, args, 0, -1, usage)
	if err != nil {
		return err
	}
	if *all == (len(pos) > 0) {
		return usageError(usage)
	}
	var res api.Published
	err = cc.call(ctx, http.MethodPost, "/api/v1/unpublish", nil, api.UnpublishRequest{Names: pos, All: *all}, &res)
	for _, p := range res.Files {
		cc.printf("withdrawn %s  %s\n", repl.TermSafe(p.Name), p.CID)
	}
	if err == nil && len(res.Files) == 0 {
		cc.printf("nothing was published\n")
	}
	return err
}

func cliAvailable(ctx context.Context, cc *cli, args []string) error {
	if _, err := cc.parse(cc.flags("available"), args, 0, 0, "available"); err != nil {
		return err
	}
	return cc.remotes(ctx, nil)
}

func cliSearch(ctx context.Context, cc *cli, args []string) error {
	pos, err := cc.parse(cc.flags("search"), args, 1, -1, "search TEXT")
	if err != nil {
		return err
	}
	return cc.remotes(ctx, url.Values{"q": {strings.Join(pos, " ")}})
}

// remotes prints available (q nil) or a search.
func (cc *cli) remotes(ctx context.Context, q url.Values) error {
	path := "/api/v1/available"
	if q != nil {
		path = "/api/v1/search"
	}
	var list []api.Remote
	if err := cc.call(ctx, http.MethodGet, path, q, nil, &list); err != nil || cc.json {
		return err
	}
	if len(list) == 0 {
		cc.printf("nothing available\n")
		return nil
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.CID)
	}
	short := shortIDs(ids, 12)
	tw := cc.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tCID\tPROVIDERS")
	for _, r := range list {
		online := 0
		for _, p := range r.Providers {
			if p.Online {
				online++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d (%d online)\n", repl.TermSafe(r.Name), repl.HumanBytes(r.Size), short(r.CID), len(r.Providers), online)
	}
	return tw.Flush()
}

func cliGet(ctx context.Context, cc *cli, args []string) error {
	fs := cc.flags("get")
	output := fs.String("o", "", "save to this path, or into this folder (never overwrites)")
	wait := fs.Bool("wait", false, "wait until the download ends; progress on a terminal")
	var from []string
	fs.Func("from", "fetch only from this peer (repeatable)", func(s string) error {
		from = append(from, s)
		return nil
	})
	const usage = "get NAME|CID|TICKET [-o PATH|FOLDER] [--from PEER] [--wait]"
	pos, err := cc.parse(fs, args, 1, 1, usage)
	if err != nil {
		return err
	}
	req := api.GetRequest{Target: pos[0], From: from}
	if *output != "" {
		// The node's working folder is not ours.
		if req.Output, err = filepath.Abs(*output); err != nil {
			return err
		}
	}
	if !*wait {
		var j api.Job
		if err := cc.call(ctx, http.MethodPost, "/api/v1/get", nil, req, &j); err != nil {
			return err
		}
		cc.printf("job %s: %s %s (%s); p2pshare transfers follows it, p2pshare cancel %s stops it\n", j.ID, repl.TermSafe(j.Name), j.State, j.CID, j.ID)
		return nil
	}
	// Subscribe first, so no event of the job is missed.
	es, err := cc.c.Events(ctx)
	if err != nil {
		return err
	}
	defer func() { es.Close() }()
	var j api.Job
	if err := cc.c.Call(ctx, http.MethodPost, "/api/v1/get", nil, req, &j); err != nil {
		if cc.json {
			cc.printJSON(api.Error{Error: err.Error()})
		}
		return err
	}
	bar := &progressLine{cc: cc}
	for !j.Finished() {
		ev, err := es.Next()
		if err != nil {
			if ctx.Err() != nil {
				bar.clear()
				fmt.Fprintf(cc.errOut, "stopped waiting: the download goes on in the node (p2pshare cancel %s stops it)\n", j.ID)
				return ctx.Err()
			}
			// The stream ended (this client fell behind, say): open
			// another, then read the job's state, which may have ended.
			es.Close()
			if es, err = cc.c.Events(ctx); err != nil {
				return err
			}
			if err := cc.c.Call(ctx, http.MethodGet, "/api/v1/gets/"+j.ID, nil, nil, &j); err != nil {
				return err
			}
			continue
		}
		if ev.Name != api.EventTransfer {
			continue
		}
		var u api.Job
		if json.Unmarshal(ev.Data, &u) == nil && u.ID == j.ID {
			j = u
			bar.draw(j)
		}
	}
	bar.clear()
	if cc.json {
		cc.printJSON(j)
	}
	if j.State != api.JobDone {
		return fmt.Errorf("%s %s: %s", repl.TermSafe(j.Name), j.State, j.Error)
	}
	rate := float64(j.Size) / max(j.DurationMS/1000, 1e-3)
	cc.printf("saved %s  %s in %s (%s/s), every chunk verified against its CID\n", j.Path, repl.HumanBytes(j.Size),
		(time.Duration(j.DurationMS) * time.Millisecond).Round(time.Millisecond), repl.HumanBytes(int64(rate)))
	for _, p := range j.BadPeers {
		cc.printf("warning: peer %s sent data that failed verification and was dropped\n", p)
	}
	return nil
}

// progressLine draws a download's progress on one terminal line.
type progressLine struct {
	cc    *cli
	last  time.Time
	drawn bool
}

func (p *progressLine) draw(j api.Job) {
	if !p.cc.tty || p.cc.json || j.Finished() || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	pct := 0.0
	if j.Size > 0 {
		pct = 100 * float64(j.Done) / float64(j.Size)
	}
	what := fmt.Sprintf("%d provider(s)", j.Providers)
	switch j.State {
	case api.JobQueued:
		what = "queued behind other downloads"
	case api.JobWaiting:
		what = "waiting for providers"
	}
	name := []rune(repl.TermSafe(j.Name))
	if len(name) > 24 {
		name = append(name[:23], '…')
	}
	const width = 20
	fill := int(pct / 100 * width)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(p.cc.out, "\r\033[K%s [%s] %s / %s  %.1f%%  %s/s  %s", string(name), bar, repl.HumanBytes(j.Done), repl.HumanBytes(j.Size), pct, repl.HumanBytes(int64(j.Rate)), what)
	p.drawn = true
}

func (p *progressLine) clear() {
	if p.drawn {
		fmt.Fprint(p.cc.out, "\r\033[K")
		p.drawn = false
	}
}

func cliTransfers(ctx context.Context, cc *cli, args []string) error {
	if _, err := cc.parse(cc.flags("transfers"), args, 0, 0, "transfers"); err != nil {
		return err
	}
	var list []api.Transfer
	if err := cc.call(ctx, http.MethodGet, "/api/v1/transfers", nil, nil, &list); err != nil || cc.json {
		return err
	}
	if len(list) == 0 {
		cc.printf("no transfers\n")
		return nil
	}
	var ids []string
	for _, t := range list {
		ids = append(ids, t.CID)
	}
	short := shortIDs(ids, 12)
	tw := cc.table()
	fmt.Fprintln(tw, "JOB\tCID\tNAME\tDONE\tRATE\tPROVIDERS\tSTATE")
	for _, t := range list {
		pct := 0.0
		if t.Size > 0 {
			pct = 100 * float64(t.Done) / float64(t.Size)
		}
		job := t.Job
		if job == "" {
			job = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s/s\t%d\t%s\n", job, short(t.CID), repl.TermSafe(t.Name), pct, repl.HumanBytes(int64(t.Rate)), len(t.Providers), t.State)
	}
	return tw.Flush()
}

func cliCancel(ctx context.Context, cc *cli, args []string) error {
	pos, err := cc.parse(cc.flags("cancel"), args, 1, 1, "cancel CID|JOB")
	if err != nil {
		return err
	}
	var res api.Canceled
	if err := cc.call(ctx, http.MethodPost, "/api/v1/cancel", nil, api.CancelRequest{Target: pos[0]}, &res); err != nil {
		return err
	}
	cc.printf("canceled %s, partial data removed\n", res.CID)
	return nil
}

func cliPeers(ctx context.Context, cc *cli, args []string) error {
	fs := cc.flags("peers")
	refresh := fs.Bool("refresh", false, "ping every peer now before listing")
	if _, err := cc.parse(fs, args, 0, 0, "peers [--refresh]"); err != nil {
		return err
	}
	method, path := http.MethodGet, "/api/v1/peers"
	if *refresh {
		method, path = http.MethodPost, "/api/v1/peers/refresh"
	}
	var list []api.Peer
	if err := cc.call(ctx, method, path, nil, nil, &list); err != nil || cc.json {
		return err
	}
	if len(list) == 0 {
		cc.printf("no peers seen yet\n")
		return nil
	}
	var ids []string
	for _, p := range list {
		ids = append(ids, p.PeerID)
	}
	short := shortIDs(ids, 12)
	tw := cc.table()
	fmt.Fprintln(tw, "PEER\tSTATE\tLAST SEEN\tRTT\tLINK\tFOUND BY")
	for _, p := range list {
		state, seen, rtt, link := "offline", "never", "-", p.Link
		if p.Online {
			state = "online"
		}
		if p.Blocked {
			state = "blocked"
		}
		if p.LastSeen != nil {
			seen = repl.Ago(time.Since(*p.LastSeen))
		}
		if p.RTTMillis > 0 {
			rtt = fmt.Sprintf("%.3gms", p.RTTMillis)
		}
		if link == "" {
			link = "-"
		}
		label := short(p.PeerID)
		if p.Nick != "" {
			label = repl.TermSafe(p.Nick) + " (" + label + ")"
		}
		if p.Says != "" && p.Says != p.Nick {
			label += " (says: " + repl.TermSafe(p.Says) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", label, state, seen, rtt, link, p.Source)
	}
	return tw.Flush()
}

func cliID(ctx context.Context, cc *cli, args []string) error {
	if _, err := cc.parse(cc.flags("id"), args, 0, 0, "id"); err != nil {
		return err
	}
	var id api.ID
	if err := cc.call(ctx, http.MethodGet, "/api/v1/id", nil, nil, &id); err != nil || cc.json {
		return err
	}
	cc.printf("peer ID: %s\n", id.PeerID)
	cc.printf("reachability: %s (relay service: %s)\n", id.Reachability, id.RelayService)
	if id.Reservations > 0 {
		cc.printf("relay reservations: %d\n", id.Reservations)
	}
	if len(id.PublicAddrs) > 0 {
		cc.printf("public addresses:\n")
		for _, a := range id.PublicAddrs {
			cc.printf("  %s\n", repl.TermSafe(a))
		}
	}
	cc.printf("addresses:\n")
	for _, a := range id.Addrs {
		cc.printf("  %s\n", repl.TermSafe(a))
	}
	return nil
}

func cliShare(ctx context.Context, cc *cli, args []string) error {
	pos, err := cc.parse(cc.flags("share"), args, 1, 1, "share NAME|CID")
	if err != nil {
		return err
	}
	var t api.Ticket
	if err := cc.call(ctx, http.MethodGet, "/api/v1/share", url.Values{"file": {pos[0]}}, nil, &t); err != nil || cc.json {
		return err
	}
	cc.printf("%s\n", t.Ticket)
	if t.Note != "" {
		fmt.Fprintf(cc.errOut, "note: %s\n", t.Note)
	}
	return nil
}

func cliConnect(ctx context.Context, cc *cli, args []string) error {
	pos, err := cc.parse(cc.flags("connect"), args, 1, 1, "connect MULTIADDR")
	if err != nil {
		return err
	}
	var res api.Connected
	if err := cc.call(ctx, http.MethodPost, "/api/v1/connect", nil, api.ConnectRequest{Addr: pos[0]}, &res); err != nil {
		return err
	}
	cc.printf("connected to %s\n", res.PeerID)
	return nil
}

func cliUI(ctx context.Context, cc *cli, args []string) error {
	fs := cc.flags("ui")
	open := fs.Bool("open", false, "open the link in the default browser")
	if _, err := cc.parse(fs, args, 0, 0, "ui [--open]"); err != nil {
		return err
	}
	var link api.LoginLink
	if err := cc.call(ctx, http.MethodPost, "/api/v1/login-link", nil, nil, &link); err != nil || cc.json {
		return err
	}
	cc.printf("%s\n", link.URL)
	fmt.Fprintf(cc.errOut, "open this link in your browser within %v; it works once\n", api.LoginLinkTTL)
	if *open {
		if err := openBrowser(link.URL); err != nil {
			return fmt.Errorf("open the browser: %w (open the link above yourself)", err)
		}
	}
	return nil
}

// openBrowser hands url to the desktop's opener.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	case "darwin":
		cmd = exec.Command("open", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
