package people

import (
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Gater returns a connection gater that refuses blocked peers: dials to
// them, and connections from them once the security handshake has
// proved who they are (an inbound peer is not known before that).
func (b *Book) Gater() connmgr.ConnectionGater { return gater{b} }

type gater struct{ b *Book }

func (g gater) InterceptPeerDial(p peer.ID) bool { return !g.b.Blocked(p) }

func (g gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool { return !g.b.Blocked(p) }

func (gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.b.Blocked(p)
}

func (gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
