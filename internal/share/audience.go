package share

// Audiences: who may see and fetch a published entry. Public (the zero
// Audience) is everyone, as before. A restricted entry is
//
//   - listed only in the catalog answers given to peers of its audience
//     (the catalog stream authenticates the asking peer);
//   - never sent on the announce topic: its announcements go to each
//     allowed peer over a direct stream (proto.DirectAnnounceID), and the
//     receiver attributes them to that stream's remote peer;
//   - served (Open) only to peers of its audience; to anyone else Open
//     answers exactly as for a CID this node does not publish;
//   - not provided on the DHT (a provider record tells anyone who has
//     what).
//
// Group membership is asked of Config.Audience every time an audience is
// checked, so a peer added to a group sees, at its next catalog pull or
// after AudiencesChanged, what was published to that group. The peers
// that were sent a restricted entry are remembered (Library.told), so a
// change of audience or of a group reaches the peers it concerns: revoked
// ones get a directed UNPUBLISH, newly allowed ones a directed PUBLISH,
// and Config.OnAudienceChange lets the fetch server close what revoked
// peers are still downloading.

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Audience is who may see and fetch one published entry: peers by ID, and
// groups by name whose members are looked up (AudienceResolver) whenever
// the audience is checked. The zero Audience is public.
type Audience struct {
	Peers  []peer.ID `json:"peers,omitempty"`
	Groups []string  `json:"groups,omitempty"`
}

// Public reports whether a is everyone.
func (a Audience) Public() bool { return len(a.Peers) == 0 && len(a.Groups) == 0 }

// String is "public", or the peers and groups (as "group NAME"), comma
// separated.
func (a Audience) String() string {
	if a.Public() {
		return "public"
	}
	var parts []string
	for _, p := range a.Peers {
		parts = append(parts, p.String())
	}
	for _, g := range a.Groups {
		parts = append(parts, "group "+g)
	}
	return strings.Join(parts, ", ")
}

// normalized is a sorted, without duplicates, in fresh slices.
func (a Audience) normalized() Audience {
	var out Audience
	if len(a.Peers) > 0 {
		out.Peers = slices.Clone(a.Peers)
		slices.Sort(out.Peers)
		out.Peers = slices.Compact(out.Peers)
	}
	if len(a.Groups) > 0 {
		out.Groups = slices.Clone(a.Groups)
		slices.Sort(out.Groups)
		out.Groups = slices.Compact(out.Groups)
	}
	return out
}

func (a Audience) equal(b Audience) bool {
	return slices.Equal(a.Peers, b.Peers) && slices.Equal(a.Groups, b.Groups)
}

// union is a and b together, normalized.
func (a Audience) union(b Audience) Audience {
	return Audience{Peers: append(slices.Clone(a.Peers), b.Peers...), Groups: append(slices.Clone(a.Groups), b.Groups...)}.normalized()
}

// Who is one word of an audience as a user gives it: a peer or a group
// (exactly one of the two is set).
type Who struct {
	Peer  peer.ID
	Group string
}

// AudienceOf builds an Audience from resolved words.
func AudienceOf(ws ...Who) Audience {
	var a Audience
	for _, w := range ws {
		switch {
		case w.Peer != "":
			a.Peers = append(a.Peers, w.Peer)
		case w.Group != "":
			a.Groups = append(a.Groups, w.Group)
		}
	}
	return a.normalized()
}

// AudienceResolver tells the members of a group. It is asked whenever an
// audience is checked (a catalog answer, a fetch request, an
// announcement), so it should be quick; an error counts as no members.
type AudienceResolver interface {
	Members(group string) ([]peer.ID, error)
}

// Groups is a simple AudienceResolver: groups held in memory, safe for
// concurrent use. Nodes without a table of people use an empty one.
type Groups struct {
	mu sync.Mutex
	m  map[string][]peer.ID
}

// Set makes members the members of group (none: the group is removed).
func (g *Groups) Set(group string, members ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[string][]peer.ID)
	}
	if len(members) == 0 {
		delete(g.m, group)
		return
	}
	g.m[group] = slices.Clone(members)
}

// Members returns the members of group; an unknown group is an error.
func (g *Groups) Members(group string) ([]peer.ID, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms, ok := g.m[group]
	if !ok {
		return nil, fmt.Errorf("no group %q", group)
	}
	return slices.Clone(ms), nil
}

// PublishOptions are the choices of a publish beyond the names.
type PublishOptions struct {
	// Audience, if set, is who may see and fetch the entries (a zero
	// Audience: everyone); an entry already published gets it too. Nil
	// keeps what was: a published entry keeps its audience, and a new
	// version of a published name inherits the audience of the version it
	// replaces (so an edit never widens who sees a file); a new name is
	// public.
	Audience *Audience
}

// allows reports whether p may see and fetch an entry of audience a. This
// node itself always may. Callers do not hold l.mu: group membership is
// asked of the resolver.
func (l *Library) allows(a Audience, p peer.ID) bool {
	if a.Public() || p == l.net.ID() {
		return true
	}
	if slices.Contains(a.Peers, p) {
		return true
	}
	for _, g := range a.Groups {
		if slices.Contains(l.members(g), p) {
			return true
		}
	}
	return false
}

// members asks the resolver for the members of group; nil on an error
// (logged) or without a resolver.
func (l *Library) members(group string) []peer.ID {
	if l.audience == nil {
		return nil
	}
	ms, err := l.audience.Members(group)
	if err != nil {
		l.log.Debug("audience: group has no members", "group", group, "err", err)
		return nil
	}
	return ms
}

// allowedSet is every peer, other than this node, that audience a admits
// now (nil for a public audience: everyone).
func (l *Library) allowedSet(a Audience) map[peer.ID]bool {
	if a.Public() {
		return nil
	}
	out := make(map[peer.ID]bool)
	for _, p := range a.Peers {
		out[p] = true
	}
	for _, g := range a.Groups {
		for _, p := range l.members(g) {
			out[p] = true
		}
	}
	delete(out, l.net.ID())
	return out
}
