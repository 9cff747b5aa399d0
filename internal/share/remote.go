package share

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

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

// peerCatalog is what one peer publishes, as far as we know.
//
// Announcements are ordered per (publisher, CID), not per publisher:
// pubsub validates messages concurrently and may deliver one publisher's
// messages out of order, so "withdraw old CID" followed by "publish new
// CID" can arrive the other way round; both must apply.
//
// Everything here is bounded, since any signed sender can fill it: at most
// maxEntriesPerPeer entries (each with its stamp) and maxStampsPerPeer
// tombstones per sender, at most
// maxRemotePeers senders. A withdrawal only leaves a tombstone for a CID
// the sender published (or already has a stamp for); tombstones expire
// tombstoneTTL after we received them, by our clock, not the sender's.
type peerCatalog struct {
	entries  map[cid.Cid]Entry
	stamps   map[cid.Cid]stamp // the last applied announcement about a CID (tombstones too)
	allStamp int64             // sender time of the last applied UNPUBLISH_ALL
	allRecv  int64             // our clock when it was applied
	latest   int64             // newest sender time applied
	heard    int64             // our clock: last announcement or catalog applied
	writes   int               // stamps written since the last sweep
}

// stamp is the sender's time of an announcement and our receive time.
type stamp struct {
	sent, recv int64
}

// Bounds on what other peers can make us remember.
const (
	maxEntriesPerPeer = 10000
	maxStampsPerPeer  = 10000 // tombstones: stamps of CIDs with no live entry
	maxRemotePeers    = 1000
	// sweepMin: expired tombstones are swept once at least this many
	// stamps (and half the stamps held) were written since the last sweep,
	// so the cost of sweeping is amortised over the writes.
	sweepMin = 64
)

// remoteView holds per-(provider, CID) entries. Entries of providers that
// went offline are kept and shown offline.
type remoteView struct {
	mu      sync.Mutex
	peers   map[peer.ID]*peerCatalog
	changed chan struct{} // closed and replaced on every change
	now     func() int64  // our monotonic clock in ns; tests replace it
	clock   int64         // last value of tick
}

func (v *remoteView) init() {
	v.peers = make(map[peer.ID]*peerCatalog)
	v.changed = make(chan struct{})
	epoch := time.Now()
	v.now = func() int64 { return int64(time.Since(epoch)) } // monotonic
}

// tick returns our clock, strictly increasing across calls, so "applied
// after the pull started" is never a tie. Callers hold v.mu.
func (v *remoteView) tick() int64 {
	v.clock = max(v.now(), v.clock+1)
	return v.clock
}

// Now returns our clock, for replaceCatalog's since.
func (v *remoteView) Now() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.tick()
}

// notifyLocked wakes everyone waiting on Changes. Callers hold v.mu.
func (v *remoteView) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// peer returns p's catalog, creating it (and evicting the sender heard
// from the longest ago if there are maxRemotePeers already). Callers hold
// v.mu.
func (v *remoteView) peer(p peer.ID) *peerCatalog {
	pc := v.peers[p]
	if pc == nil {
		if len(v.peers) >= maxRemotePeers {
			v.evictPeerLocked()
		}
		pc = &peerCatalog{entries: make(map[cid.Cid]Entry), stamps: make(map[cid.Cid]stamp)}
		v.peers[p] = pc
	}
	return pc
}

// evictPeerLocked forgets the sender heard from the longest ago: a
// connected peer is heard from at every catalog pull, so this is one gone
// for the longest. O(maxRemotePeers), only when a new sender comes at the cap.
func (v *remoteView) evictPeerLocked() {
	var oldest peer.ID
	var at int64
	found := false
	for p, pc := range v.peers {
		if !found || pc.heard < at {
			oldest, at, found = p, pc.heard, true
		}
	}
	if found {
		if len(v.peers[oldest].entries) > 0 {
			v.notifyLocked()
		}
		delete(v.peers, oldest)
	}
}

// setStamp records an announcement about c, keeping the stamps bounded.
func (pc *peerCatalog) setStamp(c cid.Cid, st stamp) {
	pc.stamps[c] = st
	pc.writes++
	if pc.writes >= max(sweepMin, len(pc.stamps)/2) || len(pc.stamps) > maxEntriesPerPeer+maxStampsPerPeer {
		pc.sweep(st.recv)
	}
}

// sweep drops tombstones received more than tombstoneTTL ago (our clock)
// and, when there are more than maxStampsPerPeer tombstones, the oldest
// down to 90% of that. Stamps of live entries are never dropped: without
// them a late, older withdrawal could remove a live entry. Called after
// Ω(len(stamps)) writes, so its cost is amortised.
func (pc *peerCatalog) sweep(now int64) {
	pc.writes = 0
	var recvs []int64
	for c, st := range pc.stamps {
		if _, live := pc.entries[c]; live {
			continue
		}
		if st.recv < now-int64(tombstoneTTL) {
			delete(pc.stamps, c)
			continue
		}
		recvs = append(recvs, st.recv)
	}
	if len(recvs) <= maxStampsPerPeer {
		return
	}
	slices.Sort(recvs)
	drop := len(recvs) - maxStampsPerPeer*9/10 // keep the newest 90% of the cap
	cut := recvs[drop-1]
	for c, st := range pc.stamps {
		if _, live := pc.entries[c]; !live && st.recv < cut {
			delete(pc.stamps, c)
			drop--
		}
	}
	for c, st := range pc.stamps { // ties (one message's stamps share a time)
		if drop <= 0 {
			break
		}
		if _, live := pc.entries[c]; !live && st.recv == cut {
			delete(pc.stamps, c)
			drop--
		}
	}
}

// Changes returns a channel that is closed at the next change of what
// Available returns (entries or a provider's online status). Take the
// channel, read the state, then wait; call again after it fires. Any
// number of goroutines may wait on it.
func (s *Service) Changes() <-chan struct{} {
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	return s.remote.changed
}

// replaceCatalog makes entries, the catalog of p pulled from a request
// started at since (our clock, remoteView.Now), p's list of entries, except
// where an announcement we applied after since says otherwise: the answer
// may have been produced before it. So a catalog entry is skipped if a
// later announcement (or UNPUBLISH_ALL) touched its CID; a current entry
// announced after since is kept; every other current entry not in the
// catalog is dropped. At most maxEntriesPerPeer entries are taken.
func (s *Service) replaceCatalog(p peer.ID, since int64, entries []Entry) {
	if p == s.h.ID() {
		return
	}
	v := &s.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	pc := v.peer(p)
	pc.heard = v.tick()
	next := make(map[cid.Cid]Entry, min(len(entries), maxEntriesPerPeer))
	for c, e := range pc.entries { // announced during the pull: kept as is
		if pc.stamps[c].recv > since {
			next[c] = e
		}
	}
	dropped := 0
	for _, e := range entries {
		if pc.stamps[e.CID].recv > since || pc.allRecv > since {
			continue // a later announcement decides
		}
		if _, ok := next[e.CID]; !ok && len(next) >= maxEntriesPerPeer {
			dropped++
			continue
		}
		next[e.CID] = e
	}
	if dropped > 0 {
		s.log.Warn("catalog: peer lists too many entries; extra ones ignored", "peer", p, "ignored", dropped, "max", maxEntriesPerPeer)
	}
	if entriesEqual(pc.entries, next) {
		return
	}
	pc.entries = next
	v.notifyLocked()
}

func entriesEqual(a, b map[cid.Cid]Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.Name != y.Name || x.Size != y.Size || x.SHA256 != y.SHA256 ||
			x.ChunkSize != y.ChunkSize || !x.Published.Equal(y.Published) {
			return false
		}
	}
	return true
}

// snapshot copies the remote entries, leaving our own ID out.
func (s *Service) snapshot() map[peer.ID][]Entry {
	v := &s.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[peer.ID][]Entry, len(v.peers))
	for p, pc := range v.peers {
		if p == s.h.ID() || len(pc.entries) == 0 {
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
func (s *Service) merged() map[cid.Cid]*Remote {
	snap := s.snapshot()
	online := make(map[peer.ID]bool, len(snap))
	for p := range snap {
		online[p] = s.online(p) // outside our locks: Online may take the peer table's
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
func (s *Service) Available() []Remote {
	return sortRemotes(s.merged(), nil)
}

// Search returns the Available entries whose name (as any provider gave
// it) contains text, case-insensitively, or whose CID starts with text.
func (s *Service) Search(text string) []Remote {
	lt := strings.ToLower(text)
	return sortRemotes(s.merged(), func(r *Remote) bool {
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
func (s *Service) Resolve(nameOrCID string) (Remote, error) {
	m := s.merged()
	if c, err := cid.Decode(nameOrCID); err == nil {
		if err := manifest.CheckCID(c); err != nil {
			return Remote{}, fmt.Errorf("resolve %q: %w", nameOrCID, err)
		}
		r, ok := m[c]
		s.mu.Lock()
		own := s.index[c]
		var ownEntry Entry
		if own != nil {
			ownEntry = own.entry()
		}
		s.mu.Unlock()
		if own != nil {
			if !ok {
				r = &Remote{Entry: ownEntry}
			}
			r.Providers = append(r.Providers, ProviderInfo{ID: s.h.ID(), Online: true, Name: ownEntry.Name})
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
func (s *Service) Providers(c cid.Cid) []peer.ID {
	r, ok := s.merged()[c]
	if !ok {
		return nil
	}
	out := make([]peer.ID, len(r.Providers))
	for i, p := range r.Providers {
		out[i] = p.ID
	}
	return out
}
