// Package share is what this node publishes and what it sees others
// publish. Two types, one per side:
//
//   - Library (library.go) is what this node publishes: the share folder,
//     watched for edits of published files (watch.go), the published
//     index (index.go, kept in the datastore), published folders
//     (folder.go: one collection document each, its files deduplicated
//     records of the index), Open and Collection for internal/transfer's
//     server, the catalog server (catalog.go), the announcements it sends
//     (announce.go), and the DHT provider records of its CIDs, provided
//     and re-provided by a provideQueue (provide.go).
//   - Directory (directory.go) is what other peers publish, as far as this
//     node knows: the remote view (remote.go), bounded by a budget over all
//     senders, filled by catalog pulls (pull.go, catalog.go) and received
//     announcements (announce.go, ordered and guarded against replays by
//     per-publisher marks, marks.go); Available, Search, Resolve and
//     Providers; and who has a CID (FindProviders, finder.go: announced
//     providers first, then the DHT), which makes it internal/transfer's
//     Finder.
//
// New starts both as a Service, which shares the announce topic between
// them. The network is reached through small interfaces (network.go:
// Network, Routing, Broadcast), which internal/node builds from
// internal/p2p's node (libp2p.go), so both sides can be tested without a
// libp2p host. The package does not move file bytes: internal/transfer
// does, through Library.Open and Directory.FindProviders.
//
// Trust: a catalog entry is attributed to the peer that answered the
// stream; an announcement to the peer that signed it (the verified
// origin, never the peer that relayed it). An unpublish therefore only
// ever removes entries of the peer that sent it. Names, sizes and hashes
// given by other peers are claims shown to the user; the CID is what a
// fetch checks. Peers differ in standing: those this node has met
// (connected, or in the peer table) against signing keys it only heard of
// through another peer, which anyone can make in any number. Strangers
// never displace what known peers announced (remote.go), nor outvote
// them on a file's name (merged, directory.go).
package share

import (
	"errors"

	"github.com/p2pshare/p2pshare/internal/names"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotPublished: this node does not publish that content ID (any more).
	ErrNotPublished = errors.New("not published")
	// ErrChanged: the file changed on disk since it was hashed, so it is no
	// longer served under its old content ID; publish it again. It has a
	// Changed method, which internal/transfer's server uses to answer
	// CHANGED rather than NOT_SERVED without importing this package.
	ErrChanged error = changedError{}
	// ErrNotFound: no such file, published entry or remote entry.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: a name matches several content IDs; use a CID.
	ErrAmbiguous = errors.New("ambiguous name")
	// ErrBadName: not a plain file name inside the share folder.
	// It is names.ErrBad, the error of the rule shared with transfer.
	ErrBadName = names.ErrBad
)

type changedError struct{}

func (changedError) Error() string { return "file changed on disk since it was published" }
func (changedError) Changed() bool { return true }
