package p2p

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

// Stream memory for file transfers. libp2p's defaults (16 MiB per stream,
// 64 MiB per peer before scaling) stop yamux windows from growing under
// load and throttle a fetch stream, which carries chunks at full speed, and
// the several ones a peer may have open at once (one per download and
// provider); these are the limits p2pshare raises.
const (
	bulkStreamMemory        = 64 << 20  // one transfer stream
	bulkPeerMemory          = 256 << 20 // all streams with one peer
	bulkProtocolMemory      = 512 << 20 // all transfer streams, base
	bulkProtocolMemoryPerGB = 256 << 20 // added per GiB the limiter scales to
	bulkProtocolPeerMemory  = 192 << 20 // transfer streams with one peer
)

// Limits that keep one peer, and one IP address, a small share of every
// scope. libp2p's defaults scale the per-peer stream limits with memory
// faster than the transient ones (on a 16 GiB machine a peer may open 500
// inbound streams, the transient scope holds 380), so one peer opening
// streams that never negotiate a protocol fills the transient scope, where
// every stream waits until its protocol is known, and for the negotiation
// timeout (10 s, go-libp2p's basic host default, which libp2p.New does not
// let us change) every other peer's ping, DHT query and fetch is refused.
const (
	// transientStreams is the inbound (and, separately, outbound) stream
	// limit of the transient scope: streams whose protocol is still being
	// negotiated, from all peers together. Negotiation takes one round
	// trip; these are the streams opened in the same moment.
	transientStreams = 1024
	// maxNegotiatingPerPeer is how many inbound streams one peer may have
	// in negotiation at once: 1/64 of the transient scope. An honest peer
	// has a handful (a DHT query, a fetch per download, identify, ping);
	// more are refused (the stream is reset) until earlier ones are done.
	// Eight addresses of one IP (connsPerIPv4) hold at most 1/8.
	maxNegotiatingPerPeer = 16
	// peerStreamsInbound is one peer's inbound streams in every protocol:
	// 1/8 of the transient scope, 1/30 of the system scope on a small
	// machine. The fetch protocol allows 32 per peer of them.
	peerStreamsInbound  = 128
	peerStreamsOutbound = 256
	// connsPerIPv4 and connsPerIPv6Subnet bound the connections from one
	// IPv4 address and one IPv6 /56 (libp2p's defaults, stated here so the
	// shares above hold); connsPerIPv6Site bounds an IPv6 /48. Loopback is
	// exempt (libp2p's default network-prefix limits).
	connsPerIPv4       = 8
	connsPerIPv6Subnet = 8
	connsPerIPv6Site   = 64
)

// newResourceManager builds the host's resource manager: libp2p's default
// scaling limits plus its default service limits, with stream and peer
// memory raised for file transfers, the transient and per-peer stream
// limits above, scaled to this machine (1/8 of RAM, half the file
// descriptors) and frozen into a fixed limiter, so the limits are explicit
// and the same for the node's whole life. It is wrapped to bound each
// peer's streams in negotiation (maxNegotiatingPerPeer), which libp2p's
// scopes cannot express: a stream joins its peer's scope only together
// with the transient one; the wrapper also closes, and refuses for a
// while, a peer whose streams keep being refused (maxRefusalsPerWindow).
func newResourceManager(bulk []protocol.ID) (*negotiationLimiter, error) {
	limits := rcmgr.DefaultLimits // a copy; its maps are nil and filled below
	libp2p.SetDefaultServiceLimits(&limits)

	limits.StreamBaseLimit.Memory = bulkStreamMemory
	limits.PeerBaseLimit.Memory = max(limits.PeerBaseLimit.Memory, bulkPeerMemory)
	for _, p := range bulk {
		limits.AddProtocolLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: bulkProtocolMemory},
			rcmgr.BaseLimitIncrease{StreamsInbound: 128, StreamsOutbound: 128, Streams: 256, Memory: bulkProtocolMemoryPerGB},
		)
		limits.AddProtocolPeerLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: bulkProtocolPeerMemory},
			rcmgr.BaseLimitIncrease{},
		)
	}
	concrete := fixStreamLimits(limits.AutoScale())
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: connsPerIPv4}},
			[]rcmgr.ConnLimitPerSubnet{
				{PrefixLength: 56, ConnCount: connsPerIPv6Subnet},
				{PrefixLength: 48, ConnCount: connsPerIPv6Site},
			}))
	if err != nil {
		return nil, err
	}
	return newNegotiationLimiter(rm), nil
}

// fixStreamLimits sets the transient and per-peer stream limits to the
// constants above, whatever the machine: they are about the share one
// peer may take, not about how much the machine can hold.
func fixStreamLimits(c rcmgr.ConcreteLimitConfig) rcmgr.ConcreteLimitConfig {
	p := c.ToPartialLimitConfig()
	p.Transient.StreamsInbound = transientStreams
	p.Transient.StreamsOutbound = transientStreams
	p.Transient.Streams = 2 * transientStreams
	p.PeerDefault.StreamsInbound = peerStreamsInbound
	p.PeerDefault.StreamsOutbound = peerStreamsOutbound
	p.PeerDefault.Streams = peerStreamsInbound + peerStreamsOutbound
	return p.Build(c)
}

// A peer that keeps opening streams that are refused (a stream flood: each
// refused stream is reset and at once reopened) costs the node a stream
// setup and reset each time, for as long as it likes. Past
// maxRefusalsPerWindow refusals in refusalWindow its connections are closed
// and it is refused for banDuration: new connections from it fail when the
// peer is known (after the security handshake), and its streams are
// refused. An honest peer whose stream is refused backs off; a thousand in
// ten seconds is only reached by one that does not.
const (
	maxRefusalsPerWindow = 1000
	refusalWindow        = 10 * time.Second
	banDuration          = time.Minute
	// maxRefusalRecords bounds the peers whose refusals are counted; when
	// more are, expired records and bans are dropped, then the count
	// starts over (at worst a flooder gets another window).
	maxRefusalRecords = 4096
)

// negotiationLimiter is a resource manager that refuses an inbound stream
// from a peer that already has maxNegotiatingPerPeer inbound streams whose
// protocol is not yet set. A stream leaves the count when its protocol is
// set (it moves from the transient scope to its protocol's) or when it
// ends. It also counts each peer's refused inbound streams and bans a peer
// that has too many (maxRefusalsPerWindow).
type negotiationLimiter struct {
	network.ResourceManager

	// closePeer closes all connections to a peer; set once the host
	// exists (setClosePeer).
	closePeer atomic.Pointer[func(peer.ID)]
	now       func() time.Time // tests may replace it

	mu          sync.Mutex
	negotiating map[peer.ID]int
	refusals    map[peer.ID]*refusalCount
	banned      map[peer.ID]time.Time // until when
}

type refusalCount struct {
	since time.Time // start of the current window
	n     int
}

func newNegotiationLimiter(rm network.ResourceManager) *negotiationLimiter {
	return &negotiationLimiter{
		ResourceManager: rm,
		now:             time.Now,
		negotiating:     make(map[peer.ID]int),
		refusals:        make(map[peer.ID]*refusalCount),
		banned:          make(map[peer.ID]time.Time),
	}
}

// setClosePeer installs what closes a banned peer's connections.
func (l *negotiationLimiter) setClosePeer(f func(peer.ID)) { l.closePeer.Store(&f) }

// bannedLocked reports whether p is banned now, forgetting an expired ban.
func (l *negotiationLimiter) bannedLocked(p peer.ID, now time.Time) bool {
	until, ok := l.banned[p]
	if ok && !now.Before(until) {
		delete(l.banned, p)
		return false
	}
	return ok
}

// refusedLocked counts a refused inbound stream of p and reports whether p
// is now to be banned (it is then banned).
func (l *negotiationLimiter) refusedLocked(p peer.ID, now time.Time) bool {
	c := l.refusals[p]
	if c == nil || now.Sub(c.since) >= refusalWindow {
		if c == nil && len(l.refusals) >= maxRefusalRecords {
			l.sweepLocked(now)
		}
		c = &refusalCount{since: now}
		l.refusals[p] = c
	}
	c.n++
	if c.n <= maxRefusalsPerWindow {
		return false
	}
	delete(l.refusals, p)
	if len(l.banned) >= maxRefusalRecords {
		l.sweepLocked(now)
	}
	l.banned[p] = now.Add(banDuration)
	return true
}

// sweepLocked drops expired refusal windows and bans; if the records are
// still at their bound, all refusal counts.
func (l *negotiationLimiter) sweepLocked(now time.Time) {
	for p, c := range l.refusals {
		if now.Sub(c.since) >= refusalWindow {
			delete(l.refusals, p)
		}
	}
	if len(l.refusals) >= maxRefusalRecords {
		clear(l.refusals)
	}
	for p, until := range l.banned {
		if !now.Before(until) {
			delete(l.banned, p)
		}
	}
	if len(l.banned) >= maxRefusalRecords {
		clear(l.banned) // more banned peers than this: bans are not what helps
	}
}

// refuse counts a refused inbound stream of p, bans p and closes its
// connections when it has had too many, and returns err.
func (l *negotiationLimiter) refuse(p peer.ID, err error) error {
	l.mu.Lock()
	ban := l.refusedLocked(p, l.now())
	l.mu.Unlock()
	if ban {
		if f := l.closePeer.Load(); f != nil {
			// Not from within the stream's setup, which runs on the
			// connection's goroutines.
			go (*f)(p)
		}
		return fmt.Errorf("peer %s had more than %d streams refused in %v; closing its connections for %v: %w",
			p, maxRefusalsPerWindow, refusalWindow, banDuration, err)
	}
	return err
}

// OpenConnection wraps the connection's scope so that a banned peer's
// connection is refused once its peer ID is known.
func (l *negotiationLimiter) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	c, err := l.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil {
		return nil, err
	}
	return &gatedConn{ConnManagementScope: c, l: l}, nil
}

// gatedConn is a connection's scope that refuses a banned peer.
type gatedConn struct {
	network.ConnManagementScope
	l *negotiationLimiter
}

func (c *gatedConn) SetPeer(p peer.ID) error {
	c.l.mu.Lock()
	banned := c.l.bannedLocked(p, c.l.now())
	c.l.mu.Unlock()
	if banned {
		return fmt.Errorf("peer %s is refused for a while: too many refused streams: %w", p, network.ErrResourceLimitExceeded)
	}
	return c.ConnManagementScope.SetPeer(p)
}

func (l *negotiationLimiter) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	if dir != network.DirInbound {
		return l.ResourceManager.OpenStream(p, dir)
	}
	l.mu.Lock()
	if l.bannedLocked(p, l.now()) {
		l.mu.Unlock()
		return nil, fmt.Errorf("peer %s is refused for a while: too many refused streams: %w", p, network.ErrResourceLimitExceeded)
	}
	if l.negotiating[p] >= maxNegotiatingPerPeer {
		l.mu.Unlock()
		return nil, l.refuse(p, fmt.Errorf("peer %s has %d inbound streams in protocol negotiation: %w",
			p, maxNegotiatingPerPeer, network.ErrResourceLimitExceeded))
	}
	l.negotiating[p]++
	l.mu.Unlock()
	s, err := l.ResourceManager.OpenStream(p, dir)
	if err != nil {
		l.negotiated(p)
		return nil, l.refuse(p, err)
	}
	return &negotiatingStream{StreamManagementScope: s, l: l, peer: p}, nil
}

// negotiated takes a stream of p off the count.
func (l *negotiationLimiter) negotiated(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.negotiating[p]--; l.negotiating[p] <= 0 {
		delete(l.negotiating, p)
	}
}

// negotiatingStream is the scope of an inbound stream counted by a
// negotiationLimiter until its protocol is set or it ends.
type negotiatingStream struct {
	network.StreamManagementScope
	l    *negotiationLimiter
	peer peer.ID
	once sync.Once
}

func (s *negotiatingStream) uncount() { s.once.Do(func() { s.l.negotiated(s.peer) }) }

func (s *negotiatingStream) SetProtocol(id protocol.ID) error {
	err := s.StreamManagementScope.SetProtocol(id)
	if err == nil {
		s.uncount()
	}
	return err
}

func (s *negotiatingStream) Done() {
	s.StreamManagementScope.Done()
	s.uncount()
}
