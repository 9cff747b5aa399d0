package repl

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/shortid"
	"github.com/p2pshare/p2pshare/internal/target"
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
	name    string
	aliases []string
	usage   string
	help    string
	run     func(ctx context.Context, c *call, args []string) error
	// complete lists the candidates for the word being typed (partial),
	// after args, in the order to offer them.
	complete func(r *REPL, args []string, partial string) []string
}

func commands() []*command {
	return []*command{
		{name: "files", aliases: []string{"myfiles"}, usage: "files [--wide]", help: "list the share folder (files and folders), with size and whether each is published", run: cmdFiles},
		{name: "publish", aliases: []string{"upload"}, usage: "publish NAME|FOLDER|PATTERN... [--to PEER|GROUP[,...] | --public]", help: "hash, record and announce files or folders of the share folder ('*.jpg' matches its names); provide them on the DHT. --to (files only): only those peers (and members of those groups) see and may fetch them, they are told directly and nothing goes on the DHT; again on a published file, changes who (the others drop it, running downloads stop); --public: everyone again", run: cmdPublish, complete: localNames},
		{name: "published", usage: "published [--wide] [--json]", help: "list what this node publishes, and to whom", run: cmdPublished},
		{name: "unpublish", aliases: []string{"clear"}, usage: "unpublish NAME|FOLDER|CID... | --all", help: "stop serving and providing files or folders (with the files published only through them), and announce the withdrawal", run: cmdUnpublish, complete: publishedNames},
		{name: "available", usage: "available [--wide] [--json]", help: "list what other peers publish, with providers and whether they are online", run: cmdAvailable},
		{name: "search", usage: "search TEXT [--wide]", help: "list what other peers publish whose name (or CID) contains TEXT", run: cmdSearch},
		{name: "get", aliases: []string{"getfile"}, usage: "get NAME|CID|TICKET [-o PATH|FOLDER] [--only PATTERN]... [--from PEER] [--again] [--bg]", help: "download a file or a folder from its providers (a ticket's publisher first), verified against its CID; never overwrites; --only picks part of a folder; one already downloaded and unchanged is not fetched again (it says where it is) unless --again", run: cmdGet, complete: remoteNames},
		{name: "ls", usage: "ls FOLDER|CID", help: "list the files and empty folders of a published folder without downloading it", run: cmdLs, complete: remoteNames},
		{name: "transfers", usage: "transfers [--wide]", help: "list running and paused downloads", run: cmdTransfers},
		{name: "cancel", usage: "cancel CID", help: "stop a download and remove its partial data", run: cmdCancel, complete: transferCIDs},
		{name: "peers", usage: "peers [--refresh] [--wide] [--json]", help: "list every peer ever seen, by its name if it has one: online, offline or blocked, last seen, round-trip time, how it was found; (says: NAME) is the name a peer gives itself, its claim only", run: cmdPeers},
		{name: "name", usage: "name PEER NICK", help: "give a peer a name on this node (yours only, never sent): every command that takes a peer then takes the name, and listings show it first. One word: a letter, then letters, digits, - _ . Names and groups share one namespace", run: cmdName, complete: peerWords},
		{name: "unname", usage: "unname NICK", help: "remove a name given with name", run: cmdUnname, complete: peerWords},
		{name: "block", usage: "block PEER", help: "refuse the peer's connections both ways, close the open ones and hide its files, until unblock (kept across restarts)", run: cmdBlock, complete: peerWords},
		{name: "unblock", usage: "unblock PEER", help: "let a blocked peer connect again", run: cmdUnblock, complete: peerWords},
		{name: "blocked", usage: "blocked [--wide]", help: "list the blocked peers", run: cmdBlocked},
		{name: "forget", usage: "forget PEER", help: "drop everything this node knows about a peer: its row in peers, its name, its groups, its files in available (a block stays: unblock lets it in). If it connects again it comes back as a stranger", run: cmdForget, complete: peerWords},
		{name: "group", usage: "group create NAME | add NAME PEER... | rm NAME PEER... | delete NAME", help: "make and change groups of peers (kept across restarts; a group cannot take a peer's name, nor a peer a group's)", run: cmdGroup, complete: groupWords},
		{name: "groups", usage: "groups [--wide] [--json]", help: "list the groups and their members", run: cmdGroups},
		{name: "id", usage: "id", help: "show this node's peer ID, reachability (public, private), relay reservations and addresses", run: cmdID},
		{name: "share", usage: "share NAME|CID", help: "print a ticket for a published file: one line that lets anyone get it, beyond the LAN too (get TICKET)", run: cmdShare, complete: publishedNames},
		{name: "connect", usage: "connect MULTIADDR", help: "connect to a peer by address (for peers beyond the LAN)", run: cmdConnect},
		{name: "invite", usage: "invite [--to GROUP] [--name NICK] [--ttl D] | --cancel CODE", help: "print a one-time code that lets someone who is not a peer yet become one (they run accept CODE); --to puts them in a group, --name names them", run: cmdInvite},
		{name: "accept", usage: "accept CODE [--name NICK]", help: "use an invitation code: meet the inviter (LAN, DHT or relay), prove both know the code, and become peers", run: cmdAccept},
		{name: "invites", usage: "invites [--wide]", help: "list this node's invitation codes: pending, used, expired", run: cmdInvites},
		{name: "wait", usage: "wait peers N | file NAME [--providers N] | gone NAME | online PEER | offline PEER | relay N | reachability public|private [--timeout D]", help: "wait until a condition holds (for scripts)", run: cmdWait},
		{name: "echo", usage: "echo TEXT...", help: "print TEXT (for scripts)", run: cmdEcho},
		{name: "version", usage: "version", help: "show the version of this build", run: cmdVersion},
		{name: "help", usage: "help [COMMAND]", help: "list commands, or show one command's usage", run: cmdHelp, complete: commandNames},
		{name: "quit", aliases: []string{"exit"}, usage: "quit", help: "stop the node and leave", run: func(context.Context, *call, []string) error { return errQuit }},
	}
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q", strings.Join(args, " "))
	}
	return nil
}

// listFlags parses the flags of a listing command: --wide, and no
// positional arguments unless positional is set.
func (c *call) listFlags(args []string, positional bool) (pos []string, wide bool, err error) {
	fs := c.flags()
	w := fs.Bool("wide", false, "print CIDs and peer IDs in full")
	pos, err = parseInterleaved(fs, args)
	if err == nil && !positional {
		err = noArgs(pos)
	}
	return pos, *w, err
}

func cmdHelp(_ context.Context, c *call, args []string) error {
	width := c.r.width()
	if len(args) > 0 {
		cmd, ok := c.r.byName[args[0]]
		if !ok {
			return fmt.Errorf("unknown command %q", args[0])
		}
		writeWrapped(c.out, "usage: "+cmd.usage, width, "", "       ")
		writeWrapped(c.out, cmd.help, width, "  ", "  ")
		if len(cmd.aliases) > 0 {
			c.printf("  also: %s\n", strings.Join(cmd.aliases, ", "))
		}
		return nil
	}
	// Two columns: usage, then help wrapped beside it. A usage too wide
	// for the first column gets a line of its own, its help below it.
	firsts := make([]string, len(c.r.cmds))
	col := 0
	maxCol := width / 3
	for i, cmd := range c.r.cmds {
		firsts[i] = cmd.usage
		if len(cmd.aliases) > 0 {
			firsts[i] += " [" + strings.Join(cmd.aliases, ", ") + "]"
		}
		if n := len([]rune(firsts[i])); n <= maxCol {
			col = max(col, n)
		}
	}
	indent := strings.Repeat(" ", col+2)
	for i, cmd := range c.r.cmds {
		first := firsts[i]
		if n := len([]rune(first)); n <= col {
			writeWrapped(c.out, cmd.help, width, first+strings.Repeat(" ", col+2-n), indent)
			continue
		}
		writeWrapped(c.out, first, width, "", "    ")
		writeWrapped(c.out, cmd.help, width, indent, indent)
	}
	return nil
}

// writeWrapped writes text wrapped at word boundaries to lines of at most
// width runes (a word longer than a line stands alone): the first line
// starts with first, the others with indent.
func writeWrapped(w io.Writer, text string, width int, first, indent string) {
	line, n := first, len([]rune(first))
	empty := true // nothing but the prefix on this line yet
	for _, word := range strings.Fields(text) {
		wl := len([]rune(word))
		if !empty && n+1+wl > width {
			fmt.Fprintln(w, line)
			line, n, empty = indent, len([]rune(indent)), true
		}
		if !empty {
			line += " "
			n++
		}
		line += word
		n += wl
		empty = false
	}
	fmt.Fprintln(w, line)
}

func cmdEcho(_ context.Context, c *call, args []string) error {
	c.printf("%s\n", strings.Join(args, " "))
	return nil
}

func cmdFiles(_ context.Context, c *call, args []string) error {
	_, wide, err := c.listFlags(args, false)
	if err != nil {
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
	short := c.cidFmt(wide)
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tPUBLISHED\tCID")
	for _, f := range files {
		pub, id := "no", ""
		if f.Published {
			pub, id = "yes", short(f.CID)
			if f.Changed {
				pub = "changed"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termSafe(entryName(f.Name, f.Folder, f.Files)), humanBytes(f.Size), pub, id)
	}
	return tw.Flush()
}

// entryName marks a folder: "photos/ (1,234 files)".
func entryName(name string, folder bool, files int) string {
	if !folder {
		return name
	}
	unit := "files"
	if files == 1 {
		unit = "file"
	}
	return fmt.Sprintf("%s/ (%s %s)", name, groupDigits(int64(files)), unit)
}

// groupDigits prints n with thousands separators: 1,234.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + groupDigits(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// maxPathsShown is how many paths a line about a folder names.
const maxPathsShown = 5

// somePaths names the first maxPathsShown paths, then counts the rest.
func somePaths(ps []string) string {
	var b strings.Builder
	for i, p := range ps {
		if i == maxPathsShown {
			fmt.Fprintf(&b, ", … %s more", groupDigits(int64(len(ps)-i)))
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(termSafe(p))
	}
	return b.String()
}

// printFolderResult says what publishing a folder did beyond its line.
func (c *call) printFolderResult(fr *share.FolderResult) {
	if n := len(fr.Skipped); n > 0 {
		ps := make([]string, n)
		for i, s := range fr.Skipped {
			ps[i] = s.Path + " (" + s.Why + ")"
		}
		c.printf("  left out %s: %s\n", groupDigits(int64(n)), somePaths(ps))
	}
	if ch := fr.Changes; ch != nil {
		var parts []string
		for _, x := range []struct {
			what string
			ps   []string
		}{{"added", ch.Added}, {"removed", ch.Removed}, {"modified", ch.Modified}} {
			if len(x.ps) > 0 {
				parts = append(parts, fmt.Sprintf("%s %s (%s)", groupDigits(int64(len(x.ps))), x.what, somePaths(x.ps)))
			}
		}
		if len(parts) == 0 {
			parts = []string{"only empty folders or modes"}
		}
		c.printf("  changed since %s: %s; that version is withdrawn\n", fr.Previous, strings.Join(parts, ", "))
	}
}

func cmdPublish(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	to := fs.String("to", "", "only these peers and groups, comma separated, see and may fetch the files")
	public := fs.Bool("public", false, "everyone sees and may fetch the files (the default for a new file)")
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("usage: publish NAME... [--to PEER|GROUP[,...] | --public]")
	}
	var opt share.PublishOptions
	switch {
	case *public && *to != "":
		return errors.New("give --to or --public, not both")
	case *public:
		opt.Audience = &share.Audience{}
	case *to != "":
		aud, err := c.audience(*to)
		if err != nil {
			return err
		}
		opt.Audience = &aud
	}
	res, err := c.r.d.Share.PublishWith(ctx, opt, names...)
	who := c.audienceFmt(false)
	for _, p := range res {
		if fr := p.Folder; fr != nil {
			name := entryName(p.Entry.Name, true, p.Entry.Files)
			switch {
			case p.Already && p.Retargeted:
				c.printf("%s  %s now for: %s\n", termSafe(name), p.Entry.CID, who(p.Entry.Audience))
			case p.Already:
				c.printf("already published: %s  %s (nothing changed)\n", termSafe(name), p.Entry.CID)
			default:
				c.printf("published folder %s  %s  %s  (%s hashed, %s unchanged)\n", termSafe(name), humanBytes(p.Entry.Size), p.Entry.CID,
					groupDigits(int64(fr.Hashed)), groupDigits(int64(fr.Files-fr.Hashed)))
				if !p.Entry.Audience.Public() {
					c.printf("  only for: %s\n", who(p.Entry.Audience))
				}
			}
			c.printFolderResult(fr)
			continue
		}
		switch {
		case p.Retargeted:
			c.printf("%s  %s now for: %s\n", p.Entry.Name, p.Entry.CID, who(p.Entry.Audience))
		case p.Already:
			c.printf("already published: %s  %s (nothing changed)\n", p.Entry.Name, p.Entry.CID)
		default:
			c.printf("published %s  %s  %s  sha256 %s\n", p.Entry.Name, humanBytes(p.Entry.Size), p.Entry.CID, hex.EncodeToString(p.Entry.SHA256[:]))
			if len(p.Entry.Aliases) > 0 {
				// One CID, one record: the names share its audience.
				c.printf("  the same content as %s: one CID under %d names, for: %s\n",
					termSafe(strings.Join(p.Entry.Aliases, ", ")), len(p.Entry.Aliases)+1, who(p.Entry.Audience))
			} else if !p.Entry.Audience.Public() {
				c.printf("  only for: %s\n", who(p.Entry.Audience))
			}
		}
	}
	return err
}

// audience reads the words of --to (comma separated) as peers and groups,
// through Deps.ResolveWho.
func (c *call) audience(list string) (share.Audience, error) {
	resolve := c.r.d.ResolveWho
	switch {
	case resolve != nil:
	case c.r.d.People != nil:
		// Names and groups of this node (a word is one or the other).
		resolve = func(w string) (share.Who, error) {
			t, err := c.r.d.People.ResolveTarget(w, c.r.knownPeers())
			return share.Who{Peer: t.Peer, Group: t.Group}, err
		}
	default:
		resolve = c.r.resolvePeerOnly
	}
	var ws []share.Who
	for _, w := range strings.Split(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		who, err := resolve(w)
		if err != nil {
			return share.Audience{}, fmt.Errorf("--to %s: %w", w, err)
		}
		ws = append(ws, who)
	}
	if len(ws) == 0 {
		return share.Audience{}, errors.New("--to needs at least one peer or group (or use --public)")
	}
	return share.AudienceOf(ws...), nil
}

// resolvePeerOnly is the resolver of --to words without a table of
// people: a peer ID or the unique prefix of a known one.
func (r *REPL) resolvePeerOnly(word string) (share.Who, error) {
	id, err := resolvePeer(word, r.knownPeers())
	if err != nil {
		return share.Who{}, err
	}
	return share.Who{Peer: id}, nil
}

// audienceFmt prints an audience: "public", or its peers (short unless
// wide) and groups.
func (c *call) audienceFmt(wide bool) func(share.Audience) string {
	short := c.peerFmt(wide)
	return func(a share.Audience) string {
		if a.Public() {
			return "public"
		}
		var parts []string
		for _, p := range a.Peers {
			parts = append(parts, short(p))
		}
		for _, g := range a.Groups {
			parts = append(parts, "group "+g)
		}
		return strings.Join(parts, ", ")
	}
}

func cmdPublished(_ context.Context, c *call, args []string) error {
	wide, asJSON, err := c.listFlagsJSON(args, "GET /api/v1/published")
	if err != nil {
		return err
	}
	entries := c.r.d.Share.Published()
	if asJSON {
		return c.printJSON(api.Entries(entries))
	}
	if len(entries) == 0 {
		c.printf("nothing published\n")
		return nil
	}
	short := c.cidFmt(wide)
	who := c.audienceFmt(wide)
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tCID\tSHA256\tSINCE\tFOR")
	for _, e := range share.ByName(entries) { // a row per name: one CID may have several
		sum := hex.EncodeToString(e.SHA256[:])
		if !wide {
			sum = sum[:16] + "…"
		}
		if e.Collection {
			sum = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", termSafe(entryName(e.Name, e.Collection, e.Files)), humanBytes(e.Size), short(e.CID), sum, e.Published.Format(time.DateTime), termSafe(who(e.Audience)))
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
		pos, err = c.publishedArgs(pos)
		if err != nil {
			return err
		}
		gone, err = c.r.d.Share.Unpublish(ctx, pos...)
	}
	for _, e := range share.ByName(gone) {
		c.printf("withdrawn %s  %s\n", termSafe(entryName(e.Name, e.Collection, e.Files)), e.CID)
	}
	if err == nil && len(gone) == 0 {
		c.printf("nothing was published\n")
	}
	return err
}

// publishedArgs replaces each argument that is not a published name but
// the unique prefix of a published CID by that CID.
func (c *call) publishedArgs(args []string) ([]string, error) {
	entries := c.r.d.Share.Published()
	var cids []cid.Cid
	names := map[string]bool{}
	for _, e := range entries {
		cids = append(cids, e.CID)
		for _, n := range e.Names() {
			names[n] = true
		}
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if names[a] {
			continue
		}
		if _, err := cid.Decode(a); err == nil {
			continue
		}
		id, err := resolveCID(a, cids)
		switch {
		case err == nil:
			out[i] = id.String()
		case isAmbiguous(err):
			return nil, err
		}
		// no match: Unpublish says it is not published
	}
	return out, nil
}

func cmdAvailable(_ context.Context, c *call, args []string) error {
	wide, asJSON, err := c.listFlagsJSON(args, "GET /api/v1/available")
	if err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(api.Remotes(c.r.d.Share.Available()))
	}
	return c.printRemotes(c.r.d.Share.Available(), wide)
}

func cmdSearch(_ context.Context, c *call, args []string) error {
	pos, wide, err := c.listFlags(args, true)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("usage: search TEXT [--wide]")
	}
	return c.printRemotes(c.r.d.Share.Search(strings.Join(pos, " ")), wide)
}

// maxProvidersShown is how many providers a row of available lists
// before it only counts them (--wide lists all).
const maxProvidersShown = 2

func (c *call) printRemotes(list []shareRemote, wide bool) error {
	if len(list) == 0 {
		c.printf("nothing available\n")
		return nil
	}
	shortCID, shortPeer := c.cidFmt(wide), c.peerFmt(wide)
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tSIZE\tCID\tPROVIDERS")
	for _, r := range remotesByName(list) {
		var ps []string
		online := 0
		for _, p := range r.Providers {
			state := "offline"
			if p.Online {
				state = "online"
				online++
			}
			ps = append(ps, shortPeer(p.ID)+" "+state)
		}
		provs := strings.Join(ps, ", ")
		if !wide && len(ps) > maxProvidersShown {
			provs = fmt.Sprintf("%d (%d online; --wide lists them)", len(ps), online)
		}
		// Names from peers passed names.Check on receipt; escaped here too,
		// as everything peers say is before it reaches the terminal.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termSafe(entryName(r.Name, r.Collection, r.Files)), humanBytes(r.Size), shortCID(r.CID), provs)
	}
	return tw.Flush()
}

// remotesByName lists each name of each remote as a row of its own (a
// publisher may give one content several names; get takes any of them),
// sorted by name, then CID.
func remotesByName(list []shareRemote) []shareRemote {
	out := make([]shareRemote, 0, len(list))
	for _, r := range list {
		for _, n := range r.Names() {
			x := r
			x.Entry = r.Entry.Named(n)
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b shareRemote) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func cmdGet(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	output := fs.String("o", "", "save to this path, or into this folder (never overwrites)")
	again := fs.Bool("again", false, "make another copy even if this was downloaded already and is still there")
	bg := fs.Bool("bg", false, "download in the background (the node's queue, as the API's gets); the prompt stays free and says when it ends")
	var fromArgs, only []string
	fs.Func("from", "fetch only from this peer (repeatable)", func(s string) error {
		fromArgs = append(fromArgs, s)
		return nil
	})
	fs.Func("only", "of a folder, get only the paths that match (path.Match; DIR/ for a whole folder; repeatable)", func(s string) error {
		only = append(only, s)
		return nil
	})
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: get NAME|CID|TICKET [-o PATH|FOLDER] [--only PATTERN]... [--from PEER] [--again] [--bg]")
	}
	var from []peer.ID
	if len(fromArgs) > 0 {
		for _, s := range fromArgs {
			id, err := c.r.resolvePeer(s)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			from = append(from, id)
		}
	}
	opt := transfer.GetOptions{From: from, Only: only, Again: *again}
	id, err := c.resolveGet(pos[0], &opt)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(*output); *output != "" && opt.Name == "" && err == nil && fi.IsDir() {
		// Into this folder under the name the download turns out to have
		// (a folder's own name, say), numbered if taken.
		opt.Into = *output
	} else if opt.Output, err = c.outputPath(*output, id, opt.Name); err != nil {
		return err
	}
	if *bg {
		return c.getBackground(pos[0], id, opt)
	}
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
		return errReported
	case err != nil:
		return err
	}
	if res.Already {
		what := "file"
		if res.Collection {
			what = fmt.Sprintf("folder (%d file(s))", res.Files)
		}
		c.printf("already downloaded: %s  %s, verified: %s; get --again makes another copy\n", res.Path, what, res.Verified)
		return nil
	}
	for _, p := range res.Bad {
		c.printf("warning: peer %s sent data that failed verification and was dropped\n", p)
	}
	if res.Collection {
		c.printf("saved folder %s  %d file(s), %s in %s (%s/s), every file verified\n",
			res.Path, res.Files, humanBytes(res.Size), res.Duration.Round(time.Millisecond), humanBytes(int64(sessionRate(res))))
		if res.Copied > 0 || res.FilesResumed > 0 {
			c.printf("%d file(s) copied from files already here, %d kept from an interrupted get\n", res.Copied, res.FilesResumed)
		}
		return nil
	}
	// Every chunk was checked against the manifest the CID names, so the
	// file is the one the CID names; the manifest's whole-file SHA-256 is
	// the publisher's statement, not hashed again (see
	// internal/transfer/finish.go), so it is not printed as verified.
	c.printf("saved %s  %s in %s (%s/s) from %d provider(s), every chunk verified against its CID\n",
		res.Path, humanBytes(res.Size), res.Duration.Round(time.Millisecond), humanBytes(int64(sessionRate(res))), len(res.Providers))
	if res.Resumed > 0 {
		c.printf("resumed: %d chunk(s) were already here, %d fetched\n", res.Resumed, res.Fetched)
	}
	return nil
}

// sessionRate is the download rate of this Get: the bytes it moved (not
// those a resumed download already had) over its duration.
func sessionRate(res *transfer.Result) float64 {
	return float64(res.FetchedBytes) / max(res.Duration.Seconds(), 1e-9)
}

// resolveGet finds what get's argument names (see internal/target).
func (c *call) resolveGet(arg string, opt *transfer.GetOptions) (cid.Cid, error) {
	return target.Get(c.r.d.Share, arg, cidStrings(c.r.knownCIDs()), opt)
}

// outputPath checks get's -o argument: an existing folder means "into this
// folder, under the file's name"; otherwise it is the file to create, in
// a folder that must exist. Nothing is ever overwritten (the transfer
// checks again when it places the file).
func (c *call) outputPath(o string, id cid.Cid, name string) (string, error) {
	if o == "" {
		return "", nil
	}
	if fi, err := os.Stat(o); err == nil && fi.IsDir() {
		if name == "" {
			for _, t := range c.r.d.Transfer.Transfers() {
				if t.CID.Equals(id) {
					name = t.Name
				}
			}
		}
		o = filepath.Join(o, transfer.SanitizeName(name, id))
	}
	if _, err := os.Lstat(o); err == nil {
		return "", fmt.Errorf("%s already exists: get never overwrites a file (choose another -o path, or a folder)", o)
	}
	dir := filepath.Dir(o)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("cannot save to %s: folder %s does not exist", o, dir)
	case err != nil:
		return "", fmt.Errorf("cannot save to %s: %w", o, err)
	case !fi.IsDir():
		return "", fmt.Errorf("cannot save to %s: %s is not a folder", o, dir)
	}
	return o, nil
}

// cmdLs lists a published folder's tree (its verified document) without
// downloading its files.
func cmdLs(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: ls FOLDER|CID")
	}
	var opt transfer.GetOptions
	id, err := c.resolveGet(pos[0], &opt)
	if err != nil {
		return err
	}
	coll, err := c.r.d.Transfer.FetchCollection(ctx, id, opt)
	if err != nil {
		return err
	}
	tw := c.table()
	// Paths come from a verified document whose every component passed
	// internal/names; escaped all the same, as everything peers say.
	for _, e := range coll.Entries {
		if e.Dir {
			fmt.Fprintf(tw, "%s/\t\n", termSafe(e.Path))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", termSafe(e.Path), humanBytes(e.Size))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c.printf("%s: %d file(s), %s\n", termSafe(coll.Name), coll.Files(), humanBytes(coll.TotalSize()))
	return nil
}

func cmdTransfers(_ context.Context, c *call, args []string) error {
	_, wide, err := c.listFlags(args, false)
	if err != nil {
		return err
	}
	list := c.r.d.Transfer.Transfers()
	if len(list) == 0 {
		c.printf("no transfers\n")
		return nil
	}
	short := c.cidFmt(wide)
	tw := c.table()
	fmt.Fprintln(tw, "CID\tNAME\tDONE\tRATE\tPROVIDERS\tSTATE")
	for _, t := range list {
		pct := 100.0
		if t.Total > 0 {
			pct = 100 * float64(t.Done) / float64(t.Total)
		}
		name := termSafe(t.Name)
		if t.Files > 0 {
			name = fmt.Sprintf("%s/ (%s of %s files)", name, groupDigits(int64(t.FilesDone)), groupDigits(int64(t.Files)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%s/s\t%d\t%s\n", short(t.CID), name, pct, humanBytes(int64(t.Rate)), len(t.Providers), t.State)
	}
	return tw.Flush()
}

func cmdCancel(_ context.Context, c *call, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: cancel CID")
	}
	var cids []cid.Cid
	for _, t := range c.r.d.Transfer.Transfers() {
		cids = append(cids, t.CID)
	}
	id, err := resolveCID(args[0], cids)
	if err != nil {
		return fmt.Errorf("%w (transfers lists the downloads)", err)
	}
	if err := c.r.d.Transfer.Cancel(id); err != nil {
		return err
	}
	c.printf("canceled %s, partial data removed\n", id)
	return nil
}

// connectTimeout bounds connect.
const connectTimeout = 30 * time.Second

func cmdConnect(ctx context.Context, c *call, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: connect MULTIADDR (ending in /p2p/PEERID)")
	}
	ma, err := multiaddr.NewMultiaddr(args[0])
	if err != nil {
		return fmt.Errorf("bad multiaddr %q: %w", args[0], err)
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	id, err := c.r.d.Node.Connect(ctx, ma)
	if err != nil {
		var de *swarm.DialError
		if !errors.As(err, &de) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// The dial error lists every address and transport tried: for
		// the log, not the prompt.
		c.r.d.Log.Warn("connect failed", "addr", ma, "err", err)
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		addr, _ := peer.SplitAddr(ma)
		return fmt.Errorf("could not reach %s at %s: %s (details in node.log)", id, addr, dialReason(err))
	}
	c.printf("connected to %s\n", id)
	return nil
}

// dialReason is the short cause of a failed dial: "connection refused"
// rather than the swarm's list of every transport's error.
func dialReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", connectTimeout)
	}
	var de *swarm.DialError
	if errors.As(err, &de) {
		switch {
		case len(de.DialErrors) > 0:
			err = de.DialErrors[0].Cause
		case de.Cause != nil:
			err = de.Cause
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
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

// getBackground queues the download and returns at once; a goroutine
// reports how it ended.
func (c *call) getBackground(arg string, id cid.Cid, opt transfer.GetOptions) error {
	if c.r.d.Background == nil {
		return errors.New("--bg needs the local API (the node was started with --api off, or it failed to start)")
	}
	job, ended, err := c.r.d.Background(arg, id, opt)
	if err != nil {
		return err
	}
	c.printf("job %s: getting %s in the background (transfers shows it; cancel %s stops it)\n", job, shortCIDOf(id), shortCIDOf(id))
	out := c.out
	c.r.bgStarted()
	c.r.bg.Go(func() {
		e, ok := <-ended
		switch {
		case ok && e.State == "done":
			fmt.Fprintf(out, "job %s: saved %s  %s, every chunk verified against its CID\n", e.ID, e.Path, humanBytes(e.Size))
			c.r.bgEnded(false)
			return
		case ok:
			fmt.Fprintf(out, "job %s: %s: %s\n", e.ID, e.State, termText(e.Error))
		default:
			fmt.Fprintf(out, "job %s: the node stopped before it ended\n", job)
		}
		c.r.bgEnded(true)
	})
	return nil
}

func shortCIDOf(c cid.Cid) string {
	s := c.String()
	return s[:min(len(s), shortid.MinCID+6)]
}
