package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/share"
)

// Events on GET /api/v1/events, as Server-Sent Events: "event: NAME" and
// one line of JSON data. Names and data:
//
//	ready        {"api":"v1","peer_id":...}: first, once the stream is subscribed
//	peer         {"change":"added|online|offline|updated","peer":Peer}
//	published    Entry: this node published a file
//	unpublished  Entry: this node withdrew a file
//	available    {"change":"added|removed|updated","file":Remote}: what
//	             other peers publish changed (updated: its providers or
//	             their online state)
//	transfer     Job: a background download was queued, progressed
//	             (about 10 times a second) or finished
//
// A client that falls more than eventBuffer events behind is dropped (the
// stream ends); it reconnects and reads the lists again.
const (
	EventReady       = "ready"
	EventPeer        = "peer"
	EventPublished   = "published"
	EventUnpublished = "unpublished"
	EventAvailable   = "available"
	EventTransfer    = "transfer"
)

// PeerEvent is the data of a "peer" event.
type PeerEvent struct {
	Change string `json:"change"`
	Peer   Peer   `json:"peer"`
}

// AvailableEvent is the data of an "available" event.
type AvailableEvent struct {
	Change string `json:"change"`
	File   Remote `json:"file"`
}

// ReadyEvent is the data of the "ready" event.
type ReadyEvent struct {
	API    string `json:"api"`
	PeerID string `json:"peer_id"`
}

const (
	eventBuffer = 1024
	// sseKeepalive: a comment line this often lets both ends notice a
	// dead connection.
	sseKeepalive = 15 * time.Second
	// availableCoalesce: changes of the remote view closer together than
	// this are diffed once (a catalog pull changes many entries).
	availableCoalesce = 200 * time.Millisecond
	// publishedPoll: how often the published list is compared with the
	// last one sent, to see the prompt's publishes (the API's own wake
	// the watcher at once).
	publishedPoll = 2 * time.Second
)

// hub fans events out to the open streams.
type hub struct {
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan []byte]struct{}{}} }

// subscribe returns a channel of formatted events, closed when the
// subscriber falls behind or the hub closes, and a func to unsubscribe.
func (h *hub) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, eventBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// send formats one event and queues it for every subscriber, never
// blocking: a subscriber whose queue is full is dropped.
func (h *hub) send(name string, data any) {
	frame := formatEvent(name, data)
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- frame:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

func formatEvent(name string, data any) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: ", name)
	enc := json.NewEncoder(&b) // one line: Encode ends it with \n
	enc.SetEscapeHTML(false)
	enc.Encode(data)
	b.WriteString("\n")
	return b.Bytes()
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	ch, unsub := s.events.subscribe()
	defer unsub()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(formatEvent(EventReady, ReadyEvent{API: "v1", PeerID: s.cfg.Node.ID().String()})); err != nil {
		return
	}
	rc.Flush()
	tick := time.NewTicker(sseKeepalive)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case frame, ok := <-ch:
			if !ok {
				return
			}
			_, err = w.Write(frame)
		case <-tick.C:
			_, err = w.Write([]byte(": keepalive\n\n"))
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// startWatchers turns the services' changes into events.
func (s *Server) startWatchers() {
	events, stop := s.cfg.Node.Peers().Subscribe()
	s.watchers.Add(3)
	go func() {
		defer s.watchers.Done()
		defer stop()
		s.watchPeers(events)
	}()
	go func() {
		defer s.watchers.Done()
		s.watchAvailable()
	}()
	go func() {
		defer s.watchers.Done()
		s.watchPublished()
	}()
}

func (s *Server) watchPeers(events <-chan p2p.PeerEvent) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			s.events.send(EventPeer, PeerEvent{Change: ev.Kind.String(), Peer: s.peerOf(ev.Peer)})
		}
	}
}

// remoteKey is what an "updated" event compares: the entry and its
// providers with their state.
func remoteKey(r Remote) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%s", r.Name, r.Size, r.SHA256)
	for _, p := range r.Providers {
		fmt.Fprintf(&b, "|%s,%t,%s", p.PeerID, p.Online, p.Name)
	}
	return b.String()
}

func (s *Server) watchAvailable() {
	last := map[string]string{} // CID -> remoteKey
	for first := true; ; first = false {
		changed := s.cfg.Share.Changes()
		now := map[string]Remote{}
		for _, r := range s.cfg.Share.Available() {
			now[r.CID.String()] = remoteOf(r)
		}
		if !first { // the first listing is the state, not a change
			s.diffAvailable(last, now)
		}
		last = make(map[string]string, len(now))
		for c, r := range now {
			last[c] = remoteKey(r)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-changed:
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(availableCoalesce):
		}
	}
}

func (s *Server) diffAvailable(last map[string]string, now map[string]Remote) {
	for _, c := range sortedKeys(now) {
		r := now[c]
		switch old, ok := last[c]; {
		case !ok:
			s.events.send(EventAvailable, AvailableEvent{Change: "added", File: r})
		case old != remoteKey(r):
			s.events.send(EventAvailable, AvailableEvent{Change: "updated", File: r})
		}
	}
	for _, c := range sortedKeys(last) {
		if _, ok := now[c]; !ok {
			s.events.send(EventAvailable, AvailableEvent{Change: "removed", File: Remote{CID: c, Providers: []Provider{}}})
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// watchPublished sends published and unpublished events, comparing the
// list with the last one seen: after each API publish or unpublish, and
// every publishedPoll for the prompt's.
func (s *Server) watchPublished() {
	snapshot := func() map[string]share.Entry {
		m := map[string]share.Entry{}
		for _, e := range s.cfg.Share.Published() {
			m[e.CID.String()] = e
		}
		return m
	}
	last := snapshot()
	tick := time.NewTicker(publishedPoll)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.pubChanged:
		case <-tick.C:
		}
		now := snapshot()
		for _, c := range sortedKeys(now) {
			if _, ok := last[c]; !ok {
				s.events.send(EventPublished, entryOf(now[c]))
			}
		}
		for _, c := range sortedKeys(last) {
			if _, ok := now[c]; !ok {
				s.events.send(EventUnpublished, entryOf(last[c]))
			}
		}
		last = now
	}
}

// publishedChanged wakes watchPublished.
func (s *Server) publishedChanged() {
	select {
	case s.pubChanged <- struct{}{}:
	default:
	}
}
