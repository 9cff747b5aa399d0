package share

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// Announcements: proto.Announcement messages on the Broadcast topic
// proto.AnnounceTopic. The Library sends them when it publishes or
// withdraws; the Directory validates and applies those of other peers.
// The publisher of a message is its signed origin (verified by the
// Broadcast, GossipSub in the binary), never the peer that relayed it, so
// an unpublish only ever removes entries of the peer that signed it.
// Messages of one publisher are applied per CID in time_unix_nano order;
// older ones are dropped.
const announceTimeout = 10 * time.Second

// announcement is a validated Announcement, passed from the validator to
// the receive loop by Topic.Next.
type announcement struct {
	kind    proto.Announcement_Kind
	entries []Entry   // PUBLISH
	cids    []cid.Cid // UNPUBLISH
	time    int64
	// via is the peer that passed the message on ("" in tests that apply
	// announcements directly: taken as the publisher itself); known says
	// whether the publisher has standing (see peerCatalog.known).
	via   peer.ID
	known bool
}

// parseAnnouncement checks an announcement completely.
func parseAnnouncement(data []byte) (*announcement, error) {
	if len(data) > proto.MaxAnnouncementSize {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), proto.MaxAnnouncementSize)
	}
	var m proto.Announcement
	if err := gproto.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	a := &announcement{kind: m.GetKind(), time: m.GetTimeUnixNano()}
	if a.time <= 0 {
		return nil, fmt.Errorf("no time")
	}
	switch a.kind {
	case proto.Announcement_PUBLISH:
		for _, pe := range m.GetEntries() {
			e, err := fromWire(pe)
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", pe.GetName(), err)
			}
			a.entries = append(a.entries, e)
		}
	case proto.Announcement_UNPUBLISH:
		for _, pe := range m.GetEntries() {
			c, err := cid.Cast(pe.GetCid())
			if err == nil {
				err = manifest.CheckCID(c)
			}
			if err != nil {
				return nil, fmt.Errorf("unpublish entry: bad CID: %w", err)
			}
			a.cids = append(a.cids, c)
		}
	case proto.Announcement_UNPUBLISH_ALL:
	default:
		return nil, fmt.Errorf("unknown kind %d", a.kind)
	}
	return a, nil
}

// validateAnnouncement is the topic's Validator: unsigned or malformed
// messages are refused (and so not forwarded); so are, without blame for
// the peer that passed them on (errIgnore), announcements older than the
// newest applied from their publisher (replays, see marks.go) and
// publishes from unknown senders through a relay that has used up its
// share (maxRelayedEntries).
func (d *Directory) validateAnnouncement(origin, via peer.ID, data []byte) (any, error) {
	if origin == "" {
		d.log.Debug("announce: rejected unsigned message", "via", via)
		d.rejected.Add(1)
		return nil, errors.New("unsigned")
	}
	a, err := parseAnnouncement(data)
	if err == nil && a.time > time.Now().Add(maxFutureSkew).UnixNano() {
		err = fmt.Errorf("dated %s ahead of our clock", time.Duration(a.time-time.Now().UnixNano()).Round(time.Second))
	}
	if err != nil {
		d.log.Debug("announce: rejected malformed message", "origin", origin, "via", via, "err", err)
		d.rejected.Add(1)
		return nil, err
	}
	if origin == d.net.ID() {
		return a, nil
	}
	a.via = via
	a.known = via == origin || d.knownPeer(origin)
	rv := &d.remote
	rv.mu.Lock()
	stale := rv.marks.stale(origin, a.time, rv.tick())
	full := false
	if pc := rv.peers[origin]; a.kind == proto.Announcement_PUBLISH && !a.known && (pc == nil || !pc.known) {
		l := rv.relayed[via]
		full = l != nil && l.entries >= maxRelayedEntries
	}
	rv.mu.Unlock()
	switch {
	case stale:
		d.stale.Add(1)
		d.log.Debug("announce: ignored an announcement older than its publisher's newest", "origin", origin, "via", via)
		return nil, fmt.Errorf("%w: older than the newest announcement of %s", errIgnore, origin)
	case full:
		d.refusedMsgs.Add(1)
		d.log.Debug("announce: ignored a publish by an unknown sender: its relay's share is used up", "origin", origin, "via", via)
		return nil, fmt.Errorf("%w: relay %s holds %d entries of unknown senders", errIgnore, via, maxRelayedEntries)
	}
	return a, nil
}

// errIgnore wraps a validator's refusal of a well-formed message that is
// not the fault of the peer passing it on: GossipSub drops it without
// penalising that peer (pubsub.ValidationIgnore).
var errIgnore = errors.New("ignored")

// announceLoop applies announcements of other peers.
func (d *Directory) announceLoop() {
	for {
		origin, val, err := d.topic.Next(d.ctx)
		if err != nil {
			return // closed
		}
		if origin == d.net.ID() {
			continue
		}
		if a, ok := val.(*announcement); ok {
			d.applyAnnouncement(origin, a)
		}
	}
}

// tombstoneTTL is how long (by our clock, from when we received it) the
// time of a withdrawal is remembered to drop a publish of the same CID
// that was sent before it but delivered after it.
const tombstoneTTL = 10 * time.Minute

// maxFutureSkew: announcements dated further ahead of our clock are
// rejected; they would outrank every real announcement of their sender.
const maxFutureSkew = 10 * time.Minute

// applyAnnouncement applies a to the entries of publisher, its signer. A
// message older than the last one applied about the same CID (or than the
// last UNPUBLISH_ALL), or than the newest one from the publisher beyond the
// reorder window (marks.go), is dropped. Withdrawals from a sender we know
// nothing about, or of CIDs it never published, change nothing and leave
// no trace. New entries must fit the caps and the budget (remote.go).
func (d *Directory) applyAnnouncement(publisher peer.ID, a *announcement) {
	if publisher == d.net.ID() {
		return
	}
	known := a.via == "" || a.via == publisher || a.known
	rv := &d.remote
	rv.mu.Lock()
	defer rv.mu.Unlock()
	now := rv.tick()
	if rv.marks.stale(publisher, a.time, now) {
		d.stale.Add(1)
		return
	}
	pc := rv.peers[publisher]
	if pc == nil {
		if a.kind != proto.Announcement_PUBLISH || len(a.entries) == 0 {
			return
		}
		if pc = rv.peer(publisher, known, a.via); pc == nil {
			rv.refused += int64(len(a.entries))
			d.log.Debug("announce: no room for another unknown sender", "peer", publisher, "via", a.via)
			return
		}
	} else if known {
		rv.setKnown(pc)
	}
	pc.heard = now
	stale := func(c cid.Cid) bool { return a.time <= max(pc.stamps[c].sent, pc.allStamp) }
	changed := false
	refused := 0
	switch a.kind {
	case proto.Announcement_PUBLISH:
		for _, e := range a.entries {
			if stale(e.CID) {
				continue
			}
			if _, ok := pc.entries[e.CID]; !ok && !rv.admit(pc, e) {
				refused++
				continue
			}
			rv.putEntry(pc, e)
			rv.putStamp(pc, e.CID, stamp{a.time, now})
			changed = true
		}
	case proto.Announcement_UNPUBLISH:
		for _, c := range a.cids {
			_, live := pc.entries[c]
			_, known := pc.stamps[c]
			if !live && !known || stale(c) {
				continue
			}
			rv.putStamp(pc, c, stamp{a.time, now})
			if rv.delEntry(pc, c) {
				changed = true
			}
		}
	case proto.Announcement_UNPUBLISH_ALL:
		if a.time <= pc.allStamp {
			break
		}
		pc.allStamp, pc.allRecv = a.time, now
		for c := range pc.entries {
			if pc.stamps[c].sent < a.time {
				rv.delEntry(pc, c)
				changed = true
			}
		}
		// Stamps older than allStamp say nothing allStamp does not.
		for c, st := range pc.stamps {
			if st.sent < a.time {
				rv.delStamp(pc, c)
			}
		}
	}
	if len(pc.entries) == 0 && len(pc.stamps) == 0 && pc.allStamp == 0 {
		rv.dropPeer(publisher) // all refused: leave no trace
	} else {
		rv.marks.advance(publisher, a.time, now, rv.standing)
	}
	if refused > 0 {
		rv.refused += int64(refused)
		d.log.Warn("announce: entries not taken (cap per sender or per relay, or memory budget for others' entries)",
			"peer", publisher, "via", a.via, "ignored", refused)
	}
	if changed {
		rv.notifyLocked()
	}
}

// nextAnnTime returns a strictly increasing announcement time.
func (l *Library) nextAnnTime() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.annClock = max(time.Now().UnixNano(), l.annClock+1)
	return l.annClock
}

// announce tells peers about published or withdrawn entries, split into
// messages that fit proto.MaxAnnouncementSize. Failures are logged: peers
// catch up through periodic catalog pulls.
func (l *Library) announce(kind proto.Announcement_Kind, entries []Entry) {
	if l.topic == nil || l.ctx.Err() != nil {
		return
	}
	var msgs []*proto.Announcement
	cur := &proto.Announcement{Kind: kind}
	size := 32
	for _, e := range entries {
		pe := toWire(e)
		if kind != proto.Announcement_PUBLISH {
			pe = &proto.CatalogEntry{Cid: e.CID.Bytes()}
		}
		n := gproto.Size(pe) + 8
		if len(cur.Entries) > 0 && size+n > proto.MaxAnnouncementSize {
			msgs = append(msgs, cur)
			cur, size = &proto.Announcement{Kind: kind}, 32
		}
		cur.Entries = append(cur.Entries, pe)
		size += n
	}
	msgs = append(msgs, cur)
	for _, m := range msgs {
		m.TimeUnixNano = l.nextAnnTime()
		data, err := gproto.Marshal(m)
		if err != nil {
			l.log.Error("announce: marshal", "err", err)
			return
		}
		l.publishAnnouncement(kind, data)
		// GossipSub (v0.19) can drop a message published to a peer whose
		// mesh is not formed yet, as right after it connected: send the
		// same bytes once more after a heartbeat or two. Receivers order
		// announcements per (publisher, CID) by time, so a repeat is
		// idempotent and can never undo a later announcement.
		l.tasks.Go(func() {
			t := time.NewTimer(announceRepeat)
			defer t.Stop()
			select {
			case <-t.C:
				l.publishAnnouncement(kind, data)
			case <-l.ctx.Done():
			}
		})
	}
}

// announceRepeat is when an announcement is sent a second time.
const announceRepeat = 2 * time.Second

func (l *Library) publishAnnouncement(kind proto.Announcement_Kind, data []byte) {
	ctx, cancel := context.WithTimeout(l.ctx, announceTimeout)
	defer cancel()
	if err := l.topic.Publish(ctx, data); err != nil && l.ctx.Err() == nil {
		l.log.Warn("announce failed; peers will catch up on their next catalog pull", "kind", kind, "err", err)
	}
}
