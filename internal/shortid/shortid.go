// Package shortid shortens IDs (CIDs, peer IDs) the way git shortens
// hashes, and reads short IDs back: every ID of a listing is cut to one
// length, the shortest (from a minimum) at which the IDs a node knows stay
// distinct, so a short ID typed back names exactly one. The prompt, the
// local API and the command-line client all print and accept IDs this way.
package shortid

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Minimum lengths. A CID is 59 characters and a peer ID 52: in full, a
// row of `available` does not fit in 80 columns.
const (
	// MinCID: every CID starts "bafkrei" (CIDv1, raw, sha2-256), so 10
	// characters keep 3 that differ.
	MinCID = 10
	// MinPeer: Ed25519 peer IDs all start "12D3KooW".
	MinPeer = 12
)

// UniqueLen is the length, at least min, at which the prefixes of ids are
// as distinct as the ids themselves.
func UniqueLen(ids []string, min int) int {
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

// Shortener returns a function that cuts IDs of the set known to their
// unique length (see UniqueLen), or prints them in full when wide.
func Shortener(known []string, min int, wide bool) func(string) string {
	if wide {
		return func(s string) string { return s }
	}
	n := UniqueLen(known, min)
	return func(s string) string {
		if len(s) <= n {
			return s
		}
		return s[:n]
	}
}

// ErrEmpty is an empty prefix.
var ErrEmpty = errors.New("empty ID")

// Match finds the one string of known that starts with prefix (a whole ID
// is its own prefix). what names the kind for errors ("CID", "peer"). A
// prefix more than one ID starts with is an *AmbiguousError.
func Match(what, prefix string, known []string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("%w: no %s given", ErrEmpty, what)
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
	return "", &AmbiguousError{What: what, Prefix: prefix, Hits: hits}
}

// AmbiguousError is a prefix that more than one ID starts with.
type AmbiguousError struct {
	What, Prefix string
	Hits         []string
}

func (e *AmbiguousError) Error() string {
	const show = 5
	list := strings.Join(e.Hits[:min(len(e.Hits), show)], "\n  ")
	if len(e.Hits) > show {
		list += fmt.Sprintf("\n  ... and %d more", len(e.Hits)-show)
	}
	return fmt.Sprintf("%q is ambiguous: %d %ss start with it (type more characters):\n  %s", e.Prefix, len(e.Hits), e.What, list)
}

// IsAmbiguous reports whether err is or wraps an *AmbiguousError.
func IsAmbiguous(err error) bool {
	var a *AmbiguousError
	return errors.As(err, &a)
}
