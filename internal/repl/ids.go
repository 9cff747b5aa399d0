package repl

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Tables show CIDs and peer IDs shortened, like git's short hashes: every
// one cut to the same length, the shortest (from a minimum) at which the
// IDs this node knows stay distinct, so a short ID typed back resolves to
// exactly one. A CID is 59 characters and a peer ID 52: in full, a row of
// `available` does not fit in 80 columns.
const (
	// minShortCID: every CID starts "bafkrei" (CIDv1, raw, sha2-256), so
	// 10 characters keep 3 that differ.
	minShortCID = 10
	// minShortPeer: Ed25519 peer IDs all start "12D3KooW".
	minShortPeer = 12
)

// uniqueLen is the length, at least min, at which the prefixes of ids are
// as distinct as the ids themselves.
func uniqueLen(ids []string, min int) int {
	s := slices.Clone(ids)
	slices.Sort(s)
	s = slices.Compact(s)
	n := min
	for i := 1; i < len(s); i++ {
		a, b := s[i-1], s[i]
		cp := 0
		for cp < len(a) && cp < len(b) && a[cp] == b[cp] {
			cp++
		}
		n = max(n, cp+1)
	}
	return n
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// shortener returns a function that prints IDs of the set known cut to
// their unique length, or in full when wide.
func shortener(known []string, min int, wide bool) func(string) string {
	if wide {
		return func(s string) string { return s }
	}
	n := uniqueLen(known, min)
	return func(s string) string { return shorten(s, n) }
}

// matchPrefix finds the one string of known that starts with prefix. what
// names the kind of thing for errors ("CID", "peer").
func matchPrefix(what, prefix string, known []string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("empty %s", what)
	}
	var hits []string
	for _, s := range known {
		if strings.HasPrefix(s, prefix) && !slices.Contains(hits, s) {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return "", fmt.Errorf("no known %s starts with %q", what, prefix)
	}
	slices.Sort(hits)
	return "", &ambiguousError{what: what, prefix: prefix, hits: hits}
}

// ambiguousError is a prefix that more than one ID starts with.
type ambiguousError struct {
	what, prefix string
	hits         []string
}

func (e *ambiguousError) Error() string {
	const show = 5
	list := strings.Join(e.hits[:min(len(e.hits), show)], "\n  ")
	if len(e.hits) > show {
		list += fmt.Sprintf("\n  ... and %d more", len(e.hits)-show)
	}
	return fmt.Sprintf("%q is ambiguous: %d %ss start with it (type more characters):\n  %s", e.prefix, len(e.hits), e.what, list)
}

func isAmbiguous(err error) bool {
	var a *ambiguousError
	return errors.As(err, &a)
}

// resolveCID reads s as the unique prefix of one of known (a whole CID is
// its own prefix), or else as a full CID.
func resolveCID(s string, known []cid.Cid) (cid.Cid, error) {
	full, err := matchPrefix("CID", s, cidStrings(known))
	if err == nil {
		return cid.Decode(full)
	}
	if c, derr := cid.Decode(s); derr == nil && !isAmbiguous(err) {
		return c, nil
	}
	return cid.Undef, err
}

// minFullPeerID is the length of the shortest peer ID in text (an RSA
// key's "Qm..." hash): peer.Decode accepts some shorter strings, such as
// a 12-character prefix, as IDs of their own.
const minFullPeerID = 46

// resolvePeer reads s as the unique prefix of one of known, or else as a
// full peer ID.
func resolvePeer(s string, known []peer.ID) (peer.ID, error) {
	full, err := matchPrefix("peer", s, peerStrings(known))
	if err == nil {
		return peer.Decode(full)
	}
	if len(s) >= minFullPeerID && !isAmbiguous(err) {
		if id, derr := peer.Decode(s); derr == nil {
			return id, nil
		}
	}
	return "", err
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
// providers of what others publish, and itself.
func (r *REPL) knownPeers() []peer.ID {
	out := []peer.ID{r.d.Node.Host().ID()}
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

func (c *call) peerFmt(wide bool) func(peer.ID) string {
	f := shortener(peerStrings(c.r.knownPeers()), minShortPeer, wide)
	return func(id peer.ID) string { return f(id.String()) }
}
