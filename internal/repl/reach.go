package repl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/ticket"
)

// cmdShare prints a ticket for one published file: one line to send to
// someone, who runs `get TICKET` with no shared network needed.
func cmdShare(_ context.Context, c *call, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: share NAME|CID")
	}
	var t ticket.Ticket
	var found []string
	for _, e := range c.r.d.Share.Published() {
		s := e.CID.String()
		if e.HasName(args[0]) || s == args[0] || (len(args[0]) >= 4 && strings.HasPrefix(s, args[0])) {
			e = e.Named(args[0]) // the name asked for, if it is one of the content's
			t = ticket.Ticket{CID: e.CID, Name: e.Name, Size: uint64(e.Size), SHA256: e.SHA256[:]}
			if e.Collection {
				t.SHA256, t.Collection, t.Files = nil, true, uint64(e.Files)
			}
			found = append(found, e.Name)
		}
	}
	switch {
	case len(found) == 0:
		return fmt.Errorf("%q is not published by this node (publish it first; see published)", args[0])
	case len(found) > 1:
		return fmt.Errorf("%q matches %d published files (%s): give the whole name or CID", args[0], len(found), strings.Join(found, ", "))
	}
	t.Publisher = c.r.d.Node.ID()
	t.Addrs = c.r.d.Node.ShareableAddrs()
	s, err := t.Encode()
	if err != nil {
		return err
	}
	c.printf("%s\n", s)
	if len(c.r.d.Node.RelayAddrs()) == 0 && len(c.r.d.Node.PublicAddrs()) == 0 {
		c.printf("note: no relayed or public address yet: the ticket works on this LAN; beyond it, wait for a relay reservation (see id)\n")
	}
	return nil
}

// cmdID shows who this node is and how others can reach it.
func cmdID(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	n := c.r.d.Node
	c.printf("peer ID: %s\n", n.ID())
	c.printf("reachability: %s (relay service: %s)\n", reachName(n.Reachability()), n.RelayServiceMode())
	if r := n.Reservations(); r > 0 {
		c.printf("relay reservations: %d\n", r)
	}
	if ps := n.PublicAddrs(); len(ps) > 0 {
		c.printf("public addresses (own, observed through NAT, or mapped by the router):\n")
		for _, a := range ps {
			c.printf("  %s\n", termSafe(a.String()))
		}
	}
	c.printf("addresses:\n")
	for _, a := range n.Addrs() {
		c.printf("  %s\n", termSafe(a.String()))
	}
	return nil
}

func reachName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private (behind NAT or a firewall)"
	}
	return "unknown"
}

// linkOf says how this node is connected to id now: "quic", "tcp",
// "relay", or "-", with the last hole-punch result when there is one.
func (c *call) linkOf(id peer.ID) string {
	n := c.r.d.Node
	link := "-"
	if ci, ok := n.Conns(id); ok {
		link = ci.Transport
	}
	if r, ok := n.LastPunch(id); ok {
		if r.Success {
			link += " (punched)"
		} else {
			link += " (punch failed)"
		}
	}
	return link
}

// termSafe escapes what a peer could use to take over the terminal:
// control characters (escape sequences), and invisible or
// direction-changing ones.
func termSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar ||
			unicode.In(r, unicode.Zl, unicode.Zp) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// termText is termSafe for text of several lines (an error listing
// choices): line breaks are kept, everything else escaped as termSafe does.
func termText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = termSafe(l)
	}
	return strings.Join(lines, "\n")
}
