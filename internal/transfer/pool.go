package transfer

import (
	"context"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Fetch sessions are kept for reuse: a download that ends with its stream
// in order (every request answered) leaves the stream and its bbsaes
// session idle for the next download from the same provider, so that
// small files do not pay a stream open and a handshake each. The server
// serves any CID on any of its streams; every response is still a sealed
// stream with a fresh salt whose header names the CID and first chunk, and
// the session stays bound to the provider's peer ID by its handshake.
const (
	// poolPerPeer bounds the idle sessions kept per provider (the
	// server accepts maxServerStreamsPerPeer streams per peer).
	poolPerPeer = 2
)

// poolIdle is how long a session is kept unused; well below the server's
// idleTimeout, so a kept session is rarely closed under us. (A variable
// for tests.)
var poolIdle = 30 * time.Second

// idleConn is a kept session; timer closes it after poolIdle.
type idleConn struct {
	cn    *conn
	timer *time.Timer
}

// connect returns a kept session with ai.ID if there is a live one,
// otherwise dials a new one. The stream is reset when ctx ends.
func (s *Service) connect(ctx context.Context, ai peer.AddrInfo, c cid.Cid) (*conn, error) {
	if cn := s.takeIdle(ai.ID); cn != nil {
		cn.c, cn.reused, cn.answered = c, true, false
		cn.arm(ctx)
		return cn, nil
	}
	return s.dial(ctx, ai, c)
}

func (s *Service) takeIdle(p peer.ID) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		l := s.idle[p]
		if len(l) == 0 {
			delete(s.idle, p)
			return nil
		}
		ic := l[len(l)-1]
		l[len(l)-1] = nil
		s.idle[p] = l[:len(l)-1]
		if !ic.timer.Stop() {
			continue // expiring: its timer closes it
		}
		if ic.cn.st.Conn().IsClosed() {
			ic.cn.st.Reset()
			continue
		}
		return ic.cn
	}
}

// keep ends a use of cn whose requests were all answered: the session is
// kept for the next download from the same provider, or closed.
func (s *Service) keep(cn *conn) {
	if !cn.stop() {
		// ctx ended: wait for the watcher, which resets the stream unless
		// it is keepable.
		<-cn.watched
		if !keepable(cn.ctx, &cn.inflight) {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.idle[cn.peer]) >= poolPerPeer || cn.st.Conn().IsClosed() {
		cn.st.Close()
		return
	}
	ic := &idleConn{cn: cn}
	ic.timer = time.AfterFunc(poolIdle, func() { s.expire(ic) })
	s.idle[cn.peer] = append(s.idle[cn.peer], ic)
}

// expire closes a kept session whose time is up.
func (s *Service) expire(ic *idleConn) {
	s.mu.Lock()
	p := ic.cn.peer
	if i := slices.Index(s.idle[p], ic); i >= 0 {
		s.idle[p] = slices.Delete(s.idle[p], i, i+1)
		if len(s.idle[p]) == 0 {
			delete(s.idle, p)
		}
	}
	s.mu.Unlock()
	ic.cn.st.Close()
}

// closeIdleLocked closes every kept session; called by Close with s.mu
// held.
func (s *Service) closeIdleLocked() {
	for p, l := range s.idle {
		for _, ic := range l {
			if ic.timer.Stop() {
				ic.cn.st.Close()
			}
		}
		delete(s.idle, p)
	}
}
