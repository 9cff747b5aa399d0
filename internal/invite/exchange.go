package invite

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
	"github.com/schollz/pake/v3"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// The exchange, on one stream opened by the acceptor:
//
//	acceptor -> inviter  Hello{nameplate, PAKE message A}
//	inviter  -> acceptor Reply{OK, PAKE message B, inviter's confirmation}
//	                     or Reply{status} and the end
//	acceptor -> inviter  Confirm{acceptor's confirmation}
//	                     (only if the inviter's was right; else it resets)
//	inviter  -> acceptor Result{OK, or WRONG_CODE / USED}
//
// An attempt counts against the invitation from the moment the inviter
// answers a Hello for it with its PAKE message.

// readMsg reads one bounded message.
func readMsg(r pbio.Reader, m gproto.Message) error {
	if err := r.ReadMsg(m); err != nil {
		if errors.Is(err, io.ErrShortBuffer) {
			return fmt.Errorf("message larger than %d bytes", maxMsgSize)
		}
		return err
	}
	return nil
}

// handle is the inviter's side of the exchange.
func (s *Service) handle(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if !s.enter(remote) {
		st.Reset()
		return
	}
	defer s.leave(remote)
	// A Hello is sent at once: a peer that holds a slot without sending
	// one loses it soon.
	st.SetDeadline(time.Now().Add(helloTimeout))
	reply := func(m gproto.Message) bool {
		if err := proto.WriteMsg(st, m); err != nil {
			st.Reset()
			return false
		}
		return true
	}
	r := pbio.NewDelimitedReader(st, maxMsgSize)
	var hello Hello
	if err := readMsg(r, &hello); err != nil {
		s.log.Debug("invitation: bad hello", "peer", remote, "err", err)
		st.Reset()
		return
	}
	np, err := parseNameplate(hello.Nameplate)
	if err != nil {
		reply(&Reply{Status: Status_BAD_REQUEST})
		st.Close()
		return
	}
	st.SetDeadline(time.Now().Add(exchangeTimeout))
	inv, status, left := s.begin(np, remote)
	if status != Status_OK {
		reply(&Reply{Status: status, AttemptsLeft: uint32(left)})
		st.Close()
		return
	}
	accepted := false
	defer func() {
		if !accepted {
			s.finish(inv, "")
		}
	}()

	b, err := pake.InitCurve(inv.pw, roleInviter, pakeCurve)
	if err == nil {
		err = pakeUpdate(b, hello.Pake, roleAcceptor)
	}
	if err != nil {
		s.log.Info("invitation: bad PAKE message", "nameplate", np, "peer", remote, "err", err)
		reply(&Reply{Status: Status_BAD_REQUEST, AttemptsLeft: uint32(left)})
		st.Close()
		return
	}
	k, _ := b.SessionKey() // set by a successful Update
	msgB := b.Bytes()
	conf, err := confirm(k, np, st.Conn().LocalPeer(), remote, hello.Pake, msgB)
	if err != nil {
		st.Reset()
		return
	}
	if !reply(&Reply{Status: Status_OK, Pake: msgB, Confirm: conf.inviter, AttemptsLeft: uint32(left)}) {
		return
	}
	var c Confirm
	if err := readMsg(r, &c); err != nil {
		// The acceptor found our confirmation wrong (a wrong code) and
		// hung up, or it went away.
		s.log.Info("invitation: attempt abandoned", "nameplate", np, "peer", remote, "err", err)
		st.Reset()
		return
	}
	if !hmac.Equal(c.Confirm, conf.acceptor) {
		s.log.Info("invitation: wrong code", "nameplate", np, "peer", remote, "attempts_left", left)
		reply(&Result{Status: Status_WRONG_CODE, AttemptsLeft: uint32(left)})
		st.Close()
		return
	}
	accepted = true
	if !s.finish(inv, remote) {
		reply(&Result{Status: Status_USED})
		st.Close()
		return
	}
	reply(&Result{Status: Status_OK})
	st.Close()
	s.welcome(inv, remote)
}

// enter takes one of the exchange slots for p: at most maxConcurrent in
// all and maxPerPeer for one peer, so one peer's idle streams cannot
// keep the others out.
func (s *Service) enter(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active >= maxConcurrent || s.activeBy[p] >= maxPerPeer {
		return false
	}
	s.active++
	s.activeBy[p]++
	return true
}

func (s *Service) leave(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.activeBy[p]--; s.activeBy[p] == 0 {
		delete(s.activeBy, p)
	}
}

// begin starts p's attempt at the invitation with nameplate np: it checks
// the invitation's state and the rate limits, and counts the attempt. It
// returns the status to answer and the attempts left. Answering with the
// invitation's state is cheap and tells nothing secret, so only PAKE runs
// are rate limited.
func (s *Service) begin(np string, p peer.ID) (*invitation, Status, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	s.pruneLocked(now)
	inv, ok := s.invites[np]
	if !ok {
		return nil, Status_UNKNOWN, 0
	}
	switch inv.State {
	case Accepted:
		return nil, Status_USED, 0
	case Expired:
		return nil, Status_EXPIRED, 0
	case Burnt:
		return nil, Status_NO_ATTEMPTS, 0
	case Canceled:
		return nil, Status_CANCELED, 0
	}
	if !now.Before(inv.Expires) {
		return nil, Status_EXPIRED, 0
	}
	if inv.AttemptsLeft == 0 {
		return nil, Status_NO_ATTEMPTS, 0
	}
	if !s.allowPeerLocked(p, now) || !s.global.AllowN(now, 1) {
		return nil, Status_BUSY, inv.AttemptsLeft
	}
	inv.AttemptsLeft--
	inv.inflight++
	return inv, Status_OK, inv.AttemptsLeft
}

// finish ends an attempt: by p, who proved it knows the code, or failed
// (p empty). It reports whether p got the invitation (false: somebody
// else was first). The last failed attempt burns the invitation.
func (s *Service) finish(inv *invitation, p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv.inflight--
	if inv.State != Pending {
		return false
	}
	if p != "" {
		inv.Peer = p
		s.endLocked(inv, Accepted)
		return true
	}
	if inv.AttemptsLeft == 0 && inv.inflight == 0 {
		s.endLocked(inv, Burnt)
	}
	return false
}

// welcome records the peer an invitation brought and names it.
func (s *Service) welcome(inv *invitation, p peer.ID) {
	ctx, cancel := context.WithTimeout(s.ctx, exchangeTimeout)
	defer cancel()
	note := s.adopt(ctx, p, inv.Name, inv.Group)
	s.mu.Lock()
	inv.Note = note
	s.mu.Unlock()
}

// adopt records p in the peer table and gives it to Contacts. It returns
// what went wrong, for the user, or "".
func (s *Service) adopt(ctx context.Context, p peer.ID, nick, group string) string {
	var notes []string
	if s.cfg.Record != nil {
		if err := s.cfg.Record(ctx, p); err != nil {
			s.log.Warn("invitation: record peer", "peer", p, "err", err)
			notes = append(notes, fmt.Sprintf("could not record the peer: %v", err))
		}
	}
	if s.cfg.Contacts != nil {
		if err := s.cfg.Contacts.AddContact(p, nick, group); err != nil {
			s.log.Warn("invitation: add contact", "peer", p, "nick", nick, "group", group, "err", err)
			notes = append(notes, fmt.Sprintf("could not name the peer: %v", err))
		}
	}
	return strings.Join(notes, "; ")
}
