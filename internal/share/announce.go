package share

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// Announcements: proto.Announcement messages on the GossipSub topic
// proto.AnnounceTopic. The publisher of a message is its signed origin
// (msg.GetFrom(), verified by pubsub), never the peer that relayed it, so
// an unpublish only ever removes entries of the peer that signed it.
// Messages of one publisher are applied in time_unix_nano order; older
// ones are dropped.
const announceTimeout = 10 * time.Second

// announcement is a validated Announcement, passed from the validator to
// the receive loop in msg.ValidatorData.
type announcement struct {
	kind    proto.Announcement_Kind
	entries []Entry   // PUBLISH
	cids    []cid.Cid // UNPUBLISH
	time    int64
}

func (s *Service) joinTopic() error {
	ps := s.cfg.PubSub
	if err := ps.RegisterTopicValidator(proto.AnnounceTopic, s.validateAnnouncement); err != nil {
		return fmt.Errorf("share: register announce validator: %w", err)
	}
	t, err := ps.Join(proto.AnnounceTopic)
	if err != nil {
		ps.UnregisterTopicValidator(proto.AnnounceTopic)
		return fmt.Errorf("share: join announce topic: %w", err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		t.Close()
		ps.UnregisterTopicValidator(proto.AnnounceTopic)
		return fmt.Errorf("share: subscribe to announce topic: %w", err)
	}
	s.topic, s.sub = t, sub
	return nil
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

// validateAnnouncement is the topic validator: malformed or unsigned
// messages are rejected (and so not forwarded).
func (s *Service) validateAnnouncement(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if len(msg.GetSignature()) == 0 || msg.GetFrom() == "" {
		s.log.Debug("announce: rejected unsigned message", "via", from)
		s.rejected.Add(1)
		return pubsub.ValidationReject
	}
	a, err := parseAnnouncement(msg.GetData())
	if err == nil && a.time > time.Now().Add(maxFutureSkew).UnixNano() {
		err = fmt.Errorf("dated %s ahead of our clock", time.Duration(a.time-time.Now().UnixNano()).Round(time.Second))
	}
	if err != nil {
		s.log.Debug("announce: rejected malformed message", "origin", msg.GetFrom(), "via", from, "err", err)
		s.rejected.Add(1)
		return pubsub.ValidationReject
	}
	msg.ValidatorData = a
	return pubsub.ValidationAccept
}

// announceLoop applies announcements of other peers.
func (s *Service) announceLoop() {
	for {
		msg, err := s.sub.Next(s.ctx)
		if err != nil {
			return // closed
		}
		origin := msg.GetFrom()
		if origin == s.h.ID() {
			continue
		}
		a, ok := msg.ValidatorData.(*announcement)
		if !ok {
			continue
		}
		s.applyAnnouncement(origin, a)
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
// last UNPUBLISH_ALL) is dropped. Withdrawals from a sender we know
// nothing about, or of CIDs it never published, change nothing and leave
// no trace.
func (s *Service) applyAnnouncement(publisher peer.ID, a *announcement) {
	if publisher == s.h.ID() {
		return
	}
	v := &s.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	pc := v.peers[publisher]
	if pc == nil {
		if a.kind != proto.Announcement_PUBLISH || len(a.entries) == 0 {
			return
		}
		pc = v.peer(publisher)
	}
	now := v.tick()
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
			if _, ok := pc.entries[e.CID]; !ok && len(pc.entries) >= maxEntriesPerPeer {
				refused++
				continue
			}
			pc.entries[e.CID] = e
			pc.setStamp(e.CID, stamp{a.time, now})
			changed = true
		}
	case proto.Announcement_UNPUBLISH:
		for _, c := range a.cids {
			_, live := pc.entries[c]
			_, known := pc.stamps[c]
			if !live && !known || stale(c) {
				continue
			}
			pc.setStamp(c, stamp{a.time, now})
			if live {
				delete(pc.entries, c)
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
				delete(pc.entries, c)
				changed = true
			}
		}
		// Stamps older than allStamp say nothing allStamp does not.
		for c, st := range pc.stamps {
			if st.sent < a.time {
				delete(pc.stamps, c)
			}
		}
	}
	pc.latest = max(pc.latest, a.time)
	if refused > 0 {
		s.log.Warn("announce: sender publishes too many entries; extra ones ignored",
			"peer", publisher, "ignored", refused, "max", maxEntriesPerPeer)
	}
	if changed {
		v.notifyLocked()
	}
}

// nextAnnTime returns a strictly increasing announcement time.
func (s *Service) nextAnnTime() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.annClock = max(time.Now().UnixNano(), s.annClock+1)
	return s.annClock
}

// announce tells peers about published or withdrawn entries, split into
// messages that fit proto.MaxAnnouncementSize. Failures are logged: peers
// catch up through periodic catalog pulls.
func (s *Service) announce(kind proto.Announcement_Kind, entries []Entry) {
	if s.topic == nil || s.ctx.Err() != nil {
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
		m.TimeUnixNano = s.nextAnnTime()
		data, err := gproto.Marshal(m)
		if err != nil {
			s.log.Error("announce: marshal", "err", err)
			return
		}
		s.publishAnnouncement(kind, data)
		// GossipSub (v0.19) can drop a message published to a peer whose
		// mesh is not formed yet, as right after it connected: send the
		// same bytes once more after a heartbeat or two. Receivers order
		// announcements per (publisher, CID) by time, so a repeat is
		// idempotent and can never undo a later announcement.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(announceRepeat)
			defer t.Stop()
			select {
			case <-t.C:
				s.publishAnnouncement(kind, data)
			case <-s.ctx.Done():
			}
		}()
	}
}

// announceRepeat is when an announcement is sent a second time.
const announceRepeat = 2 * time.Second

func (s *Service) publishAnnouncement(kind proto.Announcement_Kind, data []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, announceTimeout)
	defer cancel()
	if err := s.topic.Publish(ctx, data); err != nil && s.ctx.Err() == nil {
		s.log.Warn("announce failed; peers will catch up on their next catalog pull", "kind", kind, "err", err)
	}
}
