package p2p

import (
	"context"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Which peers enter the table. A peer is recorded once identify shows it
// speaks a protocol under proto.Prefix: every p2pshare node runs the DHT
// in server mode, so "/p2pshare/kad/1.0.0" alone qualifies it, and the
// share protocols count too. Plain libp2p peers (an IPFS node dialling a
// public address, say) never enter it. Peers found by mDNS under
// MDNSServiceName, bootstrap peers and peers in the DHT routing table are
// p2pshare peers by construction and are recorded as soon as found.

// eventLoop turns host events into peer-table updates.
func (n *Node) eventLoop() {
	for ev := range n.sub.Out() {
		switch e := ev.(type) {
		case event.EvtPeerIdentificationCompleted:
			if !speaksP2PShare(e.Protocols) {
				continue
			}
			addrs := e.ListenAddrs
			if len(addrs) == 0 {
				addrs = n.host.Peerstore().Addrs(e.Peer)
			}
			n.seen(e.Peer, addrs, directionSource(e.Conn))
		case event.EvtPeerProtocolsUpdated:
			if !speaksP2PShare(e.Added) {
				continue
			}
			conns := n.host.Network().ConnsToPeer(e.Peer)
			if len(conns) == 0 {
				continue
			}
			n.seen(e.Peer, n.host.Peerstore().Addrs(e.Peer), directionSource(conns[0]))
		case event.EvtPeerConnectednessChanged:
			if e.Connectedness == network.Connected {
				continue
			}
			// The last connection went away. Connections close for many
			// reasons (the connection manager trims them, the peer
			// restarts); only a ping says whether the peer is gone.
			if p, ok := n.peers.Get(e.Peer); ok && p.Online {
				n.requestCheck(e.Peer)
			}
		}
	}
}

// seen records a live p2pshare peer that just identified itself.
func (n *Node) seen(id peer.ID, addrs []multiaddr.Multiaddr, src Source) {
	if id == n.host.ID() {
		return
	}
	n.peers.observe(id, addrs, src)
	n.peers.markOnline(id, 0)
	n.live.succeeded(id)
	n.requestCheck(id) // measure the RTT now rather than a round later
}

func directionSource(c network.Conn) Source {
	if c != nil && c.Stat().Direction == network.DirInbound {
		return SourceInbound
	}
	return SourceOutbound
}

// requestCheck asks checkLoop to ping id soon. It never blocks: when the
// queue is full the next keepalive round covers the peer.
func (n *Node) requestCheck(id peer.ID) {
	if n.ctx.Err() != nil {
		return
	}
	select {
	case n.checks <- id:
	default:
	}
}

// checkLoop pings the peers asked for by requestCheck.
func (n *Node) checkLoop() {
	sem := make(chan struct{}, maxConcurrentPings)
	for {
		select {
		case <-n.ctx.Done():
			return
		case id := <-n.checks:
			select {
			case sem <- struct{}{}:
			case <-n.ctx.Done():
				return
			}
			n.wg.Go(func() {
				defer func() { <-sem }()
				n.checkPeer(n.ctx, id, true)
			})
		}
	}
}

// mdnsNotifee receives peers found by mDNS. The mdns package calls it on
// goroutines of its own, possibly just after Close, so it only records the
// peer and queues a dial for dialLoop, which the node owns.
type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if n.ctx.Err() != nil || ai.ID == n.host.ID() {
		return
	}
	n.log.Debug("mDNS found peer", "peer", ai.ID, "addrs", ai.Addrs)
	n.peers.observe(ai.ID, ai.Addrs, SourceMDNS)
	select {
	case n.dials <- ai:
	case <-n.ctx.Done():
	default: // a burst of announcements: the next one will do
	}
}

// dialLoop connects to peers found by mDNS. Once connected, identify adds
// them to the DHT routing table (both sides are servers with the same
// prefix) and eventLoop marks them online.
func (n *Node) dialLoop() {
	sem := make(chan struct{}, maxConcurrentDials)
	for {
		select {
		case <-n.ctx.Done():
			return
		case ai := <-n.dials:
			if n.host.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-n.ctx.Done():
				return
			}
			n.wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(n.ctx, mdnsConnectTimeout)
				defer cancel()
				if err := n.host.Connect(ctx, ai); err != nil && n.ctx.Err() == nil {
					n.log.Debug("mDNS peer unreachable", "peer", ai.ID, "err", err)
				}
			})
		}
	}
}
