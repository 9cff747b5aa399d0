package share

// The remote view: what each other peer publishes, as far as this node
// knows, with the per-CID stamps that order announcements, and the budget
// that bounds all of it. The Directory owns one; pull.go and announce.go
// write it, directory.go reads it.

import (
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerCatalog is what one peer publishes, as far as we know.
//
// Announcements are ordered per (publisher, CID), not per publisher:
// pubsub validates messages concurrently and may deliver one publisher's
// messages out of order, so "withdraw old CID" followed by "publish new
// CID" can arrive the other way round; both must apply.
//
// Everything here is bounded, since any signed sender can fill it: at most
// maxEntriesPerPeer entries (each with its stamp) and maxStampsPerPeer
// tombstones per sender, at most maxRemotePeers senders, and, over all
// senders, the global budget (see the constants). A withdrawal only leaves
// a tombstone for a CID the sender published (or already has a stamp
// for); tombstones expire tombstoneTTL after we received them, by our
// clock, not the sender's.
//
// All changes of entries and stamps go through the remoteView methods
// putEntry, delEntry, putStamp and delStamp, which keep the accounting
// (count, cost, relayed) right.
type peerCatalog struct {
	entries  map[cid.Cid]Entry
	stamps   map[cid.Cid]stamp // the last applied announcement about a CID (tombstones too)
	allStamp int64             // sender time of the last applied UNPUBLISH_ALL
	allRecv  int64             // our clock when it was applied
	heard    int64             // our clock: last announcement or catalog applied
	writes   int               // stamps written since the last sweep

	// known: the sender has standing with us: it was connected to us (it
	// sent its own announcements, or answered a catalog request), or it
	// is in the peer table. An unknown sender is a signing key we only
	// heard of through another peer; via is that peer, charged with what
	// its unknown senders hold.
	known bool
	via   peer.ID
	cost  int // bytes charged for its entries and stamps
}

// stamp is the sender's time of an announcement and our receive time.
type stamp struct {
	sent, recv int64
}

// Bounds on what other peers can make us remember.
//
// Per sender, as before: maxEntriesPerPeer entries, maxStampsPerPeer
// tombstones, and maxRemotePeers senders. Those alone allow 10^7 entries
// (13 GiB measured): any process can make signing keys for free, and one
// connected peer can relay announcements signed by as many as it likes.
// So there is a budget over all senders, in entries and in bytes (names
// are up to proto.MaxNameLen bytes; tombstones cost bytes too), sized for
// a large LAN (hundreds of publishers with hundreds of files each) and a
// node's memory: the byte budget is the heap it allows, about 32 MiB
// whatever the mix of names and tombstones (entryCost is the measured
// heap of an entry). When it is full, room is made by evicting from the senders with
// the least standing first: unknown senders (keys only heard through a
// relay) before known ones; among those, the largest holder first (a relay
// charged with its unknown senders counts as one holder). A sender is never
// evicted for a sender of less standing, nor for a smaller holder of the
// same standing: such entries are refused instead. So a flood, however
// many keys it signs with, only ever displaces the flooder's own entries
// and those of strangers holding more than the newcomer, never what a known
// publisher (offline ones included) has announced.
//
// What a relay can inject for unknown senders is capped on its own, at
// maxRelayedEntries: a tenth of the budget, enough for the publishers
// beyond our direct peers that a GossipSub mesh (about six peers) brings
// through each mesh peer.
const (
	maxEntriesPerPeer = 10000
	maxStampsPerPeer  = 10000 // tombstones: stamps of CIDs with no live entry
	maxRemotePeers    = 1000

	maxRemoteEntries  = 50000
	maxRemoteBytes    = 32 << 20
	maxRelayedEntries = maxRemoteEntries / 10

	// entryOverhead is the heap an entry costs beyond its name, measured
	// (TestEntryCostMatchesHeap): the Entry in its map, its CID twice
	// (entries and stamps keys) and its stamp, with the maps' slack.
	entryOverhead = 440
	// stampCost is what a stamp without an entry (a tombstone) costs.
	stampCost = 160
	// evictSlack: eviction frees this much more than needed, so that a
	// full budget is not searched for a victim at every entry.
	evictSlackEntries = maxRemoteEntries / 100
	evictSlackBytes   = maxRemoteBytes / 100

	// sweepMin: expired tombstones are swept once at least this many
	// stamps (and half the stamps held) were written since the last sweep,
	// so the cost of sweeping is amortised over the writes.
	sweepMin = 64
)

// entryCost is what e is charged, stamp not included: its other names
// (at most maxNamesPerEntry-1, aliases.go) are charged like its first.
func entryCost(e Entry) int {
	c := entryOverhead - stampCost + len(e.Name)
	for _, a := range e.Aliases {
		c += aliasCost + len(a)
	}
	return c
}

// relayLoad is what the unknown senders introduced by one relay hold.
type relayLoad struct{ entries, cost int }

// remoteView holds per-(provider, CID) entries. Entries of providers that
// went offline are kept and shown offline.
type remoteView struct {
	mu      sync.Mutex
	peers   map[peer.ID]*peerCatalog
	changed chan struct{} // closed and replaced on every change
	now     func() int64  // our monotonic clock in ns; tests replace it
	clock   int64         // last value of tick

	count   int                    // live entries over all senders
	cost    int                    // bytes charged over all senders
	relayed map[peer.ID]*relayLoad // by relay: what its unknown senders hold
	refused int64                  // entries not taken (caps, budget)
	marks   marks                  // per-publisher announcement high-water marks (marks.go)
}

func (rv *remoteView) init() {
	rv.peers = make(map[peer.ID]*peerCatalog)
	rv.relayed = make(map[peer.ID]*relayLoad)
	rv.marks.init()
	rv.changed = make(chan struct{})
	epoch := time.Now()
	rv.now = func() int64 { return int64(time.Since(epoch)) } // monotonic
}

// tick returns our clock, strictly increasing across calls, so "applied
// after the pull started" is never a tie. Callers hold rv.mu.
func (rv *remoteView) tick() int64 {
	rv.clock = max(rv.now(), rv.clock+1)
	return rv.clock
}

// Now returns our clock, for replaceCatalog's since.
func (rv *remoteView) Now() int64 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.tick()
}

// notifyLocked wakes everyone waiting on Changes. Callers hold rv.mu.
func (rv *remoteView) notifyLocked() {
	close(rv.changed)
	rv.changed = make(chan struct{})
}

// peer returns p's catalog, creating it if need be: known says whether p
// has standing (see peerCatalog.known), via is the relay its announcement
// came through. At maxRemotePeers senders, one is evicted to make room
// (see evictPeerLocked); nil if none may be. Callers hold rv.mu.
func (rv *remoteView) peer(p peer.ID, known bool, via peer.ID) *peerCatalog {
	pc := rv.peers[p]
	if pc != nil {
		if known {
			rv.setKnown(pc)
		}
		return pc
	}
	if len(rv.peers) >= maxRemotePeers && !rv.evictPeerLocked(known, via) {
		return nil
	}
	pc = &peerCatalog{entries: make(map[cid.Cid]Entry), stamps: make(map[cid.Cid]stamp), known: known}
	if !known {
		pc.via = via
	}
	rv.peers[p] = pc
	return pc
}

// setKnown gives pc standing: what it holds is no longer charged to the
// relay that introduced it.
func (rv *remoteView) setKnown(pc *peerCatalog) {
	if pc.known {
		return
	}
	if l := rv.relayed[pc.via]; l != nil {
		l.entries -= len(pc.entries)
		l.cost -= pc.cost
		if l.entries <= 0 && l.cost <= 0 {
			delete(rv.relayed, pc.via)
		}
	}
	pc.known, pc.via = true, ""
}

// standing reports whether p is a tracked sender with standing.
func (rv *remoteView) standing(p peer.ID) bool {
	pc := rv.peers[p]
	return pc != nil && pc.known
}

// markKnown gives p standing if we track it (it connected to us).
func (rv *remoteView) markKnown(p peer.ID) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	pc := rv.peers[p]
	if pc != nil {
		rv.setKnown(pc)
	}
	return pc != nil
}

// charge adds entries and cost to pc's account and to the totals.
func (rv *remoteView) charge(pc *peerCatalog, entries, cost int) {
	pc.cost += cost
	rv.count += entries
	rv.cost += cost
	if pc.known {
		return
	}
	l := rv.relayed[pc.via]
	if l == nil {
		l = &relayLoad{}
		rv.relayed[pc.via] = l
	}
	l.entries += entries
	l.cost += cost
	if l.entries <= 0 && l.cost <= 0 {
		delete(rv.relayed, pc.via)
	}
}

func (rv *remoteView) putEntry(pc *peerCatalog, e Entry) {
	old, ok := pc.entries[e.CID]
	if ok {
		rv.charge(pc, -1, -entryCost(old))
	}
	if ok && old.Name == e.Name {
		e.heard = old.heard
	} else {
		e.heard = rv.tick()
	}
	pc.entries[e.CID] = e
	rv.charge(pc, 1, entryCost(e))
}

func (rv *remoteView) delEntry(pc *peerCatalog, c cid.Cid) bool {
	old, ok := pc.entries[c]
	if ok {
		delete(pc.entries, c)
		rv.charge(pc, -1, -entryCost(old))
	}
	return ok
}

func (rv *remoteView) delStamp(pc *peerCatalog, c cid.Cid) {
	if _, ok := pc.stamps[c]; ok {
		delete(pc.stamps, c)
		rv.charge(pc, 0, -stampCost)
	}
}

// putStamp records an announcement about c, keeping the stamps bounded.
func (rv *remoteView) putStamp(pc *peerCatalog, c cid.Cid, st stamp) {
	if _, ok := pc.stamps[c]; !ok {
		rv.charge(pc, 0, stampCost)
	}
	pc.stamps[c] = st
	pc.writes++
	if pc.writes >= max(sweepMin, len(pc.stamps)/2) || len(pc.stamps) > maxEntriesPerPeer+maxStampsPerPeer {
		rv.sweep(pc, st.recv)
	}
}

// admit reports whether pc may hold one more entry e (a new CID),
// evicting others' entries if the budget requires it and allows it.
// Callers hold rv.mu and count refusals.
func (rv *remoteView) admit(pc *peerCatalog, e Entry) bool {
	if len(pc.entries) >= maxEntriesPerPeer {
		return false
	}
	if !pc.known {
		if l := rv.relayed[pc.via]; l != nil && l.entries >= maxRelayedEntries {
			return false
		}
	}
	cost := entryCost(e)
	if _, ok := pc.stamps[e.CID]; !ok {
		cost += stampCost
	}
	return rv.makeRoom(pc, 1, cost)
}

// makeRoom reports whether entries more entries and cost more bytes fit
// the budget for pc, evicting others' entries if the budget requires it
// and allows it. Callers hold rv.mu.
func (rv *remoteView) makeRoom(pc *peerCatalog, entries, cost int) bool {
	for rv.count+entries > maxRemoteEntries || rv.cost+cost > maxRemoteBytes {
		v := rv.victim(pc)
		if v == nil {
			return false
		}
		rv.shed(v, rv.count+entries+evictSlackEntries-maxRemoteEntries, rv.cost+cost+evictSlackBytes-maxRemoteBytes)
	}
	return true
}

// fit is what pc may hold of e, and whether it may hold it at all: an
// entry of a new CID must be admitted; one of a CID pc holds is taken, but
// names it adds beyond the ones held must fit the budget, or it keeps only
// its first. Callers hold rv.mu and count refusals.
func (rv *remoteView) fit(pc *peerCatalog, e Entry) (Entry, bool) {
	old, ok := pc.entries[e.CID]
	if !ok {
		return e, rv.admit(pc, e)
	}
	if extra := entryCost(e) - entryCost(old); len(e.Aliases) > len(old.Aliases) && extra > 0 && !rv.makeRoom(pc, 0, extra) {
		e.Aliases = nil
	}
	if _, ok := pc.entries[e.CID]; !ok { // shed to make that room: new again
		return e, rv.admit(pc, e)
	}
	return e, true
}

// victim is the sender to evict from so that pc can hold more, by the
// rule of the budget (see the constants): nil if there is none.
func (rv *remoteView) victim(pc *peerCatalog) *peerCatalog {
	// Unknown senders go first, grouped by the relay charged with them.
	var group peer.ID
	groupCost := -1
	for via, l := range rv.relayed {
		if l.cost > groupCost {
			group, groupCost = via, l.cost
		}
	}
	if groupCost > 0 {
		own := -1 // pc's own load at the same standing; -1: pc is known
		if !pc.known {
			own = 0
			if l := rv.relayed[pc.via]; l != nil {
				own = l.cost
			}
		}
		if own < 0 || groupCost > own {
			return rv.largestIn(func(x *peerCatalog) bool { return !x.known && x.via == group })
		}
		// pc's relay holds the most: it only displaces its own.
		return rv.largestIn(func(x *peerCatalog) bool { return !x.known && x.via == pc.via })
	}
	if !pc.known {
		return nil // never a known sender's entries for an unknown's
	}
	v := rv.largestIn(func(x *peerCatalog) bool { return x.known })
	if v == nil || v.cost <= pc.cost {
		v = pc // pc is the largest holder: it only displaces its own
	}
	if v.cost == 0 {
		return nil
	}
	return v
}

// largestIn is the sender holding the most among those in, nil if they
// hold nothing.
func (rv *remoteView) largestIn(in func(*peerCatalog) bool) *peerCatalog {
	var best *peerCatalog
	for _, pc := range rv.peers {
		if in(pc) && pc.cost > 0 && (best == nil || pc.cost > best.cost) {
			best = pc
		}
	}
	return best
}

// shed frees at least entries and bytes (or everything) from v:
// tombstones first, then entries, the least recently received first.
// Their stamps go with them: an evicted entry is forgotten, not withdrawn.
// v stays tracked, even if left empty (it may be the sender being
// applied); empty senders go first when senders are evicted.
func (rv *remoteView) shed(v *peerCatalog, entries, bytes int) {
	freedE, freedB := 0, 0
	done := func() bool { return freedE >= entries && freedB >= bytes }
	for c := range v.stamps {
		if done() {
			break
		}
		if _, live := v.entries[c]; !live {
			rv.delStamp(v, c)
			freedB += stampCost
		}
	}
	if !done() {
		cs := make([]cid.Cid, 0, len(v.entries))
		for c := range v.entries {
			cs = append(cs, c)
		}
		slices.SortFunc(cs, func(a, b cid.Cid) int {
			x, y := v.stamps[a].recv, v.stamps[b].recv
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		for _, c := range cs {
			if done() {
				break
			}
			freedB += entryCost(v.entries[c]) + stampCost
			freedE++
			rv.delEntry(v, c)
			rv.delStamp(v, c)
		}
		if freedE > 0 {
			rv.notifyLocked()
		}
	}
}

// dropPeer forgets p's catalog (its announcement mark stays).
func (rv *remoteView) dropPeer(p peer.ID) {
	pc := rv.peers[p]
	if pc == nil {
		return
	}
	if len(pc.entries) > 0 {
		rv.notifyLocked()
	}
	rv.charge(pc, -len(pc.entries), -pc.cost)
	delete(rv.peers, p)
}

// evictPeerLocked forgets one sender to make room for a new one (known
// says whether it has standing, via is its relay): an unknown sender of
// the relay charged with the most unknown senders' bytes (the newcomer's
// own relay if that is the one), one holding nothing or else the one
// heard from the longest ago;
// with no unknown sender left, for a known newcomer, the known sender
// heard from the longest ago (a connected peer is heard from at every
// catalog pull, so this is one gone for the longest). It reports whether
// it made room. O(maxRemotePeers), only when a new sender comes at the
// cap.
func (rv *remoteView) evictPeerLocked(known bool, via peer.ID) bool {
	group, groupCost, unknown := peer.ID(""), -1, 0
	counts := map[peer.ID]int{}
	for _, pc := range rv.peers {
		if !pc.known {
			unknown++
			counts[pc.via]++
		}
	}
	for g := range counts {
		c := 0
		if l := rv.relayed[g]; l != nil {
			c = l.cost
		}
		if c > groupCost {
			group, groupCost = g, c
		}
	}
	if !known && counts[via] > 0 {
		if own := rv.relayed[via]; own != nil && own.cost >= groupCost {
			group = via
		}
	}
	in := func(pc *peerCatalog) bool { return pc.known }
	switch {
	case unknown > 0:
		in = func(pc *peerCatalog) bool { return !pc.known && pc.via == group }
	case !known:
		return false
	}
	var oldest peer.ID
	var at int64
	found, empty := false, false
	for p, pc := range rv.peers {
		if !in(pc) {
			continue
		}
		e := len(pc.entries) == 0
		if !found || e && !empty || e == empty && pc.heard < at {
			oldest, at, found, empty = p, pc.heard, true, e
		}
	}
	if found {
		rv.dropPeer(oldest)
	}
	return found
}

// sweep drops tombstones received more than tombstoneTTL ago (our clock)
// and, when there are more than maxStampsPerPeer tombstones, the oldest
// down to 90% of that. Stamps of live entries are never dropped: without
// them a late, older withdrawal could remove a live entry. Called after
// Ω(len(stamps)) writes, so its cost is amortised.
func (rv *remoteView) sweep(pc *peerCatalog, now int64) {
	pc.writes = 0
	var recvs []int64
	for c, st := range pc.stamps {
		if _, live := pc.entries[c]; live {
			continue
		}
		if st.recv < now-int64(tombstoneTTL) {
			rv.delStamp(pc, c)
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
			rv.delStamp(pc, c)
			drop--
		}
	}
	for c, st := range pc.stamps { // ties (one message's stamps share a time)
		if drop <= 0 {
			break
		}
		if _, live := pc.entries[c]; !live && st.recv == cut {
			rv.delStamp(pc, c)
			drop--
		}
	}
}
