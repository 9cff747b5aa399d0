package share

// Announcement high-water marks: per publisher, the sender time of the
// newest announcement applied. Per-CID stamps (remote.go) order the
// announcements about one CID, but they are tombstones that expire
// (tombstoneTTL), are capped, and are lost at a restart: without more, a
// withdrawn file's old signed PUBLISH, replayed by anyone who kept it,
// brings the file back once its tombstone is gone. So an announcement
// older than the newest one applied from its publisher is dropped, except
// within reorderWindow of it (pubsub validates messages concurrently and
// may deliver one publisher's messages out of order, e.g. a withdrawal of
// the old CID after the publish of the new one), where the stamps, which
// live far longer than the window, decide.
//
// The marks are kept in the datastore (flushed every markFlushInterval
// and at Close), so a restart does not reopen the replay; loaded marks are
// strict (no reorder window). They are bounded in number (maxMarks): at
// the cap, those of senders with no standing and heard from the longest
// ago go first.

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// reorderWindow: how far (sender time) behind a publisher's newest
	// announcement, and how soon after it arrived (our clock), an older
	// one is still applied. GossipSub delivers within seconds (its gossip
	// history spans a few heartbeats of a second); tombstoneTTL is ten
	// times longer, so a replay inside the window meets the tombstone.
	reorderWindow = time.Minute
	// maxMarks bounds the publishers remembered: several times the
	// senders tracked, since marks outlive evicted catalogs.
	maxMarks = 4 * maxRemotePeers
	// markFlushInterval: how often changed marks are written. A crash
	// loses at most this much, which only reopens replays of
	// announcements sent in those last seconds.
	markFlushInterval = 5 * time.Second
	markPrefix        = "/announced"
	// loadedRecv is the receive time of a loaded mark: long ago, so no
	// reorder window applies to it.
	loadedRecv = math.MinInt64 / 4
)

type mark struct {
	hwm   int64 // sender time of the newest announcement applied
	recv  int64 // our clock when it arrived (loadedRecv: loaded)
	seen  int64 // wall clock, unix ns, of the last advance (persisted)
	dirty bool  // not yet written
}

// marks is the set of high-water marks, guarded by the remoteView's mu.
type marks struct {
	m    map[peer.ID]*mark
	gone map[peer.ID]bool // evicted: to delete from the datastore
}

func (ms *marks) init() {
	ms.m = make(map[peer.ID]*mark)
	ms.gone = make(map[peer.ID]bool)
}

// stale reports whether an announcement of p sent at t (our clock now)
// comes too late: older than p's newest applied announcement, and not one
// sent just before it that arrives just after it.
func (ms *marks) stale(p peer.ID, t, now int64) bool {
	m := ms.m[p]
	if m == nil || t >= m.hwm {
		return false
	}
	return t < m.hwm-int64(reorderWindow) || now-m.recv > int64(reorderWindow)
}

// advance records that an announcement of p sent at t was applied. standing
// tells, at the cap, which marks to keep.
func (ms *marks) advance(p peer.ID, t, now int64, standing func(peer.ID) bool) {
	m := ms.m[p]
	if m == nil {
		if len(ms.m) >= maxMarks {
			ms.evict(standing)
		}
		m = &mark{}
		ms.m[p] = m
		delete(ms.gone, p)
	}
	if t > m.hwm {
		m.hwm, m.recv, m.seen, m.dirty = t, now, time.Now().UnixNano(), true
	}
}

// evict forgets a tenth of the marks: those of senders without standing
// first, then those advanced the longest ago.
func (ms *marks) evict(standing func(peer.ID) bool) {
	type cand struct {
		p     peer.ID
		known bool
		seen  int64
	}
	cs := make([]cand, 0, len(ms.m))
	for p, m := range ms.m {
		cs = append(cs, cand{p, standing(p), m.seen})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.known != b.known {
			if a.known {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.seen, b.seen)
	})
	for _, c := range cs[:max(1, len(cs)/10)] {
		delete(ms.m, c.p)
		ms.gone[c.p] = true
	}
}

func markKey(p peer.ID) datastore.Key {
	return datastore.NewKey(markPrefix + "/" + p.String())
}

// load reads the marks kept in ds (the newest maxMarks of them).
func (ms *marks) load(ctx context.Context, ds datastore.Datastore) (bad int, err error) {
	res, err := ds.Query(ctx, query.Query{Prefix: markPrefix})
	if err != nil {
		return 0, fmt.Errorf("query announcement marks: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return bad, fmt.Errorf("read announcement marks: %w", r.Error)
		}
		p, err := peer.Decode(strings.TrimPrefix(r.Key, markPrefix+"/"))
		if err != nil || len(r.Value) != 16 {
			bad++
			ms.gone[peer.ID(r.Key)] = true // deleted at the next flush
			continue
		}
		ms.m[p] = &mark{
			hwm:  int64(binary.BigEndian.Uint64(r.Value)),
			seen: int64(binary.BigEndian.Uint64(r.Value[8:])),
			recv: loadedRecv,
		}
	}
	for len(ms.m) > maxMarks {
		ms.evict(func(peer.ID) bool { return false })
	}
	return bad, nil
}

// markWrite is one pending datastore change: a put, or a delete (nil).
type markWrite struct {
	key   datastore.Key
	value []byte
	p     peer.ID
}

// pending takes the changes to write, marking them clean. Callers hold
// the lock; write them with writeMarks outside it.
func (ms *marks) pending() []markWrite {
	var out []markWrite
	for p, m := range ms.m {
		if m.dirty {
			v := make([]byte, 16)
			binary.BigEndian.PutUint64(v, uint64(m.hwm))
			binary.BigEndian.PutUint64(v[8:], uint64(m.seen))
			out = append(out, markWrite{markKey(p), v, p})
			m.dirty = false
		}
	}
	for p := range ms.gone {
		k := markKey(p)
		if strings.HasPrefix(string(p), markPrefix) { // a bad key as loaded
			k = datastore.NewKey(string(p))
		}
		out = append(out, markWrite{key: k, p: p})
	}
	clear(ms.gone)
	return out
}

// redo puts back changes that could not be written.
func (ms *marks) redo(ws []markWrite) {
	for _, w := range ws {
		if w.value == nil {
			if ms.m[w.p] == nil {
				ms.gone[w.p] = true
			}
		} else if m := ms.m[w.p]; m != nil {
			m.dirty = true
		}
	}
}

func writeMarks(ctx context.Context, ds datastore.Batching, ws []markWrite) error {
	if len(ws) == 0 {
		return nil
	}
	b, err := ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if w.value == nil {
			err = b.Delete(ctx, w.key)
		} else {
			err = b.Put(ctx, w.key, w.value)
		}
		if err != nil {
			return err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	return ds.Sync(ctx, datastore.NewKey(markPrefix))
}
