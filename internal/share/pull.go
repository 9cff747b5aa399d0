package share

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// When the Directory pulls catalogs: from every peer that completes
// identify advertising the catalog protocol, from every connected one each
// CatalogInterval (to catch up on lost announcements), and on Refresh. A
// pulled catalog replaces what we held for that peer (replaceCatalog).

// maxConcurrentPulls bounds catalog pulls running at once.
const maxConcurrentPulls = 8

// pull fetches p's catalog and makes it p's complete list.
func (d *Directory) pull(ctx context.Context, p peer.ID) error {
	since := d.remote.Now() // before the request: announcements after it win
	entries, bad, err := d.fetchCatalog(ctx, p)
	if err != nil {
		return fmt.Errorf("catalog of %s: %w", p, err)
	}
	if bad > 0 {
		d.log.Warn("catalog: dropped invalid entries", "peer", p, "dropped", bad, "kept", len(entries))
	}
	d.replaceCatalog(p, since, entries)
	d.log.Debug("catalog pulled", "peer", p, "entries", len(entries))
	return nil
}

// pullBackground pulls p's catalog unless a pull of p is already running.
func (d *Directory) pullBackground(p peer.ID) {
	d.pullMu.Lock()
	if d.pulling[p] {
		d.pullMu.Unlock()
		return
	}
	d.pulling[p] = true
	d.pullMu.Unlock()
	started := d.tasks.Go(func() {
		defer func() {
			d.pullMu.Lock()
			delete(d.pulling, p)
			d.pullMu.Unlock()
		}()
		select {
		case d.pullSem <- struct{}{}:
			defer func() { <-d.pullSem }()
		case <-d.ctx.Done():
			return
		}
		if err := d.pull(d.ctx, p); err != nil && d.ctx.Err() == nil {
			d.log.Debug("catalog pull failed", "err", err)
		}
	})
	if !started {
		d.pullMu.Lock()
		delete(d.pulling, p)
		d.pullMu.Unlock()
	}
}

// eventLoop pulls the catalog of every peer that completes identify and
// supports the protocol, and reports online changes to Changes waiters.
// Pulls started here and from pullLoop share one semaphore, pullSem.
func (d *Directory) eventLoop() {
	for {
		select {
		case <-d.ctx.Done():
			return
		case ev, ok := <-d.evSub.Out():
			if !ok {
				return
			}
			switch ev := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				d.remote.markKnown(ev.Peer)
				if slices.Contains(ev.Protocols, proto.CatalogID) {
					d.pullBackground(ev.Peer)
				}
			case event.EvtPeerConnectednessChanged:
				// A sender that connects has standing from now on
				// (remote.go); every tracked one's online state shows.
				d.remote.mu.Lock()
				if pc := d.remote.peers[ev.Peer]; pc != nil {
					if ev.Connectedness == network.Connected {
						d.remote.setKnown(pc)
					}
					d.remote.notifyLocked()
				}
				d.remote.mu.Unlock()
			}
		}
	}
}

// pullLoop pulls the catalogs of connected peers at start and every
// CatalogInterval, so changes missed while announcements were lost are
// caught up.
func (d *Directory) pullLoop() {
	t := time.NewTicker(d.catalogInterval)
	defer t.Stop()
	for {
		for _, p := range d.net.ConnectedPeers(proto.CatalogID) {
			d.pullBackground(p)
		}
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh pulls the catalog of every connected peer that speaks the
// catalog protocol now, and waits for them. The error joins the peers
// that failed; the others are updated regardless.
func (d *Directory) Refresh(ctx context.Context) error {
	peers := d.net.ConnectedPeers(proto.CatalogID)
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentPulls)
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = d.pull(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// replaceCatalog makes entries, the catalog of p pulled from a request
// started at since (our clock, remoteView.Now), p's list of entries, except
// where an announcement we applied after since says otherwise: the answer
// may have been produced before it. So a catalog entry is skipped if a
// later announcement (or UNPUBLISH_ALL) touched its CID; a current entry
// announced after since is kept; every other current entry not in the
// catalog is dropped. At most maxEntriesPerPeer entries are taken, and
// new ones only as the budget allows (remote.go); p, which answered a
// stream, has standing.
func (d *Directory) replaceCatalog(p peer.ID, since int64, entries []Entry) {
	if p == d.net.ID() {
		return
	}
	rv := &d.remote
	rv.mu.Lock()
	defer rv.mu.Unlock()
	pc := rv.peer(p, true, "")
	if pc == nil {
		return
	}
	pc.heard = rv.tick()
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
	if entriesEqual(pc.entries, next) {
		if dropped > 0 {
			d.log.Warn("catalog: peer lists too many entries; extra ones ignored", "peer", p, "ignored", dropped, "max", maxEntriesPerPeer)
		}
		return
	}
	for c := range pc.entries {
		if _, ok := next[c]; !ok {
			rv.delEntry(pc, c)
		}
	}
	for c, e := range next {
		if old, ok := pc.entries[c]; ok && sameEntry(old, e) {
			continue
		}
		e, ok := rv.fit(pc, e)
		if !ok {
			dropped++
			continue
		}
		rv.putEntry(pc, e)
	}
	if dropped > 0 {
		rv.refused += int64(dropped)
		d.log.Warn("catalog: entries not taken (cap per sender, or memory budget for others' entries)", "peer", p, "ignored", dropped)
	}
	rv.notifyLocked()
}

func entriesEqual(a, b map[cid.Cid]Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !sameEntry(x, y) {
			return false
		}
	}
	return true
}

func sameEntry(x, y Entry) bool {
	return x.Name == y.Name && x.Size == y.Size && x.SHA256 == y.SHA256 &&
		x.ChunkSize == y.ChunkSize && x.Published.Equal(y.Published) && slices.Equal(x.Aliases, y.Aliases)
}
