package node

import (
	"fmt"
	"slices"

	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pshare/p2pshare/internal/ticket"
)

// Ticket makes a ticket for one of this node's published files, named by
// name or CID. It carries the node's current addresses, best first:
// relayed ones (they work from anywhere while the reservation lasts, and
// lead to a hole punch), public ones, then LAN ones (a friend on the same
// LAN); never loopback or link-local ones.
func (n *Node) Ticket(nameOrCID string) (string, error) {
	var found bool
	var t ticket.Ticket
	for _, e := range n.Share.Published() {
		if e.Name == nameOrCID || e.CID.String() == nameOrCID {
			t = ticket.Ticket{CID: e.CID, Name: e.Name, Size: uint64(e.Size), SHA256: e.SHA256[:]}
			found = true
			break
		}
	}
	if !found {
		return "", fmt.Errorf("%q is not published by this node (publish it first; see published)", nameOrCID)
	}
	t.Publisher = n.P2P.ID()
	t.Addrs = ticketAddrs(n.P2P.Host().Addrs())
	return t.Encode()
}

// ticketAddrs orders and filters addresses for a ticket.
func ticketAddrs(addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
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
	for _, a := range addrs {
		if manet.IsIPLoopback(a) || manet.IsIP6LinkLocal(a) {
			continue
		}
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(a, b multiaddr.Multiaddr) int { return rank(a) - rank(b) })
	return out[:min(len(out), ticket.MaxAddrs)]
}
