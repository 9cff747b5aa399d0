package people

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// persistGroupLocked writes g (caller holds mu).
func (b *Book) persistGroupLocked(g *Group) error {
	rec := groupRecord{Name: g.Name}
	for _, id := range g.Members {
		rec.Members = append(rec.Members, id.String())
	}
	v, err := json.Marshal(rec)
	if err == nil {
		err = b.ds.Put(context.Background(), groupKey(g.Name), v)
	}
	if err != nil {
		return fmt.Errorf("save group %q: %w", g.Name, err)
	}
	return nil
}

// CreateGroup makes an empty group. The name must be valid and free: not
// a group's nor a peer's name.
func (b *Book) CreateGroup(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	b.mu.Lock()
	f := fold(name)
	if g, ok := b.groups[f]; ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: group %q exists", ErrTaken, g.Name)
	}
	if id, ok := b.byNick[f]; ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %q names peer %s", ErrTaken, b.nicks[id], id)
	}
	g := &Group{Name: name}
	if err := b.persistGroupLocked(g); err != nil {
		b.mu.Unlock()
		return err
	}
	b.groups[f] = g
	b.mu.Unlock()
	b.changed()
	return nil
}

// DeleteGroup removes a group (its members stay known otherwise).
func (b *Book) DeleteGroup(name string) error {
	b.mu.Lock()
	f := fold(name)
	g, ok := b.groups[f]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: no group %q", ErrNotFound, name)
	}
	if err := b.ds.Delete(context.Background(), groupKey(g.Name)); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("delete group %q: %w", g.Name, err)
	}
	delete(b.groups, f)
	b.mu.Unlock()
	b.changed()
	return nil
}

// AddMembers adds peers to a group; members already in it are no error.
func (b *Book) AddMembers(group string, ids ...peer.ID) error {
	b.mu.Lock()
	for _, id := range ids {
		if err := b.checkPeer(id); err != nil {
			b.mu.Unlock()
			return err
		}
	}
	err := b.editGroupLocked(group, func(g *Group) {
		g.Members = append(g.Members, ids...)
		slices.Sort(g.Members)
		g.Members = slices.Compact(g.Members)
	})
	b.mu.Unlock()
	if err == nil {
		b.changed()
	}
	return err
}

// RemoveMembers takes peers out of a group; a peer not in it is an error
// (a typo should not pass for done).
func (b *Book) RemoveMembers(group string, ids ...peer.ID) error {
	b.mu.Lock()
	err := b.editGroupLocked(group, func(g *Group) {
		g.Members = slices.DeleteFunc(g.Members, func(m peer.ID) bool { return slices.Contains(ids, m) })
	}, ids...)
	b.mu.Unlock()
	if err == nil {
		b.changed()
	}
	return err
}

// editGroupLocked applies edit to a copy of the group, stores it, and
// only then keeps it. Every id of mustHave must be a member first.
func (b *Book) editGroupLocked(group string, edit func(*Group), mustHave ...peer.ID) error {
	g, ok := b.groups[fold(group)]
	if !ok {
		return fmt.Errorf("%w: no group %q", ErrNotFound, group)
	}
	for _, id := range mustHave {
		if !slices.Contains(g.Members, id) {
			return fmt.Errorf("%w: %s is not in group %q", ErrNotFound, id, g.Name)
		}
	}
	ng := &Group{Name: g.Name, Members: slices.Clone(g.Members)}
	edit(ng)
	if err := b.persistGroupLocked(ng); err != nil {
		return err
	}
	b.groups[fold(group)] = ng
	return nil
}

// Groups returns every group, by name.
func (b *Book) Groups() []Group {
	b.mu.Lock()
	out := make([]Group, 0, len(b.groups))
	for _, g := range b.groups {
		out = append(out, Group{Name: g.Name, Members: slices.Clone(g.Members)})
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y Group) int { return cmp.Compare(fold(x.Name), fold(y.Name)) })
	return out
}

// Members returns a group's members, sorted.
func (b *Book) Members(group string) ([]peer.ID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.groups[fold(group)]
	if !ok {
		return nil, fmt.Errorf("%w: no group %q", ErrNotFound, group)
	}
	return slices.Clone(g.Members), nil
}

// GroupsOf returns the names of the groups id is in, sorted.
func (b *Book) GroupsOf(id peer.ID) []string {
	b.mu.Lock()
	var out []string
	for _, g := range b.groups {
		if slices.Contains(g.Members, id) {
			out = append(out, g.Name)
		}
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y string) int { return cmp.Compare(fold(x), fold(y)) })
	return out
}

// Block refuses id's connections from now on (through Gater), and runs
// the Blocked hook (the node closes its connections and hides its files).
// Its name and groups stay, so `blocked` can say who it is.
func (b *Book) Block(id peer.ID) error {
	b.mu.Lock()
	if err := b.checkPeer(id); err != nil {
		b.mu.Unlock()
		return err
	}
	if !b.blocked[id] {
		if err := b.ds.Put(context.Background(), blockKey(id), nil); err != nil {
			b.mu.Unlock()
			return fmt.Errorf("save block of %s: %w", id, err)
		}
		b.blocked[id] = true
	}
	hook := b.hooks.Blocked
	b.mu.Unlock()
	// Run even when already blocked: closing again is harmless, and a
	// connection that raced the first block is closed now.
	if hook != nil {
		hook(id)
	}
	b.changed()
	return nil
}

// Unblock lets id connect again.
func (b *Book) Unblock(id peer.ID) error {
	b.mu.Lock()
	if !b.blocked[id] {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s is not blocked", ErrNotFound, id)
	}
	if err := b.ds.Delete(context.Background(), blockKey(id)); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("remove block of %s: %w", id, err)
	}
	delete(b.blocked, id)
	b.mu.Unlock()
	b.changed()
	return nil
}

// Blocked reports whether id is blocked.
func (b *Book) Blocked(id peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.blocked[id]
}

// BlockedPeers returns every blocked peer, sorted.
func (b *Book) BlockedPeers() []peer.ID {
	b.mu.Lock()
	out := make([]peer.ID, 0, len(b.blocked))
	for id := range b.blocked {
		out = append(out, id)
	}
	b.mu.Unlock()
	slices.Sort(out)
	return out
}

// Forget removes what this node says about id, its name and group
// memberships, and runs the Forgotten hook (the node drops it from the
// peer table and its files from the catalogue, and disconnects it). A
// block stays: it is a decision about the future, and forgetting a peer
// must not let it back in; unblock it for that. A forgotten peer that
// connects again comes back as a stranger.
func (b *Book) Forget(id peer.ID) error {
	b.mu.Lock()
	if err := b.checkPeer(id); err != nil {
		b.mu.Unlock()
		return err
	}
	if nick, ok := b.nicks[id]; ok {
		if err := b.ds.Delete(context.Background(), nickKey(id)); err != nil {
			b.mu.Unlock()
			return fmt.Errorf("forget name %q: %w", nick, err)
		}
		delete(b.nicks, id)
		delete(b.byNick, fold(nick))
	}
	for _, g := range b.groups {
		if !slices.Contains(g.Members, id) {
			continue
		}
		err := b.editGroupLocked(g.Name, func(g *Group) {
			g.Members = slices.DeleteFunc(g.Members, func(m peer.ID) bool { return m == id })
		})
		if err != nil {
			b.mu.Unlock()
			return err
		}
	}
	hook := b.hooks.Forgotten
	b.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	b.changed()
	return nil
}
