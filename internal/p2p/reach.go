package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Reachability beyond the LAN is go-libp2p's own machinery, configured
// here: AutoNAT (v1 and v2) tells a node whether it is publicly reachable,
// NATPortMap asks the home router for a port mapping, AutoRelay takes
// reservations on relays (fixed ones and connected peers that offer the
// hop protocol) when the node is not reachable, DCUtR upgrades relayed
// connections to direct ones by hole punching, and a reachable node may
// run the relay service for others. This file also answers, for one peer,
// whether file bytes may flow to it (Reach).

// RelayMode says whether this node relays for others.
type RelayMode string

const (
	// RelayAuto runs the relay service, with go-libp2p's relay v2 limits,
	// once AutoNAT says this node is publicly reachable.
	RelayAuto RelayMode = "auto"
	// RelayOn runs the limited relay service whatever AutoNAT says.
	RelayOn RelayMode = "on"
	// RelayOff never relays for others.
	RelayOff RelayMode = "off"
	// RelayUnlimited runs a relay without per-circuit limits of time or
	// data, so it can carry whole transfers: a relay a group runs for
	// itself, not one open to the world.
	RelayUnlimited RelayMode = "unlimited"
)

// ParseRelayMode checks a --relay-service value.
func ParseRelayMode(s string) (RelayMode, error) {
	switch m := RelayMode(s); m {
	case RelayAuto, RelayOn, RelayOff, RelayUnlimited:
		return m, nil
	}
	return "", fmt.Errorf("relay service %q: want auto, on, off or unlimited", s)
}

// DHTMode chooses the DHT a node joins.
type DHTMode string

const (
	// DHTLAN is p2pshare's own DHT (protocol prefix /p2pshare), seeded by
	// mDNS and bootstrap peers, in server mode.
	DHTLAN DHTMode = "lan"
	// DHTPublic is the public IPFS DHT (/ipfs/kad/1.0.0), seeded by
	// go-libp2p-kad-dht's default bootstrap peers unless bootstrap peers
	// are given; client mode until AutoNAT says the node is reachable.
	DHTPublic DHTMode = "public"
)

// ParseDHTMode checks a --dht value.
func ParseDHTMode(s string) (DHTMode, error) {
	switch m := DHTMode(s); m {
	case DHTLAN, DHTPublic:
		return m, nil
	}
	return "", fmt.Errorf("dht %q: want lan or public", s)
}

// Relay v2 limits of the relay service. Limited: go-libp2p's defaults
// (2 minutes and 128 KiB per circuit each way, 128 reservations, 16
// circuits, one reservation per peer, 8 per IP): enough for the catalog,
// the handshake and hole punching, never for file bytes. Unlimited: no
// per-circuit limit, and fewer, bigger circuits.
func relayResources(mode RelayMode) []relayv2.Option {
	res := relayv2.DefaultResources()
	if mode == RelayUnlimited {
		res.Limit = nil
		res.MaxCircuits = 64
		res.BufferSize = 64 << 10
		return []relayv2.Option{relayv2.WithResources(res), relayv2.WithInfiniteLimits()}
	}
	return []relayv2.Option{relayv2.WithResources(res)}
}

// reachOptions are the host options for reachability.
func (n *Node) reachOptions(static []peer.AddrInfo) []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.EnableRelay(),
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableHolePunching(holepunch.WithTracer(n.punches)),
		libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates(static),
			autorelay.WithMinInterval(10*time.Second),
			autorelay.WithBootDelay(0)),
	}
	if n.cfg.PortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if n.cfg.RelayService == RelayAuto {
		opts = append(opts, libp2p.EnableRelayService(relayResources(RelayAuto)...))
	}
	return opts
}

// startRelayService starts the relay service at once for RelayOn and
// RelayUnlimited (RelayAuto is go-libp2p's relay manager, which starts
// and stops it as reachability changes).
func (n *Node) startRelayService() error {
	if n.cfg.RelayService != RelayOn && n.cfg.RelayService != RelayUnlimited {
		return nil
	}
	r, err := relayv2.New(n.host, relayResources(n.cfg.RelayService)...)
	if err != nil {
		return fmt.Errorf("relay service: %w", err)
	}
	n.relay = r
	return nil
}

// relayCandidates feeds AutoRelay: the fixed relays first, then connected
// peers that offer the circuit v2 hop protocol.
func (n *Node) relayCandidates(static []peer.AddrInfo) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan peer.AddrInfo {
		out := make(chan peer.AddrInfo, num)
		defer close(out)
		sent := 0
		for _, ai := range static {
			if sent == num {
				return out
			}
			out <- ai
			sent++
		}
		h, _ := n.hostForRelays.Load().(host.Host)
		if h == nil { // AutoRelay may ask before libp2p.New has returned
			return out
		}
		for _, id := range h.Network().Peers() {
			if sent == num {
				break
			}
			if slices.ContainsFunc(static, func(ai peer.AddrInfo) bool { return ai.ID == id }) {
				continue
			}
			if ok, _ := h.Peerstore().SupportsProtocols(id, circuitproto.ProtoIDv2Hop); len(ok) == 0 {
				continue
			}
			out <- peer.AddrInfo{ID: id, Addrs: h.Peerstore().Addrs(id)}
			sent++
		}
		return out
	}
}

// PunchResult is the outcome of the last hole punch with one peer.
type PunchResult struct {
	At      time.Time
	Success bool
	Elapsed time.Duration
	Error   string
}

// punchLog records DCUtR outcomes per peer (a holepunch.EventTracer).
type punchLog struct {
	mu   sync.Mutex
	last map[peer.ID]PunchResult
	// changed is closed and replaced at every record, so waiters wake.
	changed chan struct{}
}

func newPunchLog() *punchLog {
	return &punchLog{last: make(map[peer.ID]PunchResult), changed: make(chan struct{})}
}

// maxPunchRecords bounds the log: results are kept for the peers met
// last, not for every peer of a public network.
const maxPunchRecords = 1024

func (l *punchLog) Trace(evt *holepunch.Event) {
	var r PunchResult
	switch e := evt.Evt.(type) {
	case *holepunch.EndHolePunchEvt:
		r = PunchResult{Success: e.Success, Elapsed: e.EllapsedTime, Error: e.Error}
	case *holepunch.DirectDialEvt:
		if !e.Success {
			return // a failed direct dial is followed by a hole punch
		}
		r = PunchResult{Success: true, Elapsed: e.EllapsedTime}
	case *holepunch.ProtocolErrorEvt:
		r = PunchResult{Error: e.Error}
	default:
		return
	}
	r.At = time.Unix(0, evt.Timestamp)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) >= maxPunchRecords {
		var oldest peer.ID
		for id, v := range l.last {
			if oldest == "" || v.At.Before(l.last[oldest].At) {
				oldest = id
			}
		}
		delete(l.last, oldest)
	}
	l.last[evt.Remote] = r
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *punchLog) get(id peer.ID) (PunchResult, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.last[id]
	return r, ok, l.changed
}

// LastPunch returns the last hole-punch result with id, if any.
func (n *Node) LastPunch(id peer.ID) (PunchResult, bool) {
	r, ok, _ := n.punches.get(id)
	return r, ok
}

// ConnInfo describes the connections to one peer.
type ConnInfo struct {
	Direct    bool   // at least one connection is not relayed
	Relayed   bool   // at least one connection goes through a relay
	Limited   bool   // every relayed connection is limited (time, data)
	Transport string // of the best connection: "tcp", "quic", "relay"
}

// Conns describes how this node is connected to id now.
func (n *Node) Conns(id peer.ID) (ConnInfo, bool) {
	conns := n.host.Network().ConnsToPeer(id)
	if len(conns) == 0 {
		return ConnInfo{}, false
	}
	var ci ConnInfo
	ci.Limited = true
	for _, c := range conns {
		if isRelayed(c) {
			ci.Relayed = true
			if !c.Stat().Limited {
				ci.Limited = false
			}
			if ci.Transport == "" {
				ci.Transport = "relay"
			}
			continue
		}
		ci.Direct = true
		ci.Transport = transportName(c.RemoteMultiaddr())
	}
	if !ci.Relayed {
		ci.Limited = false
	}
	return ci, true
}

func isRelayed(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(multiaddr.P_CIRCUIT)
	return err == nil
}

func transportName(a multiaddr.Multiaddr) string {
	for _, p := range a.Protocols() {
		switch p.Code {
		case multiaddr.P_QUIC_V1, multiaddr.P_QUIC:
			return "quic"
		case multiaddr.P_WEBTRANSPORT:
			return "webtransport"
		}
	}
	if _, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
		return "tcp"
	}
	return "other"
}

// Reachability reports what AutoNAT found: public, private or unknown.
func (n *Node) Reachability() network.Reachability {
	if r, ok := n.host.(interface{ Reachability() network.Reachability }); ok {
		return r.Reachability()
	}
	return network.ReachabilityUnknown
}

// RelayAddrs returns this node's relayed addresses (one per relay
// reservation), with /p2p/<id>.
func (n *Node) RelayAddrs() []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// PublicAddrs returns the node's addresses that are public (observed
// through NAT, mapped by the router, or its own), with /p2p/<id>.
func (n *Node) PublicAddrs() []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
			continue
		}
		if manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// RelayServiceMode reports the relay service setting.
func (n *Node) RelayServiceMode() RelayMode { return n.cfg.RelayService }

// ErrOnlyLimitedRelay says a peer is reachable only through a relay that
// limits each circuit (go-libp2p's relay v2 defaults: 2 minutes, 128
// KiB), which cannot carry file bytes, and hole punching did not make a
// direct connection.
var ErrOnlyLimitedRelay = errors.New("reachable only through a limited relay")

// Default bounds of Reach.
const (
	// directUpgradeWait is how long Reach waits for DCUtR to turn a
	// relayed connection into a direct one. The lab measures tens of
	// milliseconds (TCP) to a few hundred (QUIC) for a punch that works;
	// DCUtR itself tries three times.
	directUpgradeWait = 15 * time.Second
	// reachDialTimeout bounds the first connection to a provider.
	reachDialTimeout = 20 * time.Second
)

// Reach makes sure file bytes can flow to ai: it connects if needed;
// a direct connection is used as is; a relayed one is given time for the
// hole punch (DCUtR) to upgrade it, with one fresh relayed connection to
// retry the punch. If no direct connection comes, an unlimited relay
// (RelayUnlimited) is used, and otherwise the error names the peer, why
// and what would help. The returned context carries permission to open
// streams on a relayed connection when that connection is unlimited.
//
// Concurrent calls for one peer (the workers of a Get, two Gets) share
// one attempt, so one caller's redial never closes the relayed
// connection another's punch is running on.
func (n *Node) Reach(ctx context.Context, ai peer.AddrInfo) (context.Context, error) {
	if len(ai.Addrs) > 0 {
		n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, keepaliveAddrTTL)
	}
	if ci, ok := n.Conns(ai.ID); ok && ci.Direct {
		return ctx, nil
	}
	ch := n.reaching.DoChan(string(ai.ID), func() (any, error) { return n.upgrade(ai.ID) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return ctx, r.Err
		}
		if r.Val.(bool) {
			return network.WithAllowLimitedConn(ctx, "p2pshare-unlimited-relay"), nil
		}
		return ctx, nil
	case <-ctx.Done():
		return ctx, ctx.Err()
	}
}

// upgrade is Reach's shared attempt for one peer; it runs on the node's
// context, not a caller's. It reports whether the way to the peer is an
// unlimited relayed connection (false: a direct one).
func (n *Node) upgrade(id peer.ID) (bool, error) {
	ctx := n.ctx
	if _, ok := n.Conns(id); !ok {
		dctx, cancel := context.WithTimeout(ctx, reachDialTimeout)
		// Relayed addresses are fine for this dial: what matters is a
		// connection the hole punch can start from.
		err := n.host.Connect(network.WithAllowLimitedConn(dctx, "p2pshare-reach"), peer.AddrInfo{ID: id})
		cancel()
		if err != nil {
			return false, err
		}
	}
	if ci, _ := n.Conns(id); ci.Direct {
		return false, nil
	}
	// The peer starts DCUtR on a new inbound relayed connection, and this
	// side accepts it only once its DCUtR handler is registered, which
	// go-libp2p does when the host knows a public address of its own (a
	// few hundred milliseconds after a fresh node first meets a public
	// peer). A punch on a connection made before that is refused and never
	// retried: wait for the handler, then start over on a fresh relayed
	// connection, instead of waiting the punch out.
	if !n.dcutrReady() {
		if err := n.waitUntil(ctx, id, directUpgradeWait/2, n.dcutrReady); err == nil && n.isDirect(id) {
			return false, nil
		}
		if n.dcutrReady() {
			n.redialRelayed(ctx, id)
		}
	}
	for attempt := 0; attempt < 2; attempt++ {
		since := time.Now()
		// Done at a direct connection, or early at a failed punch.
		punchFailed := func() bool {
			r, ok := n.LastPunch(id)
			return ok && !r.Success && r.At.After(since)
		}
		_ = n.waitUntil(ctx, id, directUpgradeWait/2, punchFailed)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if n.isDirect(id) {
			return false, nil
		}
		if attempt == 0 {
			// A fresh relayed connection starts the punch again.
			n.redialRelayed(ctx, id)
		}
	}
	if _, ok := n.Conns(id); !ok {
		// A failed punch can take the relayed connection down with it (the
		// peer resets the DCUtR stream and the circuit closes): one more,
		// so an unlimited relay is still found.
		dctx, cancel := context.WithTimeout(ctx, reachDialTimeout)
		err := n.host.Connect(network.WithAllowLimitedConn(dctx, "p2pshare-reach"), peer.AddrInfo{ID: id})
		cancel()
		if err != nil {
			return false, fmt.Errorf("peer %s: connection lost after the hole punch, and no new one: %w", id, err)
		}
	}
	ci, ok := n.Conns(id)
	if ok && ci.Direct {
		return false, nil
	}
	if ok && ci.Relayed && !ci.Limited {
		return true, nil
	}
	why := "no hole-punch result"
	if r, ok := n.LastPunch(id); ok && !r.Success {
		why = "hole punch failed"
		if r.Error != "" {
			why += ": " + shortErr(r.Error)
		}
	}
	return false, &UnreachableError{Peer: id, Why: why}
}

func (n *Node) isDirect(id peer.ID) bool {
	ci, ok := n.Conns(id)
	return ok && ci.Direct
}

// dcutrReady reports whether this host accepts hole punches (go-libp2p
// registers the DCUtR handler once it knows a public address of its own).
func (n *Node) dcutrReady() bool {
	return slices.Contains(n.host.Mux().Protocols(), holepunch.Protocol)
}

// UnreachableError says a peer can be reached only through a limited
// relay: which peer, why the direct upgrade failed, and what would help.
type UnreachableError struct {
	Peer peer.ID
	Why  string
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("peer %s: %v (%s); what helps: a port mapping on either router "+
		"(UPnP/NAT-PMP, or a forwarded port), a node on a public address, or a relay that carries "+
		"transfers (--relay-service unlimited on a node both can reach, given to both with --relay)",
		e.Peer, ErrOnlyLimitedRelay, e.Why)
}

// Unwrap makes errors.Is(err, ErrOnlyLimitedRelay) hold.
func (e *UnreachableError) Unwrap() error { return ErrOnlyLimitedRelay }

// Unreachable tells internal/transfer not to wait for this peer.
func (e *UnreachableError) Unreachable() bool { return true }

// waitUntil waits up to d for a direct connection to id, or for stop
// (if not nil) to hold; it returns an error if neither came in time.
func (n *Node) waitUntil(ctx context.Context, id peer.ID, d time.Duration, stop func() bool) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if n.isDirect(id) || (stop != nil && stop()) {
			return nil
		}
		_, _, changed := n.punches.get(id)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errors.New("no direct connection")
		case <-changed:
		case <-poll.C:
		}
	}
}

// redialRelayed closes the relayed connections to id and opens a new one.
func (n *Node) redialRelayed(ctx context.Context, id peer.ID) {
	for _, c := range n.host.Network().ConnsToPeer(id) {
		if isRelayed(c) {
			c.Close()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, reachDialTimeout)
	defer cancel()
	if b, ok := n.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		b.Backoff().Clear(id)
	}
	if err := n.host.Connect(network.WithAllowLimitedConn(dctx, "p2pshare-reach"), peer.AddrInfo{ID: id}); err != nil {
		n.log.Debug("relayed redial", "peer", id, "err", err)
	}
}

// shortErr keeps the first line of a long libp2p error.
func shortErr(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

var _ holepunch.EventTracer = (*punchLog)(nil)

// ShareableAddrs are the addresses to give someone who wants to reach
// this node (a ticket's), best first: relayed ones (they work from
// anywhere while the reservation lasts, and lead to a hole punch), public
// ones, then LAN ones (a friend on the same LAN); never loopback or
// link-local ones. Without /p2p/<id>.
func (n *Node) ShareableAddrs() []multiaddr.Multiaddr {
	rank := func(a multiaddr.Multiaddr) int {
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
			return 0
		}
		if manet.IsPublicAddr(a) {
			return 1
		}
		return 2
	}
	var out []multiaddr.Multiaddr
	for _, a := range n.host.Addrs() {
		if manet.IsIPLoopback(a) || manet.IsIP6LinkLocal(a) {
			continue
		}
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(a, b multiaddr.Multiaddr) int { return rank(a) - rank(b) })
	return out
}

// Reservations counts the relays this node holds a reservation with (one
// relay gives a relayed address per transport it listens on).
func (n *Node) Reservations() int {
	relays := map[string]bool{}
	for _, a := range n.RelayAddrs() {
		relay, _ := multiaddr.SplitFunc(a, func(c multiaddr.Component) bool { return c.Code() == multiaddr.P_CIRCUIT })
		if id, err := relay.ValueForProtocol(multiaddr.P_P2P); err == nil {
			relays[id] = true
		}
	}
	return len(relays)
}
