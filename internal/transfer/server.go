package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// errChanged: a published file's size or mtime changed while it was being
// served.
var errChanged = errors.New("file changed on disk")

// serverWriteBuffer is the answers a server stream buffers before writing.
const serverWriteBuffer = 32 << 10

// errEvicted: an idle session was closed to make room for others.
var errEvicted = errors.New("idle session evicted")

// Served sessions are evicted when idle, so that sessions held open for
// free (a handshake, then nothing) cannot keep anyone else from fetching.
// A session is idle while its handler waits for the first or next request
// (or for the handshake to end); it is serving while it answers one. Two
// rules, both longest idle first: one peer keeps at most
// maxIdleSessionsPerPeer idle sessions (the fetcher keeps as many for its
// next download, see poolPerPeer); and when the inbound fetch streams reach
// sessionHighWater(limit), idle sessions of any peer are closed so that at
// least the headroom stays free below the resource manager's inbound limit
// for the fetch protocol, where a new stream would be refused before its
// handler runs. A fetcher whose kept session was evicted opens a new one
// (see worker.go); one evicted mid-download retries like after any lost
// stream.
const (
	maxIdleSessionsPerPeer = 2
	// defaultSessionLimit is the inbound session limit assumed when the
	// host's resource manager does not expose its limits.
	defaultSessionLimit = 512
	// minSessionHeadroom is the least number of slots kept free.
	minSessionHeadroom = 8
)

// sessionHighWater is how many sessions may be open before idle ones are
// evicted: a sixteenth of the limit, at least minSessionHeadroom, is kept
// free.
func sessionHighWater(limit int) int {
	return max(limit-max(limit/16, minSessionHeadroom), 1)
}

type sessionState int

const (
	sessionHandshake sessionState = iota // idle: waiting for the handshake
	sessionIdle                          // idle: waiting for a request
	sessionServing                       // answering a request
)

// session is one served fetch stream, guarded by Service.mu.
type session struct {
	st      network.Stream
	remote  peer.ID
	state   sessionState
	since   time.Time // when the current state began
	evicted bool
	// cid is what the request being served (or the last one) asked for;
	// cid.Undef if it was not a valid CID.
	cid cid.Cid
	// opened: the request being served passed Source.Open (or is for a
	// collection's document): it is sending what it was asked for, and
	// Recheck must cut it if the peer may no longer have it. Until then
	// the request is checked by its own Open, after any change.
	opened bool
	// rechecks is sessionTable.rechecks when the request began (or was
	// last opened), to tell whether a Recheck ran during its Open.
	rechecks uint64
}

func (ss *session) idle() bool { return ss.state != sessionServing && !ss.evicted }

// sessionTable is the served sessions, guarded by Service.mu.
type sessionTable struct {
	all   map[network.Stream]*session
	live  int // sessions not evicted
	limit int // inbound session limit; 0 until first needed
	// rechecks counts the calls of Recheck (see markOpened).
	rechecks uint64
}

// sessionLimitLocked returns the inbound stream limit of the fetch protocol (the
// tighter of its protocol and service scopes), read once from the host's
// resource manager; called with s.mu held.
func (s *Service) sessionLimitLocked() int {
	t := &s.sessions
	if t.limit > 0 {
		return t.limit
	}
	limit := 0
	inbound := func(sc network.ResourceScope) {
		if l, ok := sc.(interface{ Limit() rcmgr.Limit }); ok {
			if n := l.Limit().GetStreamLimit(network.DirInbound); n > 0 && (limit == 0 || n < limit) {
				limit = n
			}
		}
	}
	rm := s.cfg.Host.Network().ResourceManager()
	rm.ViewProtocol(proto.FetchID, func(sc network.ProtocolScope) error { inbound(sc); return nil })
	rm.ViewService(ServiceName, func(sc network.ServiceScope) error { inbound(sc); return nil })
	if limit == 0 {
		limit = defaultSessionLimit
	}
	t.limit = limit
	return limit
}

// addSessionLocked registers a new session (in handshake) and, if the
// sessions are above the high-water mark, evicts the longest idle others.
func (s *Service) addSessionLocked(st network.Stream, remote peer.ID, now time.Time) *session {
	t := &s.sessions
	if t.all == nil {
		t.all = make(map[network.Stream]*session)
	}
	ss := &session{st: st, remote: remote, state: sessionHandshake, since: now}
	t.all[st] = ss
	t.live++
	if hw := sessionHighWater(s.sessionLimitLocked()); t.live > hw {
		s.evictLocked(t.live-hw, func(o *session) bool { return o != ss }, now)
	}
	return ss
}

// removeSessionLocked unregisters a session whose handler is returning.
func (s *Service) removeSessionLocked(ss *session) {
	delete(s.sessions.all, ss.st)
	if !ss.evicted {
		s.sessions.live--
	}
}

// setIdleLocked marks ss idle, waiting for a request until the idle
// timeout, and evicts the peer's longest idle sessions beyond
// maxIdleSessionsPerPeer. It reports false if ss was evicted meanwhile.
// The read deadline is set here, under s.mu, so that an eviction (which
// sets it to now) is never overwritten.
func (s *Service) setIdleLocked(ss *session, now time.Time) bool {
	if ss.evicted {
		return false
	}
	ss.state, ss.since, ss.opened = sessionIdle, now, false
	ss.st.SetReadDeadline(now.Add(idleTimeout))
	idle := 0
	for _, o := range s.sessions.all {
		if o.remote == ss.remote && o.state == sessionIdle && !o.evicted {
			idle++
		}
	}
	if idle > maxIdleSessionsPerPeer {
		s.evictLocked(idle-maxIdleSessionsPerPeer, func(o *session) bool {
			return o != ss && o.remote == ss.remote && o.state == sessionIdle
		}, now)
	}
	return true
}

// setServingLocked marks ss as answering a request for c. It reports
// false if ss was evicted while its handler read the request.
func (s *Service) setServingLocked(ss *session, c cid.Cid, now time.Time) bool {
	if ss.evicted {
		return false
	}
	ss.state, ss.since, ss.cid = sessionServing, now, c
	ss.opened, ss.rechecks = false, s.sessions.rechecks
	return true
}

// markOpened records that ss's request passed Source.Open and is about to
// send what it asked for. It reports false if a Recheck began since the
// request began (or since the last markOpened that failed): that Open may
// have seen the old audience, and Recheck did not look at a session not
// yet opened, so the caller must open it again.
func (s *Service) markOpened(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.rechecks != s.sessions.rechecks {
		ss.rechecks = s.sessions.rechecks
		return false
	}
	ss.opened = true
	return true
}

// Recheck closes every served session that is sending a file (or a
// collection's document) its peer may no longer fetch (Source.Open now
// refuses it): the caller changed who may fetch what (a file's audience,
// a group). Its stream is reset, so a running download from this node
// stops at once rather than at the end of the request under way; its
// next request, like any, is checked again by Source.Open and answered
// NOT_SERVED, which ends the fetcher's download (it asks a provider that
// cut its stream but is still connected again at once: see swarm.reask).
// A request that has not passed Source.Open yet is left alone: its own
// Open sees the change, or opens again (markOpened), and it is refused
// with an answer rather than a reset, which the fetcher could not tell
// from a lost connection.
func (s *Service) Recheck() {
	type serving struct {
		st     network.Stream
		remote peer.ID
		c      cid.Cid
	}
	var all []serving
	s.mu.Lock()
	s.sessions.rechecks++
	for _, ss := range s.sessions.all {
		if ss.state == sessionServing && ss.opened && ss.cid.Defined() {
			all = append(all, serving{ss.st, ss.remote, ss.cid})
		}
	}
	s.mu.Unlock()
	if s.cfg.Source == nil {
		return
	}
	for _, x := range all {
		_, f, err := s.cfg.Source.Open(x.c, x.remote)
		if err == nil {
			f.Close()
			continue
		}
		if isChanged(err) {
			continue // the request under way notices by itself
		}
		if _, ok := s.document(x.c, x.remote); ok {
			continue
		}
		s.log.Info("closing a fetch session: its peer may no longer fetch the file", "peer", x.remote, "cid", x.c)
		x.st.Reset()
	}
}

// evictLocked evicts up to n idle sessions that match, longest idle first:
// each is marked and its read deadline set to now, so its handler's wait
// for a request (or the handshake) ends at once and the handler returns.
func (s *Service) evictLocked(n int, match func(*session) bool, now time.Time) {
	var cand []*session
	for _, o := range s.sessions.all {
		if o.idle() && match(o) {
			cand = append(cand, o)
		}
	}
	slices.SortFunc(cand, func(a, b *session) int { return a.since.Compare(b.since) })
	for _, o := range cand[:min(n, len(cand))] {
		o.evicted = true
		s.sessions.live--
		o.st.SetReadDeadline(now)
		s.log.Debug("evicting idle fetch session", "peer", o.remote, "idle", now.Sub(o.since))
	}
}

// handle serves one fetch stream: handshake, then requests in order until
// the fetcher closes its side. Any error resets the stream.
func (s *Service) handle(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if err := s.handleStream(st, remote); err != nil {
		s.log.Debug("fetch stream ended", "peer", remote, "err", err)
		st.Reset()
		return
	}
	st.Close()
}

func (s *Service) handleStream(st network.Stream, remote peer.ID) error {
	// Before anything else, so that a refused session costs a map lookup
	// and a stream reset, not a handshake.
	if key := admissionKey(st.Conn()); !s.admit.allow(key) {
		return fmt.Errorf("%s started more than %d fetch sessions at once or %d a second", key, sessionBurst, sessionsPerSecond)
	}
	s.mu.Lock()
	if s.closed || s.serving[remote] >= maxServerStreamsPerPeer {
		busy := !s.closed
		s.mu.Unlock()
		if busy {
			return fmt.Errorf("more than %d fetch streams from one peer", maxServerStreamsPerPeer)
		}
		return ErrClosed
	}
	s.serving[remote]++
	s.streams[st] = struct{}{}
	now := time.Now()
	st.SetDeadline(now.Add(handshakeTimeout))
	ss := s.addSessionLocked(st, remote, now)
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		if s.serving[remote]--; s.serving[remote] == 0 {
			delete(s.serving, remote)
		}
		s.removeSessionLocked(ss)
		s.mu.Unlock()
		s.wg.Done()
	}()
	// evicted turns the error of a wait an eviction interrupted into
	// errEvicted.
	evicted := func(err error) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ss.evicted {
			return errEvicted
		}
		return err
	}

	if err := st.Scope().SetService(ServiceName); err != nil {
		return fmt.Errorf("attach to resource manager service: %w", err)
	}
	// The read buffer; chunk buffers are reserved per request below.
	if err := st.Scope().ReserveMemory(proto.ReadBufferSize, network.ReservationPriorityHigh); err != nil {
		return fmt.Errorf("reserve memory: %w", err)
	}
	defer st.Scope().ReleaseMemory(proto.ReadBufferSize)

	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	r := proto.NewReader(st, proto.MaxRequestSize)
	sess, err := bbsaes.Respond(ctx, struct {
		io.Reader
		io.Writer
	}{r, st}, bbsaes.Config{
		ProtocolID: proto.FetchID,
		LocalKey:   s.cfg.Host.Peerstore().PrivKey(s.cfg.Host.ID()),
		RemotePeer: remote,
		BBSKey:     s.cfg.BBSKey,
		// tests only: lets a test key smaller than 2048 bits be offered
		MinModulusBits: s.cfg.MinModulusBits,
	})
	cancel()
	if err != nil {
		return evicted(fmt.Errorf("handshake: %w", err))
	}
	st.SetWriteDeadline(time.Time{})

	var w io.Writer = st
	if s.upload != nil {
		w = rateWriter{ctx: s.ctx, w: w, l: s.upload, timeout: ioTimeout, st: st}
	}
	if s.tapWire != nil {
		w = s.tapWire(remote, w)
	}
	// Answers are buffered while more requests are waiting, and flushed
	// before the server waits for the next one: a fetcher that pipelines
	// many small files gets many answers per write, not three writes each.
	bw := bufio.NewWriterSize(w, serverWriteBuffer)
	srv := &server{s: s, ss: ss, st: st, w: bw, sess: sess, remote: remote}
	defer srv.release()
	for {
		if r.Buffered() == 0 && bw.Buffered() > 0 {
			st.SetWriteDeadline(time.Now().Add(ioTimeout))
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		s.mu.Lock()
		ok := s.setIdleLocked(ss, time.Now())
		s.mu.Unlock()
		if !ok {
			return errEvicted
		}
		var req proto.FetchRequest
		if err := r.ReadMsg(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the fetcher is done (everything it asked for was flushed above)
			}
			return evicted(fmt.Errorf("read request: %w", err))
		}
		c, _ := cid.Cast(req.GetCid())
		s.mu.Lock()
		ok = s.setServingLocked(ss, c, time.Now())
		s.mu.Unlock()
		if !ok {
			return errEvicted // it arrived just as the session was evicted
		}
		if err := srv.serve(&req); err != nil {
			return err
		}
	}
}

// server is the state of one fetch stream on the serving side.
type server struct {
	s        *Service
	ss       *session
	st       network.Stream
	w        io.Writer
	sess     *bbsaes.Session
	remote   peer.ID
	buf      *[]byte
	reserved int
}

func (v *server) release() {
	if v.buf != nil {
		v.s.putBuf(v.buf)
	}
	if v.reserved > 0 {
		v.st.Scope().ReleaseMemory(v.reserved)
	}
}

// chunkBuf returns a buffer of n bytes, reserved with the resource manager.
func (v *server) chunkBuf(n int) ([]byte, error) {
	if n > v.reserved {
		if err := v.st.Scope().ReserveMemory(n-v.reserved, network.ReservationPriorityHigh); err != nil {
			return nil, fmt.Errorf("reserve memory: %w", err)
		}
		v.reserved = n
	}
	if v.buf == nil || cap(*v.buf) < n {
		if v.buf != nil {
			v.s.putBuf(v.buf)
		}
		v.buf = v.s.getBuf(n)
	}
	return (*v.buf)[:n], nil
}

// respond writes a FetchResponse.
func (v *server) respond(status proto.FetchResponse_Status, msg string, length uint64) error {
	v.st.SetWriteDeadline(time.Now().Add(ioTimeout))
	return proto.WriteMsg(v.w, &proto.FetchResponse{Status: status, Message: msg, Length: length})
}

// serve answers one request. A returned error ends (resets) the stream;
// refusals are answered and keep it open.
func (v *server) serve(req *proto.FetchRequest) error {
	c, err := cid.Cast(req.GetCid())
	if err != nil || manifest.CheckCID(c) != nil {
		return v.respond(proto.FetchResponse_BAD_REQUEST, "bad content ID", 0)
	}
	var m *manifest.Manifest
	var f *os.File
	for {
		m, f, err = v.s.cfg.Source.Open(c, v.remote)
		if err != nil {
			if req.GetKind() == proto.FetchRequest_MANIFEST {
				if doc, ok := v.s.document(c, v.remote); ok {
					if !v.s.markOpened(v.ss) {
						continue
					}
					return v.sendDocument(c, doc)
				}
			}
			if isChanged(err) {
				return v.respond(proto.FetchResponse_CHANGED, "file changed since it was published", 0)
			}
			return v.respond(proto.FetchResponse_NOT_SERVED, "not published", 0)
		}
		if v.s.markOpened(v.ss) {
			break
		}
		f.Close() // a Recheck ran meanwhile: open it again
	}
	defer f.Close()
	switch req.GetKind() {
	case proto.FetchRequest_MANIFEST:
		return v.sendManifest(c, m)
	case proto.FetchRequest_CHUNKS:
		first, count := req.GetFirstChunk(), uint64(req.GetCount())
		if count == 0 || count > proto.MaxChunksPerRequest || first >= uint64(len(m.Chunks)) || first+count > uint64(len(m.Chunks)) {
			return v.respond(proto.FetchResponse_BAD_REQUEST, "chunk range out of bounds", 0)
		}
		return v.sendChunks(c, m, f, int(first), int(count))
	default:
		return v.respond(proto.FetchResponse_BAD_REQUEST, "unknown request kind", 0)
	}
}

// document returns the document of the collection c if the Source
// publishes it to p (CollectionSource).
func (s *Service) document(c cid.Cid, p peer.ID) ([]byte, bool) {
	if cs, ok := s.cfg.Source.(CollectionSource); ok {
		return cs.Collection(c, p)
	}
	return nil, false
}

func isChanged(err error) bool {
	var ch interface{ Changed() bool }
	return errors.As(err, &ch) && ch.Changed()
}

func (v *server) sendManifest(c cid.Cid, m *manifest.Manifest) error {
	return v.sendDocument(c, m.Marshal())
}

// sendDocument answers a MANIFEST request with b: a file's manifest or a
// collection's document, which travel alike.
func (v *server) sendDocument(c cid.Cid, b []byte) error {
	if err := v.respond(proto.FetchResponse_OK, "", uint64(len(b))); err != nil {
		return err
	}
	sw, err := v.sess.NewWriter(v.w, bbsaes.Header{CID: c.Bytes(), StartChunk: 0})
	if err != nil {
		return err
	}
	v.st.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := sw.Write(b); err != nil {
		return err
	}
	return sw.Close()
}

// sendChunks reads each chunk and seals and writes it. It does not hash
// what it sends (the fetcher verifies every chunk against the manifest, and
// that is the security property): a file changed on disk is caught by its
// size and mtime instead. Source.Open compares them with the published
// record for every request; here the open file's size must match the
// manifest, and after every chunk is read, an fstat must still show the
// size and mtime seen when the request began (a write updates the mtime
// before it changes the data, so a read that saw new bytes is followed by
// an fstat that sees the new mtime). The first chunk is read and checked
// before the answer, so a changed file is answered CHANGED; a later chunk
// that fails the check resets the stream (its answer is already under way),
// and the next request on a new stream is answered CHANGED by Source.Open.
func (v *server) sendChunks(c cid.Cid, m *manifest.Manifest, f *os.File, first, count int) error {
	buf, err := v.chunkBuf(m.ChunkSize)
	if err != nil {
		v.respond(proto.FetchResponse_BUSY, "out of memory", 0)
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		v.s.log.Warn("stat published file", "cid", c, "err", err)
		return v.respond(proto.FetchResponse_INTERNAL, "read error", 0)
	}
	size, mtime := fi.Size(), fi.ModTime()
	unchanged := func() error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() != m.Size || fi.Size() != size || !fi.ModTime().Equal(mtime) {
			return errChanged
		}
		return nil
	}
	read := func(i int) ([]byte, error) {
		b := buf[:m.ChunkLen(i)]
		if _, err := f.ReadAt(b, m.ChunkOffset(i)); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errChanged // the file shrank
			}
			return nil, err
		}
		if err := unchanged(); err != nil {
			return nil, err
		}
		if v.s.corrupt != nil {
			v.s.corrupt(i, b)
		}
		return b, nil
	}
	b, err := read(first)
	if err != nil {
		if errors.Is(err, errChanged) {
			v.s.log.Warn("published file changed on disk; not serving it", "cid", c, "chunk", first)
			return v.respond(proto.FetchResponse_CHANGED, "file changed since it was published", 0)
		}
		v.s.log.Warn("read published file", "cid", c, "err", err)
		return v.respond(proto.FetchResponse_INTERNAL, "read error", 0)
	}
	var length uint64
	for i := first; i < first+count; i++ {
		length += uint64(m.ChunkLen(i))
	}
	if err := v.respond(proto.FetchResponse_OK, "", length); err != nil {
		return err
	}
	sw, err := v.sess.NewWriter(v.w, bbsaes.Header{CID: c.Bytes(), StartChunk: uint64(first)})
	if err != nil {
		return err
	}
	for i := first; i < first+count; i++ {
		if i > first {
			if b, err = read(i); err != nil {
				if errors.Is(err, errChanged) {
					v.s.log.Warn("published file changed on disk; not serving it", "cid", c, "chunk", i)
				}
				return fmt.Errorf("chunk %d: %w", i, err)
			}
		}
		v.st.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := sw.Write(b); err != nil {
			return fmt.Errorf("write chunk %d: %w", i, err)
		}
		v.s.act.touch(v.remote)
	}
	if err := sw.Close(); err != nil {
		return err
	}
	if v.s.onServe != nil {
		v.s.onServe(v.remote, first, count)
	}
	if v.s.tapCID != nil {
		v.s.tapCID(c)
	}
	return nil
}
