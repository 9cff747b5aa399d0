// Package ticket encodes and decodes tickets: one line of text that lets
// someone fetch one file from its publisher without a shared network.
//
// A ticket carries the file's content ID, name, size and whole-file
// SHA-256, the publisher's peer ID and the publisher's addresses at the
// time it was made (relayed ones included, so a publisher behind NAT can
// be reached through its relay and then by hole punching). It is a
// pointer, not a secret: whoever has it learns where the file is, and the
// content is still verified against the CID.
//
// Text form: "p2ps" + version digit + lowercase RFC 4648 base32 (no
// padding) of a protobuf Payload followed by the first 4 bytes of its
// SHA-256 (a checksum against typos and truncation). The generated
// ticket.pb.go comes from ticket.proto:
//
//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative ticket.proto"
package ticket

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/names"
)

const (
	// Prefix starts every ticket; the digit after it is the version.
	Prefix = "p2ps"
	// Version is the ticket format written by this code.
	Version = '1'
	// MaxLen bounds a ticket's text, checked before decoding.
	MaxLen = 4096
	// MaxAddrs bounds the addresses a ticket carries.
	MaxAddrs = 16
	// checksumLen is the length of the SHA-256 prefix after the payload.
	checksumLen = 4
)

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Ticket is a decoded ticket.
type Ticket struct {
	CID       cid.Cid
	Name      string
	Size      uint64
	SHA256    []byte // 32 bytes; empty for a folder
	Publisher peer.ID
	Addrs     []multiaddr.Multiaddr
	// Collection says CID names a published folder (internal/collection)
	// of Files files and Size bytes in all.
	Collection bool
	Files      uint64
}

// ErrNotTicket says the text does not start like a ticket at all, so the
// caller may try it as a name or a CID.
var ErrNotTicket = errors.New("not a ticket")

// Looks reports whether s starts like a ticket (of any version).
func Looks(s string) bool {
	return len(s) > len(Prefix) && strings.EqualFold(s[:len(Prefix)], Prefix) &&
		s[len(Prefix)] >= '0' && s[len(Prefix)] <= '9'
}

// Encode returns the ticket's text form.
func (t Ticket) Encode() (string, error) {
	if err := t.check(); err != nil {
		return "", err
	}
	p := &Payload{
		Cid:        t.CID.Bytes(),
		Name:       t.Name,
		Size:       t.Size,
		Sha256:     t.SHA256,
		Publisher:  []byte(t.Publisher),
		Collection: t.Collection,
		Files:      t.Files,
	}
	for _, a := range t.Addrs[:min(len(t.Addrs), MaxAddrs)] {
		p.Addrs = append(p.Addrs, a.Bytes())
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("ticket: %w", err)
	}
	sum := sha256.Sum256(b)
	s := Prefix + string(Version) + strings.ToLower(enc.EncodeToString(append(b, sum[:checksumLen]...)))
	if len(s) > MaxLen {
		return "", fmt.Errorf("ticket: %d characters, more than %d (too many or too long addresses)", len(s), MaxLen)
	}
	return s, nil
}

// Decode parses a ticket's text form. Every error says what is wrong
// with the ticket in words a user can act on.
func Decode(s string) (Ticket, error) {
	s = strings.TrimSpace(s)
	if !Looks(s) {
		return Ticket{}, ErrNotTicket
	}
	if len(s) > MaxLen {
		return Ticket{}, fmt.Errorf("ticket: %d characters, more than %d: not a ticket this node made", len(s), MaxLen)
	}
	if v := s[len(Prefix)]; v != Version {
		return Ticket{}, fmt.Errorf("ticket: version %c; this node reads version %c (a newer p2pshare made it?)", v, Version)
	}
	raw, err := enc.DecodeString(strings.ToUpper(s[len(Prefix)+1:]))
	if err != nil {
		return Ticket{}, errors.New("ticket: damaged (a character is not base32, or it was cut short); copy the whole line again")
	}
	if len(raw) <= checksumLen {
		return Ticket{}, errors.New("ticket: truncated; copy the whole line again")
	}
	body, sum := raw[:len(raw)-checksumLen], raw[len(raw)-checksumLen:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:checksumLen]) {
		return Ticket{}, errors.New("ticket: checksum mismatch (damaged or truncated); copy the whole line again")
	}
	var p Payload
	if err := proto.Unmarshal(body, &p); err != nil {
		return Ticket{}, fmt.Errorf("ticket: bad payload: %w", err)
	}
	t := Ticket{Name: p.Name, Size: p.Size, SHA256: p.Sha256, Collection: p.Collection, Files: p.Files}
	if t.CID, err = cid.Cast(p.Cid); err != nil {
		return Ticket{}, fmt.Errorf("ticket: bad content ID: %w", err)
	}
	if t.Publisher, err = peer.IDFromBytes(p.Publisher); err != nil {
		return Ticket{}, fmt.Errorf("ticket: bad publisher peer ID: %w", err)
	}
	if len(p.Addrs) > MaxAddrs {
		return Ticket{}, fmt.Errorf("ticket: %d addresses, more than %d", len(p.Addrs), MaxAddrs)
	}
	for _, b := range p.Addrs {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			return Ticket{}, fmt.Errorf("ticket: bad address: %w", err)
		}
		t.Addrs = append(t.Addrs, a)
	}
	if err := t.check(); err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// check validates the fields both ways.
func (t Ticket) check() error {
	if !t.CID.Defined() {
		return errors.New("ticket: no content ID")
	}
	if err := names.Check(t.Name); err != nil {
		return fmt.Errorf("ticket: file name: %w", err)
	}
	switch {
	case t.Collection && len(t.SHA256) != 0:
		return errors.New("ticket: a folder's ticket carries a SHA-256")
	case !t.Collection && t.Files != 0:
		return errors.New("ticket: a file's ticket carries a file count")
	case !t.Collection && len(t.SHA256) != sha256.Size:
		return fmt.Errorf("ticket: whole-file SHA-256 has %d bytes, want %d", len(t.SHA256), sha256.Size)
	}
	if err := t.Publisher.Validate(); err != nil {
		return fmt.Errorf("ticket: publisher: %w", err)
	}
	return nil
}

// AddrInfo is the publisher with the ticket's addresses.
func (t Ticket) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: t.Publisher, Addrs: t.Addrs}
}
