package p2p

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Source says how a peer first came to the table.
type Source string

const (
	SourceMDNS      Source = "mdns"      // found on the LAN by mDNS
	SourceDHT       Source = "dht"       // seen in the DHT routing table
	SourceBootstrap Source = "bootstrap" // a configured bootstrap peer
	SourceManual    Source = "manual"    // Node.Connect ("connect" in the REPL)
	SourceInbound   Source = "inbound"   // it connected to us
	SourceOutbound  Source = "outbound"  // we connected to it for another reason
)

// weak reports whether s only says which side dialled. A weak source is
// replaced by a strong one (mdns, dht, bootstrap, manual) when the peer is
// later found that way, so two nodes that discover each other by mDNS at
// the same moment both record "mdns" whoever dialled first.
func (s Source) weak() bool { return s == SourceInbound || s == SourceOutbound || s == "" }

// maxPeerAddrs bounds the addresses kept per peer.
const maxPeerAddrs = 16

// DefaultMaxPeers is the peer table's default size: a peer that identifies
// as p2pshare gets a row, and identities cost nothing to make, so the table
// is bounded. When it is full, a new peer takes the row of the peer that
// matters least (see evictionOrder): one we never exchanged files with and
// did not add by hand, offline, unseen for longest.
const DefaultMaxPeers = 1000

// PeerInfo is one row of the peer table. It is a copy: changing it does
// not change the table.
type PeerInfo struct {
	ID        peer.ID
	Addrs     []multiaddr.Multiaddr
	Online    bool
	FirstSeen time.Time
	LastSeen  time.Time     // last successful contact (ping or identify)
	RTT       time.Duration // of the last successful ping; 0 if none yet
	Source    Source
	LastError string // of the last failed ping; cleared on success
	// LastExchange is when a keepalive round last saw a file-transfer
	// stream with the peer (either direction); zero if never. Peers we
	// exchange files with are pinged first and evicted last.
	LastExchange time.Time
}

// valued reports whether the row is one the table keeps and pings first:
// a peer we exchanged files with, or one the user or the configuration
// named.
func (p *PeerInfo) valued() bool {
	return !p.LastExchange.IsZero() || p.Source == SourceManual || p.Source == SourceBootstrap
}

// evictionOrder orders rows from first to evict to last: not valued before
// valued, offline before online, then least recently seen (or, never seen,
// first found) first.
func evictionOrder(a, b *PeerInfo) int {
	if a.valued() != b.valued() {
		if a.valued() {
			return 1
		}
		return -1
	}
	if a.Online != b.Online {
		if a.Online {
			return 1
		}
		return -1
	}
	seen := func(p *PeerInfo) time.Time {
		if p.LastSeen.IsZero() {
			return p.FirstSeen
		}
		return p.LastSeen
	}
	if c := seen(a).Compare(seen(b)); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func (p PeerInfo) clone() PeerInfo {
	p.Addrs = slices.Clone(p.Addrs)
	return p
}

// EventKind says what changed in a PeerEvent.
type EventKind int

const (
	PeerAdded   EventKind = iota + 1 // first time in the table
	PeerOnline                       // Online went false -> true
	PeerOffline                      // Online went true -> false
	PeerUpdated                      // addresses or source changed
	PeerRemoved                      // evicted to make room (the table is full), or forgotten (Remove)
)

func (k EventKind) String() string {
	switch k {
	case PeerAdded:
		return "added"
	case PeerOnline:
		return "online"
	case PeerOffline:
		return "offline"
	case PeerUpdated:
		return "updated"
	case PeerRemoved:
		return "removed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// PeerEvent is a change in the peer table; Peer is the row after it.
type PeerEvent struct {
	Kind EventKind
	Peer PeerInfo
}

// subscriberBuffer is the capacity of a Subscribe channel. Events are sent
// without blocking: a subscriber that falls this far behind misses events
// and should re-read List.
const subscriberBuffer = 128

// PeerTable is every p2pshare peer this node has ever seen, with its
// liveness. It is safe for concurrent use. Rows are persisted, one JSON
// record per peer, in the datastore given to newPeerTable; rows loaded
// from it start offline until a keepalive reaches the peer.
type PeerTable struct {
	ds  datastore.Datastore
	log *slog.Logger
	now func() time.Time
	max int // rows at most (DefaultMaxPeers)

	mu     sync.Mutex
	peers  map[peer.ID]*PeerInfo
	subs   map[chan PeerEvent]struct{}
	closed bool
}

// peerRecord is the stored form of a PeerInfo. Online is not stored: a
// loaded peer is offline until proven otherwise.
type peerRecord struct {
	ID        string    `json:"id"`
	Addrs     []string  `json:"addrs,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	RTTNanos  int64     `json:"rtt_ns,omitempty"`
	Source    Source    `json:"source"`
	LastError string    `json:"last_error,omitempty"`
	// LastExchange: when file-transfer streams with the peer were last seen.
	LastExchange time.Time `json:"last_exchange,omitzero"`
}

// newPeerTable loads the table stored in ds (already namespaced), keeping
// at most max rows (0: DefaultMaxPeers).
func newPeerTable(ctx context.Context, ds datastore.Datastore, log *slog.Logger, max int) (*PeerTable, error) {
	if max <= 0 {
		max = DefaultMaxPeers
	}
	t := &PeerTable{
		ds:    ds,
		log:   log,
		now:   time.Now,
		max:   max,
		peers: make(map[peer.ID]*PeerInfo),
		subs:  make(map[chan PeerEvent]struct{}),
	}
	res, err := ds.Query(ctx, query.Query{})
	if err != nil {
		return nil, fmt.Errorf("load peer table: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("load peer table: %w", r.Error)
		}
		info, err := decodePeerRecord(r.Value)
		if err != nil {
			// One bad row must not cost the user the rest of the table.
			log.Warn("peer table: skipping bad record", "key", r.Key, "err", err)
			continue
		}
		t.peers[info.ID] = &info
	}
	// A table stored by an older version, or with a larger bound.
	if len(t.peers) > t.max {
		log.Info("peer table: over its bound, evicting", "rows", len(t.peers), "max", t.max)
		for len(t.peers) > t.max {
			t.evictLocked()
		}
	}
	return t, nil
}

func decodePeerRecord(b []byte) (PeerInfo, error) {
	var rec peerRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return PeerInfo{}, err
	}
	id, err := peer.Decode(rec.ID)
	if err != nil {
		return PeerInfo{}, err
	}
	info := PeerInfo{
		ID:           id,
		FirstSeen:    rec.FirstSeen,
		LastSeen:     rec.LastSeen,
		RTT:          time.Duration(rec.RTTNanos),
		Source:       rec.Source,
		LastError:    rec.LastError,
		LastExchange: rec.LastExchange,
	}
	for _, s := range rec.Addrs {
		if a, err := multiaddr.NewMultiaddr(s); err == nil {
			info.Addrs = append(info.Addrs, a)
		}
	}
	return info, nil
}

func encodePeerRecord(p *PeerInfo) ([]byte, error) {
	rec := peerRecord{
		ID:           p.ID.String(),
		FirstSeen:    p.FirstSeen,
		LastSeen:     p.LastSeen,
		RTTNanos:     int64(p.RTT),
		Source:       p.Source,
		LastError:    p.LastError,
		LastExchange: p.LastExchange,
	}
	for _, a := range p.Addrs {
		rec.Addrs = append(rec.Addrs, a.String())
	}
	return json.Marshal(rec)
}

func peerKey(id peer.ID) datastore.Key { return datastore.NewKey(id.String()) }

// Get returns the row for id.
func (t *PeerTable) Get(id peer.ID) (PeerInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	if !ok {
		return PeerInfo{}, false
	}
	return p.clone(), true
}

// Len returns the number of peers in the table.
func (t *PeerTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
}

// List returns every row: online peers first, then by LastSeen, most
// recent first, then by ID so the order is stable.
func (t *PeerTable) List() []PeerInfo {
	t.mu.Lock()
	out := make([]PeerInfo, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, p.clone())
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerInfo) int {
		if a.Online != b.Online {
			if a.Online {
				return -1
			}
			return 1
		}
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Subscribe returns a channel of table changes and a function that ends
// the subscription (and closes the channel). Sends never block the table:
// a subscriber more than subscriberBuffer events behind loses events, so
// code that waits for a state should check Get after subscribing and on
// every event, not count events. The channel is also closed when the node
// closes.
func (t *PeerTable) Subscribe() (<-chan PeerEvent, func()) {
	ch := make(chan PeerEvent, subscriberBuffer)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close(ch)
		return ch, func() {}
	}
	t.subs[ch] = struct{}{}
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.subs[ch]; ok {
			delete(t.subs, ch)
			close(ch)
		}
	}
}

// update applies fn to the row for id under the lock, creating the row
// first if create is set, then persists it and notifies subscribers. fn
// reports the event to send, or 0 for none; it must not keep p.
func (t *PeerTable) update(id peer.ID, create bool, fn func(p *PeerInfo, added bool) EventKind) (PeerInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return PeerInfo{}, false
	}
	p, ok := t.peers[id]
	added := false
	if !ok {
		if !create {
			return PeerInfo{}, false
		}
		p = &PeerInfo{ID: id, FirstSeen: t.now()}
		added = true
	}
	before := p.clone()
	kind := fn(p, added)
	if added {
		if len(t.peers) >= t.max {
			t.evictLocked()
		}
		t.peers[id] = p
		kind = PeerAdded
	}
	if added || changedForStorage(&before, p) {
		t.persistLocked(p)
	}
	if kind != 0 {
		t.notifyLocked(PeerEvent{Kind: kind, Peer: p.clone()})
	}
	return p.clone(), true
}

func (t *PeerTable) notifyLocked(ev PeerEvent) {
	for ch := range t.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// evictLocked removes the row that comes first in evictionOrder, from the
// table and the datastore.
func (t *PeerTable) evictLocked() {
	var victim *PeerInfo
	for _, p := range t.peers {
		if victim == nil || evictionOrder(p, victim) < 0 {
			victim = p
		}
	}
	if victim == nil {
		return
	}
	delete(t.peers, victim.ID)
	if err := t.ds.Delete(context.Background(), peerKey(victim.ID)); err != nil {
		t.log.Warn("peer table: delete evicted row", "peer", victim.ID, "err", err)
	}
	t.log.Debug("peer table full: evicted", "peer", victim.ID, "online", victim.Online,
		"last_seen", victim.LastSeen, "source", victim.Source)
	t.notifyLocked(PeerEvent{Kind: PeerRemoved, Peer: victim.clone()})
}

// Remove deletes id's row from the table and the datastore, and reports
// whether there was one. Subscribers get PeerRemoved. A peer that is met
// again later gets a new row, as a stranger would.
func (t *PeerTable) Remove(id peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	if !ok || t.closed {
		return false
	}
	delete(t.peers, id)
	if err := t.ds.Delete(context.Background(), peerKey(id)); err != nil {
		t.log.Warn("peer table: delete forgotten row", "peer", id, "err", err)
	}
	t.notifyLocked(PeerEvent{Kind: PeerRemoved, Peer: p.clone()})
	return true
}

// changedForStorage reports whether a row differs from its stored form
// enough to rewrite it. RTT alone does not count, so the keepalive does
// not rewrite every row every round; LastSeen is rewritten at most once a
// minute for the same reason.
func changedForStorage(a, b *PeerInfo) bool {
	return a.Source != b.Source ||
		a.LastError != b.LastError ||
		b.LastExchange.Sub(a.LastExchange) > time.Minute ||
		!slices.EqualFunc(a.Addrs, b.Addrs, func(x, y multiaddr.Multiaddr) bool { return x.Equal(y) }) ||
		b.LastSeen.Sub(a.LastSeen) > time.Minute ||
		a.Online != b.Online
}

func (t *PeerTable) persistLocked(p *PeerInfo) {
	b, err := encodePeerRecord(p)
	if err == nil {
		err = t.ds.Put(context.Background(), peerKey(p.ID), b)
	}
	if err != nil {
		t.log.Warn("peer table: persist", "peer", p.ID, "err", err)
	}
}

// observe records that id exists at addrs, found via src. A strong source
// replaces a weak one; addresses replace the old ones when given.
func (t *PeerTable) observe(id peer.ID, addrs []multiaddr.Multiaddr, src Source) (PeerInfo, bool) {
	addrs = normalizeAddrs(addrs)
	return t.update(id, true, func(p *PeerInfo, added bool) EventKind {
		var kind EventKind
		if p.Source.weak() && p.Source != src && (added || !src.weak()) {
			p.Source = src
			kind = PeerUpdated
		}
		if len(addrs) > 0 && !slices.EqualFunc(p.Addrs, addrs, func(x, y multiaddr.Multiaddr) bool { return x.Equal(y) }) {
			p.Addrs = addrs
			kind = PeerUpdated
		}
		return kind
	})
}

// markOnline records a successful contact; rtt 0 keeps the previous RTT.
func (t *PeerTable) markOnline(id peer.ID, rtt time.Duration) {
	t.update(id, false, func(p *PeerInfo, _ bool) EventKind {
		p.LastSeen = t.now()
		if rtt > 0 {
			p.RTT = rtt
		}
		p.LastError = ""
		if p.Online {
			return 0
		}
		p.Online = true
		return PeerOnline
	})
}

// markExchanged records that file-transfer streams with id are open now.
func (t *PeerTable) markExchanged(id peer.ID) {
	t.update(id, false, func(p *PeerInfo, _ bool) EventKind {
		p.LastExchange = t.now()
		return 0
	})
}

// markOffline records a failed contact.
func (t *PeerTable) markOffline(id peer.ID, cause error) {
	t.update(id, false, func(p *PeerInfo, _ bool) EventKind {
		if cause != nil {
			p.LastError = cause.Error()
		}
		if !p.Online {
			return 0
		}
		p.Online = false
		return PeerOffline
	})
}

// close persists every row (LastSeen may be up to a minute stale in the
// store), closes every subscription and makes later updates no-ops. The
// datastore stays open: its owner closes it.
func (t *PeerTable) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, p := range t.peers {
		b, err := encodePeerRecord(p)
		if err == nil {
			err = t.ds.Put(context.Background(), peerKey(p.ID), b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("persist peer %s: %w", p.ID, err))
		}
	}
	for ch := range t.subs {
		close(ch)
	}
	clear(t.subs)
	return errors.Join(errs...)
}

// normalizeAddrs drops /p2p/<id> suffixes and duplicates, sorts, and keeps
// at most maxPeerAddrs.
func normalizeAddrs(in []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, a := range in {
		if a == nil {
			continue
		}
		if t, _ := peer.SplitAddr(a); t != nil {
			a = t
		}
		if len(a) == 0 || slices.ContainsFunc(out, a.Equal) {
			continue
		}
		out = append(out, a)
	}
	// A stable order, so the same set read back from the peerstore in
	// another order is not a change.
	slices.SortFunc(out, func(x, y multiaddr.Multiaddr) int { return cmp.Compare(x.String(), y.String()) })
	if len(out) > maxPeerAddrs {
		out = out[:maxPeerAddrs]
	}
	return out
}
