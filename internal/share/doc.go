// Package share owns what this node offers and what it sees others offer:
// the share folder, the published index (kept in the datastore, provided on
// the DHT and re-provided before provider records expire), the catalog
// protocol (/p2pshare/catalog/1), publish/unpublish announcements on a
// GossipSub topic, and the merged view of what other peers publish.
//
// It does not move file bytes: internal/transfer serves chunks through
// Service.Open and fetches through Service.Resolve and Service.Providers.
//
// Trust: a catalog entry is attributed to the peer that answered the
// stream; an announcement to the peer that signed it (pubsub's verified
// origin, never the peer that relayed it). An unpublish therefore only ever
// removes entries of the peer that sent it. Names, sizes and hashes given by
// other peers are claims shown to the user; the CID is what a fetch checks.
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
