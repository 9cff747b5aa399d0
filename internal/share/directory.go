package share

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// Remote is one content ID other peers publish, merged over its providers.
// Entry is the claim of a provider that gives the preferred name (see
// merged), under that name; its Aliases are the other names the providers
// of that name give the content (a publisher with the same bytes under
// two names). Providers lists every provider, online ones first.
type Remote struct {
	Entry
	Providers []ProviderInfo
}

// ProviderInfo is one peer publishing a Remote.
type ProviderInfo struct {
	ID     peer.ID
	Online bool
	Name   string // the name this provider gave
	// Aliases are the other names this provider gave the same content.
	Aliases []string
	// Known: the provider has standing with this node (it was connected
	// to us, or is in the peer table), rather than a key only heard of
	// through another peer.
	Known bool
}

// Gives reports whether the provider gave the content the name n.
func (p ProviderInfo) Gives(n string) bool {
	return p.Name == n || slices.Contains(p.Aliases, n)
}

// Names is p.Name and p.Aliases.
func (p ProviderInfo) Names() []string { return append([]string{p.Name}, p.Aliases...) }

// Directory is what other peers publish, as far as this node knows: the
// remote view, filled by catalog pulls (pull.go) and announcements
// (announce.go); the queries on it (Available, Search, Resolve,
// Providers); and who has a CID (FindProviders, finder.go).
type Directory struct {
	net             Network
	routing         Routing // nil: no DHT
	log             *slog.Logger
	catalogInterval time.Duration
	local           localIndex // set by start
	topic           Topic      // nil: no announcements

	ds     datastore.Batching // announcement marks (marks.go)
	known  func(peer.ID) bool // Config.Known; nil: none
	hidden func(peer.ID) bool // Config.Hidden; nil: none

	remote      remoteView
	rejected    atomic.Int64 // announcements the validator refused as malformed or unsigned
	stale       atomic.Int64 // announcements dropped as older than their publisher's newest
	refusedMsgs atomic.Int64 // announcements dropped whole: their relay's share is used up

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	tasks  tasks // loops and catalog pulls
	evSub  event.Subscription

	pullMu  sync.Mutex
	pulling map[peer.ID]bool
	pullSem chan struct{} // bounds background pulls
}

// localIndex is what the Directory asks of this node's own Library.
type localIndex interface {
	publishedEntry(c cid.Cid) (Entry, bool)
}

// newDirectory makes a Directory that does nothing until start.
func newDirectory(cfg Config, log *slog.Logger) *Directory {
	d := &Directory{
		net:             cfg.Network,
		routing:         cfg.Routing,
		log:             log,
		catalogInterval: cfg.CatalogInterval,
		ds:              cfg.Datastore,
		known:           cfg.Known,
		hidden:          cfg.Hidden,
		pulling:         make(map[peer.ID]bool),
		pullSem:         make(chan struct{}, maxConcurrentPulls),
	}
	d.remote.init()
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// knownPeer reports whether p has standing without having sent us
// anything itself: it is in the peer table, or online.
func (d *Directory) knownPeer(p peer.ID) bool {
	return d.known != nil && d.known(p) || d.net.Online(p)
}

// loadMarks reads the announcement marks kept in the datastore.
func (d *Directory) loadMarks(ctx context.Context) error {
	d.remote.mu.Lock()
	defer d.remote.mu.Unlock()
	bad, err := d.remote.marks.load(ctx, d.ds)
	if bad > 0 {
		d.log.Warn("skipping broken announcement marks", "count", bad)
	}
	return err
}

// flushMarks writes the announcement marks that changed.
func (d *Directory) flushMarks(ctx context.Context) {
	d.remote.mu.Lock()
	ws := d.remote.marks.pending()
	d.remote.mu.Unlock()
	if err := writeMarks(ctx, d.ds, ws); err != nil {
		d.log.Warn("could not save announcement marks; retrying", "err", err)
		d.remote.mu.Lock()
		d.remote.marks.redo(ws)
		d.remote.mu.Unlock()
	}
}

// markLoop saves the announcement marks every markFlushInterval.
func (d *Directory) markLoop() {
	t := time.NewTicker(markFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			d.flushMarks(d.ctx)
		}
	}
}

// start follows peers as they connect (pulling their catalogs) and, with
// a topic, receives announcements. local is this node's Library.
func (d *Directory) start(local localIndex, topic Topic) error {
	d.local, d.topic = local, topic
	var err error
	d.evSub, err = d.net.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	}, eventbus.Name("p2pshare/share"))
	if err != nil {
		return fmt.Errorf("share: subscribe to host events: %w", err)
	}
	d.tasks.Go(d.eventLoop)
	d.tasks.Go(d.pullLoop)
	d.tasks.Go(d.markLoop) // directed announcements advance marks too
	if topic != nil {
		d.tasks.Go(d.announceLoop)
	}
	d.net.SetStreamHandler(proto.DirectAnnounceID, d.handleDirect)
	return nil
}

// Close stops following peers and announcements, waits for running
// catalog pulls, and saves the announcement marks.
func (d *Directory) Close() error {
	d.net.RemoveStreamHandler(proto.DirectAnnounceID)
	d.cancel()
	var err error
	if d.evSub != nil {
		err = d.evSub.Close()
	}
	d.tasks.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.flushMarks(ctx)
	return err
}

// DirectoryStats is what other peers' announcements and catalogues make
// this node remember, and what it refused.
type DirectoryStats struct {
	Senders int // peers whose entries are tracked
	Unknown int // of which never seen connected (keys heard of through a relay)
	Entries int // their entries, over all senders
	Bytes   int // charged against the budget (entries and tombstones)
	// Refused counts entries not taken: per-sender, per-relay or sender
	// caps, or the memory budget.
	Refused int64
	// Rejected counts malformed or unsigned announcements; Stale those
	// older than their publisher's newest (replays); RelayFull publishes
	// by unknown senders whose relay had used up its share.
	Rejected, Stale, RelayFull int64
}

// Stats reports the remote view's size against its budget.
func (d *Directory) Stats() DirectoryStats {
	rv := &d.remote
	rv.mu.Lock()
	defer rv.mu.Unlock()
	st := DirectoryStats{Senders: len(rv.peers), Entries: rv.count, Bytes: rv.cost, Refused: rv.refused,
		Rejected: d.rejected.Load(), Stale: d.stale.Load(), RelayFull: d.refusedMsgs.Load()}
	for _, pc := range rv.peers {
		if !pc.known {
			st.Unknown++
		}
	}
	return st
}

// Changes returns a channel that is closed at the next change of what
// Available returns (entries or a provider's online status). Take the
// channel, read the state, then wait; call again after it fires. Any
// number of goroutines may wait on it.
func (d *Directory) Changes() <-chan struct{} {
	d.remote.mu.Lock()
	defer d.remote.mu.Unlock()
	return d.remote.changed
}

// senderSnapshot is one sender's entries and standing.
type senderSnapshot struct {
	known   bool
	entries []Entry
}

// snapshot copies the remote entries, leaving our own ID and hidden
// peers out.
func (d *Directory) snapshot() map[peer.ID]senderSnapshot {
	rv := &d.remote
	rv.mu.Lock()
	defer rv.mu.Unlock()
	out := make(map[peer.ID]senderSnapshot, len(rv.peers))
	for p, pc := range rv.peers {
		if p == d.net.ID() || len(pc.entries) == 0 || d.hidden != nil && d.hidden(p) {
			continue
		}
		es := make([]Entry, 0, len(pc.entries))
		for _, e := range pc.entries {
			es = append(es, e)
		}
		out[p] = senderSnapshot{pc.known, es}
	}
	return out
}

// claim is one provider's entry for a CID.
type claim struct {
	ProviderInfo
	e Entry
}

// merged is every remote CID with its providers, unsorted.
//
// Providers may name one CID differently, and any of them may lie. The
// name shown, and used to save a download, is the one given by the most
// known providers, then by the most providers, then the one we heard
// first (content is named by whoever had it first: a liar copying a CID
// it saw announced comes later), then one an online provider gives, then
// the first in byte order. So a stranger, or a liar whose name sorts
// first, no longer names someone else's content; to outvote a known
// publisher it takes more known peers than agree with it.
func (d *Directory) merged() map[cid.Cid]*Remote {
	snap := d.snapshot()
	online := make(map[peer.ID]bool, len(snap))
	for p := range snap {
		online[p] = d.net.Online(p) // outside our locks: Online may take the peer table's
	}
	claims := make(map[cid.Cid][]claim)
	for p, ss := range snap {
		for _, e := range ss.entries {
			claims[e.CID] = append(claims[e.CID], claim{ProviderInfo{ID: p, Online: online[p], Name: e.Name, Aliases: e.Aliases, Known: ss.known}, e})
		}
	}
	out := make(map[cid.Cid]*Remote, len(claims))
	for c, cl := range claims {
		name := preferredName(cl)
		slices.SortFunc(cl, func(a, b claim) int {
			if a.Online != b.Online {
				if a.Online {
					return -1
				}
				return 1
			}
			if a.Known != b.Known {
				if a.Known {
					return -1
				}
				return 1
			}
			if a.Gives(name) != b.Gives(name) {
				if a.Gives(name) {
					return -1
				}
				return 1
			}
			return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(string(a.ID), string(b.ID)))
		})
		r := &Remote{}
		for _, x := range cl {
			if x.Gives(name) && r.Name == "" {
				r.Entry = x.e.Named(name)
			}
			r.Providers = append(r.Providers, x.ProviderInfo)
		}
		r.Aliases = otherNames(cl, name)
		out[c] = r
	}
	return out
}

// otherNames is what a Remote lists besides name, the preferred one: the
// other names given by the providers that give name, only the known ones
// among them if there are any (strangers do not add names to what a known
// publisher named), sorted, at most maxNamesPerEntry-1.
func otherNames(claims []claim, name string) []string {
	known := slices.ContainsFunc(claims, func(x claim) bool { return x.Known && x.Gives(name) })
	var out []string
	for _, x := range claims {
		if x.Gives(name) && (x.Known || !known) {
			for _, n := range x.Names() {
				if n != name {
					out = append(out, n)
				}
			}
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxNamesPerEntry-1 {
		out = out[:maxNamesPerEntry-1]
	}
	return out
}

// preferredName picks among the names providers give one CID (see
// merged). A provider giving the content several names votes for each;
// between names that tie, the one providers give first (the name they
// published it under first) wins. Names only strangers give count only when no known provider
// names the CID: strangers' keys are free, so among known providers their
// votes would let a flood break a tie.
func preferredName(claims []claim) string {
	type tally struct {
		known, all, online int
		primary            int   // providers giving it as their first name
		firstKnown, first  int64 // our clock: first heard, from a known provider, from any
	}
	votes := map[string]*tally{}
	for _, x := range claims {
		for _, n := range x.Names() {
			v := votes[n]
			if v == nil {
				v = &tally{first: math.MaxInt64, firstKnown: math.MaxInt64}
				votes[n] = v
			}
			v.all++
			if n == x.Name {
				v.primary++
			}
			v.first = min(v.first, x.e.heard)
			if x.Known {
				v.known++
				v.firstKnown = min(v.firstKnown, x.e.heard)
			}
			if x.Online {
				v.online++
			}
		}
	}
	best, bv := "", (*tally)(nil)
	for n, v := range votes {
		if bv == nil {
			best, bv = n, v
			continue
		}
		c := cmp.Compare(v.known, bv.known)
		if c == 0 && v.known > 0 {
			c = cmp.Compare(bv.firstKnown, v.firstKnown)
		}
		c = cmp.Or(c, cmp.Compare(v.all, bv.all), cmp.Compare(bv.first, v.first), cmp.Compare(v.primary, bv.primary),
			cmp.Compare(min(v.online, 1), min(bv.online, 1)), strings.Compare(best, n))
		if c > 0 {
			best, bv = n, v
		}
	}
	return best
}

func sortRemotes(m map[cid.Cid]*Remote, keep func(*Remote) bool) []Remote {
	out := make([]Remote, 0, len(m))
	for _, r := range m {
		if keep == nil || keep(r) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Remote) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		// Only on a tie: CID.String encodes base32 on every call.
		return strings.Compare(a.CID.KeyString(), b.CID.KeyString())
	})
	return out
}

// Available lists what other peers publish, one Remote per CID, sorted by
// name. Entries of offline providers stay, marked offline. Entries this
// node itself publishes appear only if another peer publishes them too,
// and never with this node as a provider.
func (d *Directory) Available() []Remote {
	return sortRemotes(d.merged(), nil)
}

// Search returns the Available entries whose name (as any provider gave
// it) contains text, case-insensitively, or whose CID starts with text.
func (d *Directory) Search(text string) []Remote {
	lt := strings.ToLower(text)
	return sortRemotes(d.merged(), func(r *Remote) bool {
		if strings.HasPrefix(r.CID.String(), text) {
			return true
		}
		for _, p := range r.Providers {
			for _, n := range p.Names() {
				if strings.Contains(strings.ToLower(n), lt) {
					return true
				}
			}
		}
		return false
	})
}

// Resolve finds what `get` should fetch. A CID string resolves to what
// other peers publish under it, with this node added as a provider if it
// publishes it too; a well-formed CID nobody announced gives a Remote that
// carries only the CID and an error wrapping ErrNotFound, so a caller may
// still look for providers on the DHT. Otherwise the argument is an exact
// name given by some provider: no match wraps ErrNotFound, several CIDs
// wrap ErrAmbiguous and list them.
func (d *Directory) Resolve(nameOrCID string) (Remote, error) {
	m := d.merged()
	if c, err := cid.Decode(nameOrCID); err == nil {
		if err := manifest.CheckCID(c); err != nil {
			return Remote{}, fmt.Errorf("resolve %q: %w", nameOrCID, err)
		}
		r, ok := m[c]
		if own, published := d.local.publishedEntry(c); published {
			if !ok {
				r = &Remote{Entry: own}
			}
			r.Providers = append(r.Providers, ProviderInfo{ID: d.net.ID(), Online: true, Name: own.Name, Aliases: own.Aliases})
			ok = true
		}
		if ok {
			return *r, nil
		}
		return Remote{Entry: Entry{CID: c}}, fmt.Errorf("resolve %s: %w: no peer has announced it", c, ErrNotFound)
	}
	// A name matches a CID if any provider gives it that name. When a
	// known provider does for some CID, CIDs only strangers (keys heard of
	// through a relay, never connected) name so are left out: anyone can
	// make such keys, and a liar must not make a known publisher's name
	// ambiguous (it still shows in available, under its CID).
	byKnown := func(r *Remote) bool {
		return slices.ContainsFunc(r.Providers, func(p ProviderInfo) bool { return p.Known && p.Gives(nameOrCID) })
	}
	matches := sortRemotes(m, func(r *Remote) bool {
		return slices.ContainsFunc(r.Providers, func(p ProviderInfo) bool { return p.Gives(nameOrCID) })
	})
	if slices.ContainsFunc(matches, func(r Remote) bool { return byKnown(&r) }) {
		matches = slices.DeleteFunc(matches, func(r Remote) bool { return !byKnown(&r) })
	}
	switch len(matches) {
	case 0:
		return Remote{}, fmt.Errorf("resolve %q: %w: no peer publishes that name or CID", nameOrCID, ErrNotFound)
	case 1:
		// One of the names listed (the preferred one or its others) is
		// the name asked for, and the one a download is saved under; a
		// name only a conflicting provider gives is not (see merged).
		r := matches[0]
		r.Entry = r.Entry.Named(nameOrCID)
		return r, nil
	}
	var b strings.Builder
	for _, r := range matches {
		fmt.Fprintf(&b, "\n  %s  %d bytes  %d provider(s)", r.CID, r.Size, len(r.Providers))
	}
	return Remote{}, fmt.Errorf("resolve %q: %w: %d different files have that name; use a CID:%s",
		nameOrCID, ErrAmbiguous, len(matches), b.String())
}

// DropPeer forgets what p publishes, as far as this node knows (a
// blocked or forgotten peer); a later catalog pull or announcement
// brings it back unless Config.Hidden hides it.
func (d *Directory) DropPeer(p peer.ID) {
	d.remote.mu.Lock()
	defer d.remote.mu.Unlock()
	d.remote.dropPeer(p)
}

// Providers lists the peers known (from catalogs and announcements) to
// publish c, online ones first; this node is never included.
func (d *Directory) Providers(c cid.Cid) []peer.ID {
	r, ok := d.merged()[c]
	if !ok {
		return nil
	}
	out := make([]peer.ID, len(r.Providers))
	for i, p := range r.Providers {
		out[i] = p.ID
	}
	return out
}

// ResolveFetch is what `get` fetches: Resolve's answer, or, for any other
// string that parses as a CID (one nobody announced), a Remote holding
// just that CID, since FindProviders may still find providers on the DHT.
func (d *Directory) ResolveFetch(nameOrCID string) (Remote, error) {
	r, err := d.Resolve(nameOrCID)
	if err == nil {
		return r, nil
	}
	if c, perr := cid.Decode(nameOrCID); perr == nil {
		return Remote{Entry: Entry{CID: c}}, nil
	}
	return Remote{}, err
}
