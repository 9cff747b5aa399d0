package repl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/people"
)

// The commands on what the user says about peers: names, groups, blocks
// (internal/people).

// book is the node's people book, or an error saying there is none.
func (c *call) book() (*people.Book, error) {
	if c.r.d.People == nil {
		return nil, errors.New("this node keeps no names, groups or blocks")
	}
	return c.r.d.People, nil
}

// peerArgs resolves words typed for peers.
func (c *call) peerArgs(words []string) ([]peer.ID, error) {
	var out []peer.ID
	for _, w := range words {
		id, err := c.r.resolvePeer(w)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

func cmdName(_ context.Context, c *call, args []string) error {
	b, err := c.book()
	if err != nil {
		return err
	}
	if len(args) != 2 {
		return errors.New("usage: name PEER NICK")
	}
	id, err := c.r.resolvePeer(args[0])
	if err != nil {
		return err
	}
	if err := b.SetName(id, args[1]); err != nil {
		return err
	}
	c.printf("named %s %s\n", id, args[1])
	return nil
}

func cmdUnname(_ context.Context, c *call, args []string) error {
	b, err := c.book()
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return errors.New("usage: unname NICK")
	}
	id, err := b.Unname(args[0])
	if err != nil {
		return err
	}
	c.printf("%s has no name now\n", id)
	return nil
}

// onePeer runs do on the one peer args name.
func onePeer(usage string, do func(c *call, b *people.Book, id peer.ID) error) func(context.Context, *call, []string) error {
	return func(_ context.Context, c *call, args []string) error {
		b, err := c.book()
		if err != nil {
			return err
		}
		if len(args) != 1 {
			return errors.New("usage: " + usage)
		}
		id, err := c.r.resolvePeer(args[0])
		if err != nil {
			return err
		}
		return do(c, b, id)
	}
}

var (
	cmdBlock = onePeer("block PEER", func(c *call, b *people.Book, id peer.ID) error {
		label := c.peerFmt(true)(id)
		if err := b.Block(id); err != nil {
			return err
		}
		c.printf("blocked %s: its connections are refused and its files hidden\n", label)
		return nil
	})
	cmdUnblock = onePeer("unblock PEER", func(c *call, b *people.Book, id peer.ID) error {
		if err := b.Unblock(id); err != nil {
			return err
		}
		c.printf("unblocked %s\n", c.peerFmt(true)(id))
		return nil
	})
	cmdForget = onePeer("forget PEER", func(c *call, b *people.Book, id peer.ID) error {
		label := c.peerFmt(true)(id) // before its name goes
		if err := b.Forget(id); err != nil {
			return err
		}
		c.printf("forgot %s", label)
		if b.Blocked(id) {
			c.printf(" (still blocked: unblock lets it in)")
		}
		c.printf("\n")
		return nil
	})
)

func cmdBlocked(_ context.Context, c *call, args []string) error {
	b, err := c.book()
	if err != nil {
		return err
	}
	_, wide, err := c.listFlags(args, false)
	if err != nil {
		return err
	}
	ids := b.BlockedPeers()
	if len(ids) == 0 {
		c.printf("no peer is blocked\n")
		return nil
	}
	label := c.peerFmt(wide)
	for _, id := range ids {
		c.printf("%s\n", label(id))
	}
	return nil
}

const groupUsage = "usage: group create NAME | add NAME PEER... | rm NAME PEER... | delete NAME"

func cmdGroup(_ context.Context, c *call, args []string) error {
	b, err := c.book()
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return errors.New(groupUsage)
	}
	verb, name, rest := args[0], args[1], args[2:]
	switch verb {
	case "create", "delete":
		if len(rest) > 0 {
			return errors.New(groupUsage)
		}
		if verb == "create" {
			err = b.CreateGroup(name)
		} else {
			err = b.DeleteGroup(name)
		}
		if err != nil {
			return err
		}
		c.printf("group %s: %sd\n", name, verb)
		return nil
	case "add", "rm":
		if len(rest) == 0 {
			return errors.New(groupUsage)
		}
		ids, err := c.peerArgs(rest)
		if err != nil {
			return err
		}
		if verb == "add" {
			err = b.AddMembers(name, ids...)
		} else {
			err = b.RemoveMembers(name, ids...)
		}
		if err != nil {
			return err
		}
		members, _ := b.Members(name)
		c.printf("group %s: %d member(s)\n", name, len(members))
		return nil
	}
	return fmt.Errorf("group %s: unknown (%s)", verb, groupUsage)
}

func cmdGroups(_ context.Context, c *call, args []string) error {
	b, err := c.book()
	if err != nil {
		return err
	}
	wide, asJSON, err := c.listFlagsJSON(args, "GET /api/v1/groups")
	if err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(api.Groups(b))
	}
	gs := b.Groups()
	if len(gs) == 0 {
		c.printf("no groups (group create NAME makes one)\n")
		return nil
	}
	label := c.peerFmt(wide)
	tw := c.table()
	fmt.Fprintln(tw, "GROUP\tMEMBERS")
	for _, g := range gs {
		ms := make([]string, len(g.Members))
		for i, id := range g.Members {
			ms[i] = label(id)
		}
		list := strings.Join(ms, ", ")
		if list == "" {
			list = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", termSafe(g.Name), list)
	}
	return tw.Flush()
}

// peerWords completes a peer: names first, then the peer IDs this node
// knows.
func peerWords(r *REPL, _ []string, _ string) []string {
	var names []string
	if r.d.People != nil {
		for _, n := range r.d.People.Names() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	ids := peerStrings(r.knownPeers()[1:])
	slices.Sort(ids)
	return append(names, slices.Compact(ids)...)
}

// groupWords completes group: its verbs, then a group name, then peers.
func groupWords(r *REPL, args []string, partial string) []string {
	switch len(args) {
	case 0:
		return []string{"add", "create", "delete", "rm"}
	case 1:
		if args[0] == "create" || r.d.People == nil {
			return nil
		}
		var out []string
		for _, g := range r.d.People.Groups() {
			out = append(out, g.Name)
		}
		return out
	}
	if args[0] == "add" || args[0] == "rm" {
		return peerWords(r, nil, partial)
	}
	return nil
}
