package invite

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
	"github.com/schollz/pake/v3"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Why an Accept failed; the errors Accept returns wrap one of these.
var (
	ErrWrongCode = errors.New("the code does not match")
	ErrUsed      = errors.New("the invitation was already accepted")
	ErrExpired   = errors.New("the invitation has expired")
	ErrBurnt     = errors.New("the invitation was burnt by too many wrong codes")
	ErrCanceled  = errors.New("the inviter canceled the invitation")
	ErrBusy      = errors.New("the inviter refuses attempts for now (rate limited)")
	ErrNotFound  = errors.New("no peer holds this invitation")
)

// Bounds of the acceptor's search.
const (
	dialTimeout = 15 * time.Second
	findTimeout = 10 * time.Second
	maxFound    = 20 // providers asked per DHT lookup
)

// AcceptResult is the outcome of a successful Accept.
type AcceptResult struct {
	Peer peer.ID // the inviter
	// Note says what went wrong after the exchange succeeded (the peer
	// could not be recorded or named), if anything.
	Note string
}

// outcome is one attempt's result on the acceptor's side.
type outcome struct {
	status Status // OK, or why not
	left   uint32 // attempts left at the inviter, when it said
	err    error  // the exchange broke (network, malformed answer)
	dial   bool   // err is a failure to connect, worth another round
}

// rank orders definitive answers by how much they tell the user: a wrong
// code first (it is the user's to fix), then the invitation's state, then
// a refusal to try now. A rate-limited peer is not asked again in the same
// Accept: asking again would only keep it refusing.
var rank = map[Status]int{
	Status_WRONG_CODE: 7, Status_NO_ATTEMPTS: 6, Status_USED: 5,
	Status_EXPIRED: 4, Status_CANCELED: 3, Status_BAD_REQUEST: 2, Status_BUSY: 1,
}

// Accept looks for the inviter of code, proves to it that this node knows
// the code (and checks that it does), then records the inviter as a peer
// and gives it to Contacts under nick. It looks among connected peers,
// then on the DHT, in rounds until ctx ends (a minute if ctx has no
// deadline).
func (s *Service) Accept(ctx context.Context, code, nick string) (AcceptResult, error) {
	c, err := ParseCode(code)
	if err != nil {
		return AcceptResult{}, err
	}
	if err := s.checkContact(nick, ""); err != nil {
		return AcceptResult{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, acceptTimeout)
		defer cancel()
	}
	pw := password(c)
	self := s.cfg.Host.ID()
	done := map[peer.ID]bool{self: true}
	var (
		best    outcome // the most telling definitive answer
		lastErr error   // the last broken exchange
	)
	try := func(ai peer.AddrInfo, dial bool) bool {
		done[ai.ID] = true
		o := s.attempt(ctx, ai, c, pw, dial)
		switch {
		case o.err != nil:
			lastErr = fmt.Errorf("%s: %w", ai.ID, o.err)
			if o.dial {
				delete(done, ai.ID)
			}
		case o.status == Status_OK:
			return true
		case rank[o.status] > rank[best.status]:
			best = o
		}
		return false
	}
	for {
		for _, id := range s.connectedInviters() {
			if done[id] {
				continue
			}
			if try(peer.AddrInfo{ID: id}, false) {
				return s.accepted(ctx, id, nick), nil
			}
		}
		if s.cfg.Routing != nil && ctx.Err() == nil {
			if id, ok := s.findAndTry(ctx, c.Nameplate, done, try); ok {
				return s.accepted(ctx, id, nick), nil
			}
		}
		if best.status != Status_OK {
			return AcceptResult{}, acceptError(c.Nameplate, best)
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return AcceptResult{}, fmt.Errorf("invitation %s: %w (last failure: %v)", c.Nameplate, ErrNotFound, lastErr)
			}
			return AcceptResult{}, fmt.Errorf("invitation %s: %w among connected peers or on the DHT: is the inviter's node running and connected, and the number right?", c.Nameplate, ErrNotFound)
		case <-time.After(s.cfg.acceptRound):
		}
	}
}

// findAndTry asks the DHT for the nameplate's rendezvous key and tries
// each provider not done yet.
func (s *Service) findAndTry(ctx context.Context, np string, done map[peer.ID]bool, try func(peer.AddrInfo, bool) bool) (peer.ID, bool) {
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	for ai := range s.cfg.Routing.FindProvidersAsync(fctx, rendezvousKey(np), maxFound) {
		if done[ai.ID] {
			continue
		}
		if try(ai, true) {
			return ai.ID, true
		}
	}
	return "", false
}

// accepted finishes a successful Accept.
func (s *Service) accepted(ctx context.Context, inviter peer.ID, nick string) AcceptResult {
	s.log.Info("invitation accepted", "inviter", inviter, "nick", nick)
	return AcceptResult{Peer: inviter, Note: s.adopt(ctx, inviter, nick, "")}
}

// acceptError is the error for a definitive refusal.
func acceptError(np string, o outcome) error {
	switch o.status {
	case Status_WRONG_CODE:
		return fmt.Errorf("invitation %s: %w (%d tries left): check the code with the person who sent it", np, ErrWrongCode, o.left)
	case Status_NO_ATTEMPTS:
		return fmt.Errorf("invitation %s: %w: ask for a new code", np, ErrBurnt)
	case Status_USED:
		return fmt.Errorf("invitation %s: %w: a code works once", np, ErrUsed)
	case Status_EXPIRED:
		return fmt.Errorf("invitation %s: %w: ask for a new code", np, ErrExpired)
	case Status_CANCELED:
		return fmt.Errorf("invitation %s: %w", np, ErrCanceled)
	case Status_BUSY:
		return fmt.Errorf("invitation %s: %w: try again in a minute", np, ErrBusy)
	}
	return fmt.Errorf("invitation %s: the inviter refused the request (%v)", np, o.status)
}

// connectedInviters are the connected peers that speak the protocol.
func (s *Service) connectedInviters() []peer.ID {
	h := s.cfg.Host
	var out []peer.ID
	for _, p := range h.Network().Peers() {
		if ps, err := h.Peerstore().SupportsProtocols(p, proto.InviteID); err == nil && len(ps) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// attempt runs the acceptor's side of one exchange with ai.
func (s *Service) attempt(ctx context.Context, ai peer.AddrInfo, c Code, pw []byte, dial bool) outcome {
	// The exchange is a few hundred bytes: a limited relay carries it.
	ctx = network.WithAllowLimitedConn(ctx, "p2pshare-invite")
	h := s.cfg.Host
	if dial {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err := h.Connect(dctx, ai)
		cancel()
		if err != nil {
			return outcome{err: fmt.Errorf("connect: %w", err), dial: true}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, ai.ID, proto.InviteID)
	if err != nil {
		return outcome{err: fmt.Errorf("open stream: %w", err), dial: dial}
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	fail := func(err error) outcome {
		st.Reset()
		return outcome{err: err}
	}

	a, err := pake.InitCurve(pw, roleAcceptor, pakeCurve)
	if err != nil {
		return fail(fmt.Errorf("PAKE: %w", err))
	}
	msgA := a.Bytes()
	if err := proto.WriteMsg(st, &Hello{Nameplate: c.Nameplate, Pake: msgA}); err != nil {
		return fail(fmt.Errorf("send: %w", err))
	}
	r := pbio.NewDelimitedReader(st, maxMsgSize)
	var rep Reply
	if err := readMsg(r, &rep); err != nil {
		return fail(fmt.Errorf("read answer: %w", err))
	}
	if rep.Status != Status_OK {
		return outcome{status: rep.Status, left: rep.AttemptsLeft}
	}
	if err := pakeUpdate(a, rep.Pake, roleInviter); err != nil {
		return fail(err)
	}
	k, _ := a.SessionKey()
	conf, err := confirm(k, c.Nameplate, ai.ID, h.ID(), msgA, rep.Pake)
	if err != nil {
		return fail(err)
	}
	if !hmac.Equal(rep.Confirm, conf.inviter) {
		// A wrong code, or a peer in between: either way nothing more
		// is sent, so the other end learns nothing it could test.
		st.Reset()
		return outcome{status: Status_WRONG_CODE, left: rep.AttemptsLeft}
	}
	if err := proto.WriteMsg(st, &Confirm{Confirm: conf.acceptor}); err != nil {
		return fail(fmt.Errorf("send confirmation: %w", err))
	}
	var res Result
	if err := readMsg(r, &res); err != nil {
		return fail(fmt.Errorf("read result: %w", err))
	}
	return outcome{status: res.Status, left: res.AttemptsLeft}
}
