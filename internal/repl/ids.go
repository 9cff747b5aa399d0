package repl

import (
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/shortid"
	"github.com/p2pshare/p2pshare/internal/ticket"
)

// Tables show CIDs and peer IDs shortened (internal/shortid), and a
// unique prefix is accepted back wherever an ID is taken.
const (
	minShortCID  = shortid.MinCID
	minShortPeer = shortid.MinPeer
)

var (
	shortener   = shortid.Shortener
	matchPrefix = shortid.Match
	isAmbiguous = shortid.IsAmbiguous
)

// resolveCID reads s as a ticket, the unique prefix of one of known (a
// whole CID is its own prefix), or else as a full CID.
func resolveCID(s string, known []cid.Cid) (cid.Cid, error) {
	if ticket.Looks(s) { // a ticket names its CID wherever a CID is taken
		t, err := ticket.Decode(s)
		return t.CID, err
	}
	full, err := matchPrefix("CID", s, cidStrings(known))
	if err == nil {
		return cid.Decode(full)
	}
	if c, derr := cid.Decode(s); derr == nil && !isAmbiguous(err) {
		return c, nil
	}
	return cid.Undef, err
}

// resolvePeer reads s as the unique prefix of one of known, or else as a
// full peer ID (no names: REPL.resolvePeer reads those too).
func resolvePeer(s string, known []peer.ID) (peer.ID, error) {
	return people.ResolveID(s, known)
}

// resolvePeer reads a word typed for a peer: a name given on this node,
// a unique prefix of a peer it knows, or a full peer ID.
func (r *REPL) resolvePeer(s string) (peer.ID, error) {
	if r.d.People == nil {
		return resolvePeer(s, r.knownPeers())
	}
	return r.d.People.Resolve(s, r.knownPeers())
}

func cidStrings(cs []cid.Cid) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func peerStrings(ids []peer.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// knownCIDs is every CID this node can name: what others publish, what it
// publishes, and its downloads.
func (r *REPL) knownCIDs() []cid.Cid {
	var out []cid.Cid
	for _, e := range r.d.Share.Available() {
		out = append(out, e.CID)
	}
	for _, e := range r.d.Share.Published() {
		out = append(out, e.CID)
	}
	for _, t := range r.d.Transfer.Transfers() {
		out = append(out, t.CID)
	}
	return out
}

// knownPeers is every peer this node can name: its peer table, the
// providers of what others publish, itself, and the peers it has named,
// grouped or blocked.
func (r *REPL) knownPeers() []peer.ID {
	out := []peer.ID{r.d.Node.Host().ID()}
	if r.d.People != nil {
		out = append(out, r.d.People.IDs()...)
	}
	for _, p := range r.d.Node.Peers().List() {
		out = append(out, p.ID)
	}
	for _, e := range r.d.Share.Available() {
		for _, p := range e.Providers {
			out = append(out, p.ID)
		}
	}
	return out
}

// cidFmt and peerFmt print IDs in tables, short unless wide.
func (c *call) cidFmt(wide bool) func(cid.Cid) string {
	f := shortener(cidStrings(c.r.knownCIDs()), minShortCID, wide)
	return func(id cid.Cid) string { return f(id.String()) }
}

// peerFmt prints a peer as its name on this node, if it has one, then its
// ID: "alice (12D3KooWabcd)".
func (c *call) peerFmt(wide bool) func(peer.ID) string {
	f := shortener(peerStrings(c.r.knownPeers()), minShortPeer, wide)
	var names map[peer.ID]string
	if c.r.d.People != nil {
		names = c.r.d.People.Names()
	}
	return func(id peer.ID) string {
		if n, ok := names[id]; ok {
			// Names are checked when given; escaped anyway, as every
			// stored string is before it reaches the terminal.
			return termSafe(n) + " (" + f(id.String()) + ")"
		}
		return f(id.String())
	}
}

// saysOf is what a peer says its name is, as shown: "(says: bob)", or ""
// when it says none or says the name this node gave it. It is the
// peer's claim, never used to find it.
func (c *call) saysOf(id peer.ID) string {
	said := people.SaidNameIn(c.r.d.Node.Host().Peerstore(), id)
	if said == "" {
		return ""
	}
	if c.r.d.People != nil {
		if n, ok := c.r.d.People.Name(id); ok && n == said {
			return ""
		}
	}
	return "(says: " + termSafe(said) + ")"
}
