package repl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/p2pshare/p2pshare/internal/invite"
)

// The invitation commands: invite prints a one-time code, accept uses one,
// invites lists this node's codes (internal/invite).

// invites returns the invitation service, or why there is none.
func (c *call) invites() (*invite.Service, error) {
	if c.r.d.Invites == nil {
		return nil, errors.New("invitations are not available in this node")
	}
	return c.r.d.Invites, nil
}

func cmdInvite(_ context.Context, c *call, args []string) error {
	fs := c.flags()
	group := fs.String("to", "", "the group the invited peer joins")
	name := fs.String("name", "", "the name the invited peer gets here")
	ttl := fs.Duration("ttl", invite.DefaultTTL, "how long the code stays valid")
	cancel := fs.String("cancel", "", "withdraw the invitation with this code or number")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	s, err := c.invites()
	if err != nil {
		return err
	}
	if *cancel != "" {
		if err := s.Cancel(*cancel); err != nil {
			return err
		}
		c.printf("invitation canceled\n")
		return nil
	}
	inv, err := s.Create(invite.Options{Name: *name, Group: *group, TTL: *ttl})
	if err != nil {
		return err
	}
	c.printf("invitation code: %s\n", inv.Code)
	c.printf("valid once, for %s (until %s); the other side runs: accept %s\n",
		inv.Expires.Sub(inv.Created).Round(time.Second), inv.Expires.Format("15:04:05"), inv.Code)
	return nil
}

func cmdAccept(ctx context.Context, c *call, args []string) error {
	fs := c.flags()
	name := fs.String("name", "", "the name the inviting peer gets here")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("usage: accept CODE [--name NICK]")
	}
	s, err := c.invites()
	if err != nil {
		return err
	}
	// A code typed with spaces between its words arrives as several.
	res, err := s.Accept(ctx, strings.Join(pos, "-"), *name)
	if err != nil {
		return err
	}
	who := c.peerFmt(false)(res.Peer)
	if *name != "" {
		who = *name + " (" + who + ")"
	}
	c.printf("invitation accepted: %s and this node are peers now\n", who)
	if res.Note != "" {
		c.printf("but: %s\n", res.Note)
	}
	return nil
}

func cmdInvites(_ context.Context, c *call, args []string) error {
	_, wide, err := c.listFlags(args, false)
	if err != nil {
		return err
	}
	s, err := c.invites()
	if err != nil {
		return err
	}
	list := s.List()
	if len(list) == 0 {
		c.printf("no invitations (invite makes one)\n")
		return nil
	}
	short := c.peerFmt(wide)
	now := time.Now()
	tw := c.table()
	fmt.Fprintln(tw, "CODE\tSTATE\tNAME\tGROUP\tTRIES LEFT\tWHEN\tPEER")
	for _, inv := range list {
		when, who := "", ""
		if inv.State == invite.Pending {
			when = "expires in " + inv.Expires.Sub(now).Round(time.Second).String()
		} else {
			when = ago(now.Sub(inv.Ended))
		}
		if inv.Peer != "" {
			who = short(inv.Peer)
		}
		state := string(inv.State)
		if inv.Note != "" {
			state += " (" + inv.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", inv.Code, state, dash(inv.Name), dash(inv.Group), inv.AttemptsLeft, when, dash(who))
	}
	return tw.Flush()
}

// dash stands for an empty table cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
