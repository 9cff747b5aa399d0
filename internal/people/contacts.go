package people

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The book is what an accepted invitation (internal/invite) writes to:
// the name the user gave with --name and the group of --to.

// CheckContact reports whether a peer not known yet could be given the
// name nick and put in group (either may be empty), so that invite and
// accept refuse a bad name or a missing group before a code is made or
// used rather than after the other side was let in.
func (b *Book) CheckContact(nick, group string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if nick != "" {
		if err := ValidName(nick); err != nil {
			return err
		}
		f := fold(nick)
		if id, ok := b.byNick[f]; ok {
			return fmt.Errorf("%w: %q already names %s", ErrTaken, nick, id)
		}
		if g, ok := b.groups[f]; ok {
			return fmt.Errorf("%w: %q is a group", ErrTaken, g.Name)
		}
	}
	if group != "" {
		if _, ok := b.groups[fold(group)]; !ok {
			return fmt.Errorf("%w: no group %q (make it first: group create %s)", ErrNotFound, group, group)
		}
	}
	return nil
}

// AddContact names p nick and adds it to group, each if not empty.
func (b *Book) AddContact(p peer.ID, nick, group string) error {
	if nick != "" {
		if err := b.SetName(p, nick); err != nil {
			return err
		}
	}
	if group != "" {
		if err := b.AddMembers(group, p); err != nil {
			return err
		}
	}
	return nil
}
