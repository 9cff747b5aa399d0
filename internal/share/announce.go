package share

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
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
	return parseMessage(&m)
}

// checkAnnouncement is parseMessage and the check of the sender's clock
// that the topic validator applies too.
func checkAnnouncement(m *proto.Announcement) (*announcement, error) {
	a, err := parseMessage(m)
	if err == nil {
		err = a.checkClock()
	}
	return a, err
}

// checkClock refuses an announcement dated further ahead of our clock
// than maxFutureSkew: it would outrank every real one of its sender.
func (a *announcement) checkClock() error {
	if a.time > time.Now().Add(maxFutureSkew).UnixNano() {
		return fmt.Errorf("dated %s ahead of our clock", time.Duration(a.time-time.Now().UnixNano()).Round(time.Second))
	}
	return nil
}

// parseMessage checks a decoded announcement completely.
func parseMessage(m *proto.Announcement) (*announcement, error) {
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
		a.entries = groupByCID(a.entries) // one per name on the wire
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
// messages from unknown senders through a relay that has used up its
// share (maxRelayedEntries), the latter before they are decoded.
func (d *Directory) validateAnnouncement(origin, via peer.ID, data []byte) (any, error) {
	if origin == "" {
		d.log.Debug("announce: rejected unsigned message", "via", via)
		d.rejected.Add(1)
		return nil, errors.New("unsigned")
	}
	// A message of a sender this node does not know, through a relay
	// that has used up its share for such senders, is ignored before it
	// is decoded: decoding (up to MaxAnnouncementSize, thousands of
	// entries) was most of what such a flood cost (the hostile bench's
	// announce flood). Withdrawals are ignored with publishes here: an
	// unknown sender's entries then wait for the budget's eviction.
	if origin != d.net.ID() && via != origin && d.relayFullFor(origin, via) {
		d.refusedMsgs.Add(1)
		d.log.Debug("announce: ignored a message of an unknown sender: its relay's share is used up", "origin", origin, "via", via)
		return nil, fmt.Errorf("%w: relay %s holds %d entries of unknown senders", errIgnore, via, maxRelayedEntries)
	}
	a, err := parseAnnouncement(data)
	if err == nil {
		err = a.checkClock()
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
	// (A relay's share for unknown senders was checked before decoding;
	// applying the announcement caps what it may still add.)
	rv := &d.remote
	rv.mu.Lock()
	stale := rv.marks.stale(origin, a.time, rv.tick())
	rv.mu.Unlock()
	if stale {
		d.stale.Add(1)
		d.log.Debug("announce: ignored an announcement older than its publisher's newest", "origin", origin, "via", via)
		return nil, fmt.Errorf("%w: older than the newest announcement of %s", errIgnore, origin)
	}
	return a, nil
}

// relayFullFor reports whether origin is a sender this node does not know
// and via a relay whose share of entries of unknown senders is used up.
func (d *Directory) relayFullFor(origin, via peer.ID) bool {
	rv := &d.remote
	rv.mu.Lock()
	l := rv.relayed[via]
	full := l != nil && l.entries >= maxRelayedEntries
	pc := rv.peers[origin]
	rv.mu.Unlock()
	return full && (pc == nil || !pc.known) && !d.knownPeer(origin)
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
			e, ok := rv.fit(pc, e)
			if !ok {
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

// announce tells peers about published or withdrawn entries: entries
// published to everyone on the topic, restricted ones to each peer of
// their audience directly (and withdrawals of those to the peers that
// were told of them), split into messages that fit
// proto.MaxAnnouncementSize. Failures are logged: peers catch up through
// periodic catalog pulls. Callers do not hold l.mu.
func (l *Library) announce(kind proto.Announcement_Kind, entries []Entry) {
	if l.ctx.Err() != nil {
		return
	}
	var public []Entry
	byPeer := make(map[peer.ID][]Entry)
	for _, e := range entries {
		if e.Audience.Public() {
			public = append(public, e)
			continue
		}
		var to map[peer.ID]bool
		if kind == proto.Announcement_PUBLISH {
			to = l.allowedSet(e.Audience)
		}
		l.mu.Lock()
		if kind == proto.Announcement_PUBLISH {
			l.told[e.CID] = to
		} else {
			to = l.told[e.CID]
			delete(l.told, e.CID)
		}
		l.mu.Unlock()
		for p := range to {
			byPeer[p] = append(byPeer[p], e)
		}
	}
	if kind == proto.Announcement_UNPUBLISH_ALL {
		// Everyone told of a restricted entry hears it directly too: the
		// topic may not reach them.
		l.mu.Lock()
		for _, to := range l.told {
			for p := range to {
				byPeer[p] = nil
			}
		}
		clear(l.told)
		l.mu.Unlock()
	}
	for p, es := range byPeer {
		l.direct(p, l.messages(kind, es))
	}
	if len(public) > 0 || kind == proto.Announcement_UNPUBLISH_ALL {
		l.broadcast(kind, l.messages(kind, public))
	}
}

// retarget tells peers that e, published, now has the audience
// e.Audience instead of old: the peers no longer allowed get a
// withdrawal, the newly allowed the entry. An entry made restricted is
// withdrawn on the topic (which every peer hears) and no longer provided
// on the DHT. Callers hold opMu, not mu.
func (l *Library) retarget(e Entry, old Audience) {
	c := e.CID
	switch {
	case old.Public():
		l.provide.Dequeue(c)
		l.broadcast(proto.Announcement_UNPUBLISH, l.messages(proto.Announcement_UNPUBLISH, []Entry{e}))
		l.announce(proto.Announcement_PUBLISH, []Entry{e})
	case e.Audience.Public():
		l.mu.Lock()
		delete(l.told, c)
		l.mu.Unlock()
		l.provide.Enqueue(c)
		l.announce(proto.Announcement_PUBLISH, []Entry{e})
	default:
		l.reconcile(e)
	}
	l.log.Info("audience changed", "name", e.Name, "cid", c, "from", old.String(), "to", e.Audience.String())
	if l.onAudience != nil {
		l.onAudience()
	}
}

// reconcile brings the peers told of e, restricted, in line with who its
// audience admits now: a withdrawal to those no longer admitted, the entry
// to those newly admitted. It reports whether anyone was revoked. Callers
// hold opMu, not mu.
func (l *Library) reconcile(e Entry) (revoked bool) {
	now := l.allowedSet(e.Audience)
	l.mu.Lock()
	told := l.told[e.CID]
	l.told[e.CID] = now
	l.mu.Unlock()
	for p := range told {
		if !now[p] {
			revoked = true
			l.direct(p, l.messages(proto.Announcement_UNPUBLISH, []Entry{e}))
		}
	}
	for p := range now {
		if !told[p] {
			l.direct(p, l.messages(proto.Announcement_PUBLISH, []Entry{e}))
		}
	}
	return revoked
}

// AudiencesChanged re-evaluates the audiences of every restricted entry,
// for when group membership changed (the people table calls it): peers
// that left a group get a withdrawal of what was published to it, peers
// that joined get the entries, and Config.OnAudienceChange runs so that
// revoked peers' downloads stop.
func (l *Library) AudiencesChanged() {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	var es []Entry
	for _, r := range l.index {
		if !r.To.Public() && !r.Changed && !r.Indirect {
			es = append(es, r.entry())
		}
	}
	for _, r := range l.colls {
		if !r.To.Public() {
			es = append(es, r.entry())
		}
	}
	l.mu.Unlock()
	revoked := false
	for _, e := range es {
		if l.reconcile(e) {
			revoked = true
		}
	}
	if revoked && l.onAudience != nil {
		l.onAudience()
	}
}

// messages cuts an announcement of kind about entries into messages that
// fit proto.MaxAnnouncementSize, each with its own (increasing) time.
// UNPUBLISH_ALL is one message without entries.
func (l *Library) messages(kind proto.Announcement_Kind, entries []Entry) []*proto.Announcement {
	var msgs []*proto.Announcement
	cur := &proto.Announcement{Kind: kind}
	size := 32
	for _, e := range entries {
		if kind == proto.Announcement_UNPUBLISH_ALL {
			break
		}
		// A PUBLISH lists every name of the CID, in the same message:
		// they replace the names its receivers held (aliases.go).
		pes := toWireAll(e)
		if kind != proto.Announcement_PUBLISH {
			pes = []*proto.CatalogEntry{{Cid: e.CID.Bytes()}}
		}
		n := wireSize(pes)
		if len(cur.Entries) > 0 && size+n > proto.MaxAnnouncementSize {
			msgs = append(msgs, cur)
			cur, size = &proto.Announcement{Kind: kind}, 32
		}
		cur.Entries = append(cur.Entries, pes...)
		size += n
	}
	msgs = append(msgs, cur)
	for _, m := range msgs {
		m.TimeUnixNano = l.nextAnnTime()
	}
	return msgs
}

// broadcast sends msgs on the announce topic, each twice (see
// announceRepeat). Only entries published to everyone go there.
func (l *Library) broadcast(kind proto.Announcement_Kind, msgs []*proto.Announcement) {
	if l.topic == nil || l.ctx.Err() != nil {
		return
	}
	for _, m := range msgs {
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

// directServiceName is the resource manager service of directed
// announcements, on both sides.
const directServiceName = "p2pshare.announce-direct"

// direct sends msgs to p, one stream each, in the background. A peer that
// cannot be reached now learns the same from its next catalog pull.
func (l *Library) direct(p peer.ID, msgs []*proto.Announcement) {
	l.tasks.Go(func() {
		for _, m := range msgs {
			if err := l.sendDirect(p, m); err != nil {
				if l.ctx.Err() == nil {
					l.log.Debug("directed announcement not delivered; the peer catches up on its next catalog pull",
						"peer", p, "kind", m.GetKind(), "err", err)
				}
				return
			}
		}
	})
}

func (l *Library) sendDirect(p peer.ID, m *proto.Announcement) error {
	ctx, cancel := context.WithTimeout(l.ctx, announceTimeout)
	defer cancel()
	// Small, like a catalog: a limited relayed connection will do.
	ctx = network.WithAllowLimitedConn(ctx, "announce")
	st, err := l.net.NewStream(ctx, p, proto.DirectAnnounceID)
	if err != nil {
		return err
	}
	if err := st.Scope().SetService(directServiceName); err != nil {
		st.Reset()
		return err
	}
	deadline, _ := ctx.Deadline()
	if err := st.SetDeadline(deadline); err != nil {
		st.Reset()
		return err
	}
	if err := proto.WriteMsg(st, m); err != nil {
		st.Reset()
		return fmt.Errorf("send: %w", err)
	}
	return st.Close()
}

// handleDirect receives one directed announcement. Its publisher is the
// stream's remote peer, authenticated by the connection, whatever the
// message says: a peer can only ever announce or withdraw its own
// entries. It is checked as a topic message is (parseAnnouncement, the
// clock skew) and applied as one the publisher sent us itself.
func (d *Directory) handleDirect(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if err := st.Scope().SetService(directServiceName); err != nil {
		st.Reset()
		return
	}
	if err := st.SetDeadline(time.Now().Add(announceTimeout)); err != nil {
		st.Reset()
		return
	}
	var m proto.Announcement
	if err := proto.NewReader(st, proto.MaxAnnouncementSize).ReadMsg(&m); err != nil {
		d.log.Debug("directed announcement: bad message", "peer", remote, "err", err)
		d.rejected.Add(1)
		st.Reset()
		return
	}
	a, err := checkAnnouncement(&m)
	if err != nil || remote == d.net.ID() {
		d.log.Debug("directed announcement: rejected", "peer", remote, "err", err)
		d.rejected.Add(1)
		st.Reset()
		return
	}
	st.Close()
	d.applyAnnouncement(remote, a)
}
