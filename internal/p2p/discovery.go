package p2p

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
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
			var advertised []multiaddr.Multiaddr // nil: any the peerstore has
			if len(e.ListenAddrs) > 0 {
				advertised = e.ListenAddrs
			}
			if e.SignedPeerRecord != nil {
				// What identify uses when the peer sent one.
				if rec, err := e.SignedPeerRecord.Record(); err == nil {
					if pr, ok := rec.(*peer.PeerRecord); ok {
						advertised = pr.Addrs
					}
				}
			}
			n.seen(e.Peer, n.acceptedAddrs(e.Peer, advertised, e.Conn), directionSource(e.Conn))
		case event.EvtPeerProtocolsUpdated:
			if !speaksP2PShare(e.Added) {
				continue
			}
			conns := n.host.Network().ConnsToPeer(e.Peer)
			if len(conns) == 0 {
				continue
			}
			n.seen(e.Peer, n.acceptedAddrs(e.Peer, nil, conns[0]), directionSource(conns[0]))
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

// acceptedAddrs is what the table records for a peer connected over c:
// the addresses it advertised (nil: any) that identify accepted into the
// peerstore, less those it has no business giving us (filterAdvertised).
// The table's addresses are what the keepalive dials, so a peer must not be
// able to make this node dial arbitrary addresses on its own LAN or host.
func (n *Node) acceptedAddrs(id peer.ID, advertised []multiaddr.Multiaddr, c network.Conn) []multiaddr.Multiaddr {
	addrs := n.host.Peerstore().Addrs(id)
	if advertised != nil {
		addrs = slices.DeleteFunc(addrs, func(a multiaddr.Multiaddr) bool {
			return !slices.ContainsFunc(advertised, a.Equal)
		})
	}
	var remote multiaddr.Multiaddr
	if c != nil {
		remote = c.RemoteMultiaddr()
	}
	return filterAdvertised(addrs, remote)
}

// filterAdvertised drops from the addresses a peer gave us those we must
// not dial, given the address its connection came from (identify's rule,
// applied again because the table outlives the peerstore's entries):
// from a public address, only public addresses (the peer is not on our
// LAN, so its private and loopback addresses are ours, not its); from a
// private one, no loopback; from loopback, anything. Unspecified addresses
// (0.0.0.0, ::), which reach this host, are always dropped. With no
// connection (remote nil) only public addresses are kept.
func filterAdvertised(addrs []multiaddr.Multiaddr, remote multiaddr.Multiaddr) []multiaddr.Multiaddr {
	var keep func(multiaddr.Multiaddr) bool
	switch {
	case remote != nil && manet.IsIPLoopback(remote):
		keep = func(multiaddr.Multiaddr) bool { return true }
	case remote != nil && manet.IsPrivateAddr(remote):
		keep = func(a multiaddr.Multiaddr) bool { return !manet.IsIPLoopback(a) }
	default:
		keep = manet.IsPublicAddr
	}
	var out []multiaddr.Multiaddr
	for _, a := range addrs {
		if a != nil && !manet.IsIPUnspecified(a) && keep(a) {
			out = append(out, a)
		}
	}
	return out
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

// checkLoop pings the peers asked for by requestCheck, each in its lane
// (see lane), at most one ping per peer at a time: a check asked for while
// one is in flight is covered by it.
func (n *Node) checkLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case id := <-n.checks:
			p, ok := n.peers.Get(id)
			if !ok || !n.live.start(id, time.Now()) {
				continue
			}
			sem := n.lane(p)
			n.wg.Go(func() {
				defer n.live.finish(id)
				select {
				case sem <- struct{}{}:
				case <-n.ctx.Done():
					return
				}
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
