// Package target turns what a user gives `get` (a ticket, a name or CID
// that others publish, a full CID, or the unique prefix of a known CID)
// into the CID to fetch and what is known of it. The prompt and the local
// API both use it, so a get means the same from either.
package target

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/shortid"
	"github.com/p2pshare/p2pshare/internal/ticket"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// Directory is what others publish, as share's Directory answers it.
type Directory interface {
	Resolve(nameOrCID string) (share.Remote, error)
	ResolveFetch(nameOrCID string) (share.Remote, error)
}

// TicketError is a ticket that could not be read.
type TicketError struct{ Err error }

func (e *TicketError) Error() string { return e.Err.Error() }
func (e *TicketError) Unwrap() error { return e.Err }

// Get resolves arg and fills in opt: a ticket's publisher is tried first
// and the file must be the one the ticket describes; a catalogue entry's
// size and SHA-256 are checked against the manifest; a full CID no
// catalogue lists is fetched from whoever the DHT knows. known are the
// CIDs a prefix may name (what the node lists, publishes and transfers).
func Get(dir Directory, arg string, known []string, opt *transfer.GetOptions) (cid.Cid, error) {
	if ticket.Looks(arg) {
		t, err := ticket.Decode(arg)
		if err != nil {
			return cid.Undef, &TicketError{err}
		}
		opt.Name = t.Name
		opt.Hints = []peer.AddrInfo{t.AddrInfo()}
		opt.Expect = &transfer.Expect{Size: int64(t.Size), Source: "ticket", Collection: t.Collection, Files: int(t.Files)}
		copy(opt.Expect.SHA256[:], t.SHA256)
		return t.CID, nil
	}
	fromCatalogue := func(rem share.Remote) cid.Cid {
		opt.Name = rem.Name
		if rem.Name != "" {
			opt.Expect = &transfer.Expect{Size: rem.Size, SHA256: rem.SHA256, Source: "catalogue"}
			if rem.Collection {
				opt.Expect = &transfer.Expect{Collection: true, Size: rem.Size, Files: rem.Files, Source: "catalogue"}
			}
		}
		return rem.CID
	}
	rem, err := dir.ResolveFetch(arg)
	if err == nil {
		return fromCatalogue(rem), nil
	}
	if errors.Is(err, share.ErrAmbiguous) {
		return cid.Undef, err
	}
	full, perr := shortid.Match("CID", arg, known)
	if perr != nil {
		if shortid.IsAmbiguous(perr) {
			return cid.Undef, perr
		}
		return cid.Undef, err // neither a name nor a CID: say the name is unknown
	}
	if rem, err := dir.Resolve(full); err == nil {
		return fromCatalogue(rem), nil
	}
	c, err := cid.Decode(full)
	if err != nil {
		return cid.Undef, fmt.Errorf("bad CID %q: %w", full, err)
	}
	return c, nil
}
