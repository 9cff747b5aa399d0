package p2p

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

const (
	// maxConcurrentPings bounds the pings of one keepalive round, and
	// separately those asked for by events.
	maxConcurrentPings = 16
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

// refresh is one keepalive round; force ignores the offline backoff.
func (n *Node) refresh(ctx context.Context, force bool) {
	n.adoptRoutingTable()
	sem := make(chan struct{}, maxConcurrentPings)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range n.peers.ids() {
		if !force && !n.live.due(id, time.Now()) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			n.checkPeer(ctx, id, false)
		})
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
		if _, ok := n.peers.Get(id); !ok {
			n.peers.observe(id, n.host.Peerstore().Addrs(id), SourceDHT)
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

// liveness is the keepalive's per-peer backoff for offline peers.
type liveness struct {
	mu sync.Mutex
	m  map[peer.ID]liveState
}

type liveState struct {
	failures int
	next     time.Time // do not ping before this, unless forced
}

func newLiveness() *liveness { return &liveness{m: make(map[peer.ID]liveState)} }

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
