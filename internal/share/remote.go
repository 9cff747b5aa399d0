package share

// The remote view: what each other peer publishes, as far as this node
// knows, with the per-CID stamps that order announcements. The Directory
// owns one; pull.go and announce.go write it, directory.go reads it.

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
// tombstones per sender, at most maxRemotePeers senders. A withdrawal only leaves a tombstone for a CID
// the sender published (or already has a stamp for); tombstones expire
// tombstoneTTL after we received them, by our clock, not the sender's.
type peerCatalog struct {
	entries  map[cid.Cid]Entry
	stamps   map[cid.Cid]stamp // the last applied announcement about a CID (tombstones too)
	allStamp int64             // sender time of the last applied UNPUBLISH_ALL
	allRecv  int64             // our clock when it was applied
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

func (rv *remoteView) init() {
	rv.peers = make(map[peer.ID]*peerCatalog)
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

// peer returns p's catalog, creating it (and evicting the sender heard
// from the longest ago if there are maxRemotePeers already). Callers hold
// rv.mu.
func (rv *remoteView) peer(p peer.ID) *peerCatalog {
	pc := rv.peers[p]
	if pc == nil {
		if len(rv.peers) >= maxRemotePeers {
			rv.evictPeerLocked()
		}
		pc = &peerCatalog{entries: make(map[cid.Cid]Entry), stamps: make(map[cid.Cid]stamp)}
		rv.peers[p] = pc
	}
	return pc
}

// evictPeerLocked forgets the sender heard from the longest ago: a
// connected peer is heard from at every catalog pull, so this is one gone
// for the longest. O(maxRemotePeers), only when a new sender comes at the cap.
func (rv *remoteView) evictPeerLocked() {
	var oldest peer.ID
	var at int64
	found := false
	for p, pc := range rv.peers {
		if !found || pc.heard < at {
			oldest, at, found = p, pc.heard, true
		}
	}
	if found {
		if len(rv.peers[oldest].entries) > 0 {
			rv.notifyLocked()
		}
		delete(rv.peers, oldest)
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
