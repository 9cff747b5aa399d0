// Package invite lets a person bring someone who is not a peer yet into
// the peer table with a one-time code. The inviter's node makes a short
// code (Create), the person tells it to the other by voice or chat, and
// the other's node accepts it (Accept). The two nodes meet through peers
// already connected (the LAN), the DHT (the inviter provides a rendezvous
// key derived from the code's public nameplate) or a relay, then prove to
// each other over /p2pshare/invite/1 that they know the code, with a PAKE
// whose key confirmation is bound to both peer IDs. On success each side
// records the other as a peer and hands it to Contacts with a name (and,
// on the inviter's side, a group).
//
// A code is worth MaxAttempts live guesses, then it is burnt; it works
// once, and expires after a TTL (10 minutes by default). Invitations live
// in memory only: a restart of the inviter's node withdraws them.
package invite

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"golang.org/x/time/rate"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Contacts is told about each peer an invitation brings: the name the
// local user gave it (may be empty) and, on the inviter's side, the group
// the invitation was for (may be empty).
type Contacts interface {
	AddContact(p peer.ID, nick, group string) error
}

// ContactChecker may also be implemented by Contacts: Create and Accept
// then refuse a name or group it refuses before a code is made or used,
// rather than after the other side has been let in.
type ContactChecker interface {
	CheckContact(nick, group string) error
}

// Routing is the part of the DHT the rendezvous uses
// (routing.ContentRouting).
type Routing interface {
	Provide(ctx context.Context, c cid.Cid, announce bool) error
	FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo
}

// Defaults.
const (
	DefaultTTL = 10 * time.Minute
	// MaxAttempts is how many PAKE runs one invitation allows. One would
	// let anybody who can reach the inviter burn a code with one wrong
	// guess, and a single typo would force a new code; three let a person
	// retype it while keeping a guesser's odds at 3 in 2^24.
	MaxAttempts = 3
	// maxTTL bounds Options.TTL: a code is a short-lived secret.
	maxTTL = 24 * time.Hour
	// maxPending bounds the invitations one node holds.
	maxPending = 64
	// keepEnded is how long an ended invitation stays listed (and answers
	// "used" or "expired" rather than "unknown").
	keepEnded = time.Hour
	// maxMsgSize bounds every message of the protocol (a P-256 PAKE
	// message is under 1 KiB).
	maxMsgSize = 4 << 10
	// exchangeTimeout bounds one stream, both sides.
	exchangeTimeout = 20 * time.Second
	// helloTimeout bounds the wait for the first message.
	helloTimeout = 5 * time.Second
	// maxConcurrent bounds the exchanges the inviter runs at once, and
	// maxPerPeer those with one peer; more are reset.
	maxConcurrent = 16
	maxPerPeer    = 2
	// Rate limits of the inviter's PAKE runs. Per peer: a burst of 3,
	// then one every 5 s. Globally: a burst of 10, then one a second.
	// Peer IDs are free to make, so the global limit is the one that
	// bounds a guesser; the attempts per code bound it further.
	peerRate    = rate.Limit(1.0 / 5)
	peerBurst   = 3
	globalRate  = rate.Limit(1)
	globalBurst = 10
	// maxLimitedPeers bounds the per-peer limiter table.
	maxLimitedPeers = 4096
	// acceptTimeout bounds Accept when its context has no deadline.
	acceptTimeout = time.Minute
	// acceptRound is the pause between Accept's rounds of looking for
	// the inviter (the inviter's DHT record can take a moment to land).
	acceptRound = 2 * time.Second
)

// State is where an invitation stands.
type State string

const (
	Pending  State = "pending"
	Accepted State = "accepted"
	Expired  State = "expired"
	Burnt    State = "burnt" // MaxAttempts wrong codes
	Canceled State = "canceled"
)

// Options are what Create is given.
type Options struct {
	Name  string        // the name the accepting peer gets here
	Group string        // the group it joins here
	TTL   time.Duration // 0: Config.TTL
}

// Invite is one invitation as the inviter sees it.
type Invite struct {
	Code         string
	Nameplate    string
	Name, Group  string
	Created      time.Time
	Expires      time.Time
	State        State
	AttemptsLeft int
	Peer         peer.ID   // who accepted it
	Ended        time.Time // when it left Pending
	// Note says what went wrong after an acceptance (the peer could not
	// be recorded or named), if anything.
	Note string
}

// Config is what a Service needs.
type Config struct {
	Host host.Host
	// Routing, if set, is used for the rendezvous beyond connected peers.
	Routing Routing
	// Contacts, if set, gets every peer an invitation brings.
	Contacts Contacts
	// Record, if set, adds a peer an invitation brought to the peer table
	// (the node wires it to p2p.Node.Connect, which records it as added by
	// hand).
	Record func(ctx context.Context, p peer.ID) error
	// TTL is the default lifetime of a code (0: DefaultTTL).
	TTL    time.Duration
	Logger *slog.Logger

	// now is the clock (tests move it).
	now func() time.Time
	// Limits, defaulted from the constants above (tests lower them).
	peerRate, globalRate   rate.Limit
	peerBurst, globalBurst int
	acceptRound            time.Duration
}

// invitation is an Invite with what the protocol needs.
type invitation struct {
	Invite
	code        Code
	pw          []byte
	inflight    int
	stopProvide context.CancelFunc
}

// Service runs the invitation protocol. Its methods are safe for
// concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	invites map[string]*invitation // by nameplate
	peerLim map[peer.ID]*rate.Limiter
	global  *rate.Limiter
	// active counts running exchanges, activeBy per peer.
	active   int
	activeBy map[peer.ID]int

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts the service: it registers the protocol handler on the host.
func New(cfg Config) (*Service, error) {
	if cfg.Host == nil {
		return nil, errors.New("invite: Config.Host is required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.peerRate == 0 {
		cfg.peerRate, cfg.peerBurst = peerRate, peerBurst
	}
	if cfg.globalRate == 0 {
		cfg.globalRate, cfg.globalBurst = globalRate, globalBurst
	}
	if cfg.acceptRound == 0 {
		cfg.acceptRound = acceptRound
	}
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		invites:  map[string]*invitation{},
		peerLim:  map[peer.ID]*rate.Limiter{},
		global:   rate.NewLimiter(cfg.globalRate, cfg.globalBurst),
		activeBy: map[peer.ID]int{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cfg.Host.SetStreamHandler(proto.InviteID, s.handle)
	return s, nil
}

// Close removes the protocol handler and waits for the service's
// goroutines. Pending invitations are withdrawn.
func (s *Service) Close() error {
	s.cfg.Host.RemoveStreamHandler(proto.InviteID)
	s.cancel()
	s.wg.Wait()
	return nil
}

// rendezvousKey is the DHT key an inviter provides for a nameplate:
// derived from the nameplate only, so the DHT never sees the secret.
func rendezvousKey(nameplate string) cid.Cid {
	sum := sha256.Sum256([]byte("p2pshare invite/1 rendezvous\x00" + nameplate))
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256) // cannot fail for SHA2_256 and 32 bytes
	return cid.NewCidV1(cid.Raw, mh)
}

// checkContact asks Contacts, if it can tell, whether nick and group are
// acceptable.
func (s *Service) checkContact(nick, group string) error {
	if cc, ok := s.cfg.Contacts.(ContactChecker); ok && (nick != "" || group != "") {
		return cc.CheckContact(nick, group)
	}
	return nil
}

// Create makes a new invitation and returns it; its Code is what the
// other person types. The code is provided on the DHT (in the background)
// until it is used, expires or is canceled.
func (s *Service) Create(opt Options) (Invite, error) {
	if opt.TTL == 0 {
		opt.TTL = s.cfg.TTL
	}
	if opt.TTL < 0 || opt.TTL > maxTTL {
		return Invite{}, fmt.Errorf("invitation lifetime %v: want more than 0 and at most %v", opt.TTL, maxTTL)
	}
	if err := s.checkContact(opt.Name, opt.Group); err != nil {
		return Invite{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	s.pruneLocked(now)
	pending := 0
	for _, inv := range s.invites {
		if inv.State == Pending {
			pending++
		}
	}
	if pending >= maxPending {
		return Invite{}, fmt.Errorf("%d invitations are pending already: cancel some first", pending)
	}
	code, err := newCode(func(np string) bool { _, ok := s.invites[np]; return ok })
	if err != nil {
		return Invite{}, err
	}
	inv := &invitation{
		Invite: Invite{
			Code: code.String(), Nameplate: code.Nameplate, Name: opt.Name, Group: opt.Group,
			Created: now, Expires: now.Add(opt.TTL), State: Pending, AttemptsLeft: MaxAttempts,
		},
		code: code,
		pw:   password(code),
	}
	s.invites[code.Nameplate] = inv
	if s.cfg.Routing != nil {
		ctx, cancel := context.WithTimeout(s.ctx, opt.TTL)
		inv.stopProvide = cancel
		s.wg.Go(func() {
			defer cancel()
			if err := s.cfg.Routing.Provide(ctx, rendezvousKey(code.Nameplate), true); err != nil && ctx.Err() == nil {
				// Connected peers can still find the invitation.
				s.log.Info("invitation: DHT provide failed", "nameplate", code.Nameplate, "err", err)
			}
		})
	}
	s.log.Info("invitation created", "nameplate", code.Nameplate, "name", opt.Name, "group", opt.Group, "expires", inv.Expires)
	return inv.Invite, nil
}

// List returns the invitations, pending and recently ended, oldest first.
func (s *Service) List() []Invite {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.cfg.now())
	out := make([]Invite, 0, len(s.invites))
	for _, inv := range s.invites {
		out = append(out, inv.Invite)
	}
	slices.SortFunc(out, func(a, b Invite) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Nameplate, b.Nameplate)
	})
	return out
}

// Cancel withdraws a pending invitation, named by its code or nameplate.
func (s *Service) Cancel(codeOrNameplate string) error {
	np, err := parseNameplate(strings.TrimSpace(codeOrNameplate))
	if err != nil {
		c, cerr := ParseCode(codeOrNameplate)
		if cerr != nil {
			return fmt.Errorf("cancel %q: give an invitation's code or its number", codeOrNameplate)
		}
		np = c.Nameplate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.cfg.now())
	inv, ok := s.invites[np]
	if !ok {
		return fmt.Errorf("no invitation %s", np)
	}
	if inv.State != Pending {
		return fmt.Errorf("invitation %s is %s already", np, inv.State)
	}
	s.endLocked(inv, Canceled)
	return nil
}

// pruneLocked expires what is due and forgets what ended long ago.
func (s *Service) pruneLocked(now time.Time) {
	for np, inv := range s.invites {
		if inv.State == Pending && !now.Before(inv.Expires) && inv.inflight == 0 {
			s.endLocked(inv, Expired)
			inv.Ended = inv.Expires
		}
		if inv.State != Pending && now.Sub(inv.Ended) > keepEnded {
			delete(s.invites, np)
		}
	}
}

// endLocked moves a pending invitation to a final state.
func (s *Service) endLocked(inv *invitation, st State) {
	inv.State = st
	inv.Ended = s.cfg.now()
	if inv.stopProvide != nil {
		inv.stopProvide()
	}
	s.log.Info("invitation ended", "nameplate", inv.Nameplate, "state", st, "peer", inv.Peer)
}

// allowPeerLocked applies the per-peer rate limit to one PAKE run.
func (s *Service) allowPeerLocked(p peer.ID, now time.Time) bool {
	lim, ok := s.peerLim[p]
	if !ok {
		if len(s.peerLim) >= maxLimitedPeers {
			// A limiter back at full burst is the same as none.
			for id, l := range s.peerLim {
				if l.TokensAt(now) >= float64(s.cfg.peerBurst) {
					delete(s.peerLim, id)
				}
			}
			if len(s.peerLim) >= maxLimitedPeers {
				return false
			}
		}
		lim = rate.NewLimiter(s.cfg.peerRate, s.cfg.peerBurst)
		s.peerLim[p] = lim
	}
	return lim.AllowN(now, 1)
}
