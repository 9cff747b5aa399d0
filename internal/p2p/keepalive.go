package p2p

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

const (
	// maxConcurrentPings bounds the pings in flight in each of the two
	// lanes (see lane).
	maxConcurrentPings = 16
	// maxPingsPerRound bounds the pings a periodic keepalive round starts
	// to peers that are not valued (see PeerInfo.valued): with the lane's
	// concurrency, what a table full of unreachable addresses ("black
	// holes", each costing a PingTimeout) can cost per interval.
	maxPingsPerRound = 32
	// maxConcurrentDials bounds dials to peers found by mDNS.
	maxConcurrentDials = 8
	// maxOfflineBackoff is the longest an offline peer goes unpinged. An
	// offline peer is pinged every round at first, then less and less
	// often (doubling), so a table full of departed peers costs little.
	maxOfflineBackoff = 5 * time.Minute
)

// keepaliveLoop runs a round at once (peers loaded from the datastore are
// offline until reached) and then every Config.Keepalive.
func (n *Node) keepaliveLoop() {
	t := time.NewTicker(n.cfg.Keepalive)
	defer t.Stop()
	for {
		n.refresh(n.ctx, false)
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefreshPeers runs one keepalive round now and returns when it is done:
// it adopts peers from the DHT routing table and pings every peer in the
// table, offline ones included whatever their backoff. For the REPL's
// "peers" command and for tests.
func (n *Node) RefreshPeers(ctx context.Context) {
	n.refresh(ctx, true)
}

// refresh is one keepalive round; force ignores the offline backoff and
// the round's bounds, and waits for every ping.
//
// A periodic round does not wait for its pings: it starts those that are
// due, valued peers first, then online ones, then the least recently
// pinged, each in its lane (see lane) as long as the lane has room, at
// most maxPingsPerRound of them to peers that are not valued, and never a
// second ping of a peer whose ping is in flight. Peers left over are due
// at the next round. So however many rows are unreachable, a valued
// peer's ping starts every interval and its online/offline flip comes
// within one interval and a PingTimeout.
func (n *Node) refresh(ctx context.Context, force bool) {
	n.adoptRoutingTable()
	n.noteExchanges()
	rows := n.peers.List()
	n.live.prune(rows)
	now := time.Now()
	due := rows[:0]
	for _, p := range rows {
		if force || n.live.due(p.ID, now) {
			due = append(due, p)
		}
	}
	n.live.order(due)
	var wg sync.WaitGroup
	defer wg.Wait()
	others := 0
	for _, p := range due {
		sem := n.lane(p)
		if force {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				n.checkPeer(ctx, p.ID, false)
			})
			continue
		}
		if !p.valued() && others >= maxPingsPerRound {
			continue
		}
		if !n.live.start(p.ID, now) {
			continue // in flight: its outcome is recorded when it ends
		}
		select {
		case sem <- struct{}{}:
		default: // the lane is full: the peer is due at the next round
			n.live.finish(p.ID)
			continue
		}
		if !p.valued() {
			others++
		}
		n.wg.Go(func() {
			defer func() { <-sem }()
			defer n.live.finish(p.ID)
			n.checkPeer(ctx, p.ID, false)
		})
	}
}

// lane returns the ping semaphore for p: one for valued peers (those we
// exchange files with, or that the user or configuration named), one for
// all others, so that pings to unreachable peers never hold up theirs.
func (n *Node) lane(p PeerInfo) chan struct{} {
	if p.valued() {
		return n.live.valuedLane
	}
	return n.live.othersLane
}

// noteExchanges records, for every peer with a file-transfer stream open
// now (Config.BulkProtocols, either direction), that we exchange files
// with it. The fetcher keeps its streams open between downloads (30 s)
// and the server for longer, so a round every Keepalive sees them.
func (n *Node) noteExchanges() {
	seen := make(map[peer.ID]bool)
	for _, c := range n.host.Network().Conns() {
		p := c.RemotePeer()
		if seen[p] {
			continue
		}
		for _, st := range c.GetStreams() {
			if slices.Contains(n.cfg.BulkProtocols, st.Protocol()) {
				seen[p] = true
				n.peers.markExchanged(p)
				break
			}
		}
	}
}

// adoptRoutingTable records DHT routing-table peers the table lacks. The
// DHT owns its routing table's PeerAdded hook, so this polls instead.
func (n *Node) adoptRoutingTable() {
	if n.dht == nil {
		return
	}
	for _, id := range n.dht.RoutingTable().ListPeers() {
		// On the public DHT most of the routing table is other software:
		// the table keeps p2pshare peers only.
		protos, _ := n.host.Peerstore().GetProtocols(id)
		if !speaksP2PShare(protos) {
			continue
		}
		if _, ok := n.peers.Get(id); ok {
			continue
		}
		// Recorded like an identified peer: relative to the connection it
		// came on; one not connected now is adopted in a later round.
		if conns := n.host.Network().ConnsToPeer(id); len(conns) > 0 {
			n.peers.observe(id, n.acceptedAddrs(id, nil, conns[0]), SourceDHT)
		}
	}
}

// checkPeer pings id once and records the outcome. An unconnected peer is
// dialled at its last known addresses. fromEvent checks do not advance
// the backoff of an already offline peer.
func (n *Node) checkPeer(ctx context.Context, id peer.ID, fromEvent bool) {
	if n.host.Network().Connectedness(id) != network.Connected {
		if p, ok := n.peers.Get(id); ok && len(p.Addrs) > 0 {
			n.host.Peerstore().AddAddrs(id, p.Addrs, keepaliveAddrTTL)
		}
		// The swarm's dial backoff (seconds, growing) would hide a peer that
		// came back; n.live is the backoff for keepalive dials instead.
		// (Not network.WithForceDirectDial: in go-libp2p v0.51 that path
		// dereferences a nil transport when the swarm closes mid-dial.)
		if b, ok := n.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
			b.Backoff().Clear(id)
		}
	}
	rtt, err := n.pingOnce(ctx, id)
	if ctx.Err() != nil {
		return // we gave up (node closing, caller's deadline): not the peer's fault
	}
	if err != nil {
		n.log.Debug("keepalive ping failed", "peer", id, "err", err)
		if !fromEvent || n.isOnline(id) {
			n.live.failed(id, time.Now(), n.cfg.Keepalive)
		}
		n.peers.markOffline(id, err)
		return
	}
	n.live.succeeded(id)
	n.peers.markOnline(id, rtt)
}

func (n *Node) isOnline(id peer.ID) bool {
	p, ok := n.peers.Get(id)
	return ok && p.Online
}

var errNoPingResult = errors.New("ping: no answer")

// pingOnce takes one result from libp2p's ping and waits for the ping
// goroutine to finish, so no goroutine outlives the call.
func (n *Node) pingOnce(ctx context.Context, id peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.PingTimeout)
	defer cancel()
	// A peer behind NAT may be connected only through a relay: a ping is
	// a few bytes, well within a limited circuit.
	ch := ping.Ping(network.WithAllowLimitedConn(ctx, "keepalive"), n.host, id)
	res, ok := <-ch
	cancel()
	for range ch { // ping closes ch when its goroutine returns
	}
	switch {
	case ok:
		return res.RTT, res.Error
	case ctx.Err() != nil:
		return 0, ctx.Err()
	default:
		return 0, errNoPingResult
	}
}

// liveness is the keepalive's per-peer state: the backoff of offline
// peers, which peers have a ping in flight, and when each was last pinged
// (for the order of a round); and the two ping lanes.
type liveness struct {
	mu       sync.Mutex
	m        map[peer.ID]liveState
	inflight map[peer.ID]bool
	lastPing map[peer.ID]time.Time

	valuedLane, othersLane chan struct{}
}

type liveState struct {
	failures int
	next     time.Time // do not ping before this, unless forced
}

func newLiveness() *liveness {
	return &liveness{
		m:          make(map[peer.ID]liveState),
		inflight:   make(map[peer.ID]bool),
		lastPing:   make(map[peer.ID]time.Time),
		valuedLane: make(chan struct{}, maxConcurrentPings),
		othersLane: make(chan struct{}, maxConcurrentPings),
	}
}

// start marks a ping of id in flight, unless one already is.
func (l *liveness) start(id peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight[id] {
		return false
	}
	l.inflight[id] = true
	l.lastPing[id] = now
	return true
}

func (l *liveness) finish(id peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.inflight, id)
}

// order sorts a round's peers: valued first, then online, then least
// recently pinged first.
func (l *liveness) order(ps []PeerInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortStableFunc(ps, func(a, b PeerInfo) int {
		if a.valued() != b.valued() {
			if a.valued() {
				return -1
			}
			return 1
		}
		if a.Online != b.Online {
			if a.Online {
				return -1
			}
			return 1
		}
		return l.lastPing[a.ID].Compare(l.lastPing[b.ID])
	})
}

// prune forgets peers no longer in the table (evicted), so the state stays
// as bounded as the table.
func (l *liveness) prune(rows []PeerInfo) {
	in := make(map[peer.ID]bool, len(rows))
	for _, p := range rows {
		in[p.ID] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.m {
		if !in[id] {
			delete(l.m, id)
		}
	}
	for id := range l.lastPing {
		if !in[id] && !l.inflight[id] {
			delete(l.lastPing, id)
		}
	}
}

func (l *liveness) due(id peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !now.Before(l.m[id].next)
}

func (l *liveness) succeeded(id peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, id)
}

// failed pushes the next ping back by interval * 2^(failures-1), at most
// maxOfflineBackoff; the first failure keeps the normal rhythm. The wait is
// shortened by a tenth of an interval so the tick that should ping is not
// missed by a hair.
func (l *liveness) failed(id peer.ID, now time.Time, interval time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[id]
	s.failures++
	if interval <= 0 {
		interval = DefaultKeepalive
	}
	wait := interval << min(s.failures-1, 20)
	if wait > maxOfflineBackoff || wait <= 0 {
		wait = maxOfflineBackoff
	}
	s.next = now.Add(wait - interval/10)
	l.m[id] = s
}
