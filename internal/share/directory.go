package share

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// Remote is one content ID other peers publish, merged over its providers.
// Entry comes from the first provider listed (online providers first); its
// Name is that provider's name for it.
type Remote struct {
	Entry
	Providers []ProviderInfo
}

// ProviderInfo is one peer publishing a Remote.
type ProviderInfo struct {
	ID     peer.ID
	Online bool
	Name   string // the name this provider gave
}

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

	remote   remoteView
	rejected atomic.Int64 // announcements the validator refused

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
		pulling:         make(map[peer.ID]bool),
		pullSem:         make(chan struct{}, maxConcurrentPulls),
	}
	d.remote.init()
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
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
	if topic != nil {
		d.tasks.Go(d.announceLoop)
	}
	return nil
}

// Close stops following peers and announcements, and waits for running
// catalog pulls.
func (d *Directory) Close() error {
	d.cancel()
	var err error
	if d.evSub != nil {
		err = d.evSub.Close()
	}
	d.tasks.Wait()
	return err
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

// snapshot copies the remote entries, leaving our own ID out.
func (d *Directory) snapshot() map[peer.ID][]Entry {
	rv := &d.remote
	rv.mu.Lock()
	defer rv.mu.Unlock()
	out := make(map[peer.ID][]Entry, len(rv.peers))
	for p, pc := range rv.peers {
		if p == d.net.ID() || len(pc.entries) == 0 {
			continue
		}
		es := make([]Entry, 0, len(pc.entries))
		for _, e := range pc.entries {
			es = append(es, e)
		}
		out[p] = es
	}
	return out
}

// merged is every remote CID with its providers, unsorted.
func (d *Directory) merged() map[cid.Cid]*Remote {
	snap := d.snapshot()
	online := make(map[peer.ID]bool, len(snap))
	for p := range snap {
		online[p] = d.net.Online(p) // outside our locks: Online may take the peer table's
	}
	type claim struct {
		ProviderInfo
		e Entry
	}
	claims := make(map[cid.Cid][]claim)
	for p, es := range snap {
		for _, e := range es {
			claims[e.CID] = append(claims[e.CID], claim{ProviderInfo{ID: p, Online: online[p], Name: e.Name}, e})
		}
	}
	out := make(map[cid.Cid]*Remote, len(claims))
	for c, cl := range claims {
		slices.SortFunc(cl, func(a, b claim) int {
			if a.Online != b.Online {
				if a.Online {
					return -1
				}
				return 1
			}
			return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(string(a.ID), string(b.ID)))
		})
		r := &Remote{Entry: cl[0].e}
		for _, x := range cl {
			r.Providers = append(r.Providers, x.ProviderInfo)
		}
		out[c] = r
	}
	return out
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
			if strings.Contains(strings.ToLower(p.Name), lt) {
				return true
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
			r.Providers = append(r.Providers, ProviderInfo{ID: d.net.ID(), Online: true, Name: own.Name})
			ok = true
		}
		if ok {
			return *r, nil
		}
		return Remote{Entry: Entry{CID: c}}, fmt.Errorf("resolve %s: %w: no peer has announced it", c, ErrNotFound)
	}
	matches := sortRemotes(m, func(r *Remote) bool {
		for _, p := range r.Providers {
			if p.Name == nameOrCID {
				return true
			}
		}
		return false
	})
	switch len(matches) {
	case 0:
		return Remote{}, fmt.Errorf("resolve %q: %w: no peer publishes that name or CID", nameOrCID, ErrNotFound)
	case 1:
		return matches[0], nil
	}
	var b strings.Builder
	for _, r := range matches {
		fmt.Fprintf(&b, "\n  %s  %d bytes  %d provider(s)", r.CID, r.Size, len(r.Providers))
	}
	return Remote{}, fmt.Errorf("resolve %q: %w: %d different files have that name; use a CID:%s",
		nameOrCID, ErrAmbiguous, len(matches), b.String())
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
