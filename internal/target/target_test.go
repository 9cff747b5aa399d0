package target

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/shortid"
	"github.com/p2pshare/p2pshare/internal/ticket"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

func mkCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// fakeDir knows remote entries by name and CID, as share's Directory does
// (ResolveFetch also takes any full CID).
type fakeDir struct{ entries []share.Remote }

func (d fakeDir) Resolve(s string) (share.Remote, error) {
	var hits []share.Remote
	for _, r := range d.entries {
		if r.Name == s || r.CID.String() == s {
			hits = append(hits, r)
		}
	}
	switch len(hits) {
	case 0:
		return share.Remote{}, fmt.Errorf("%q: %w", s, share.ErrNotFound)
	case 1:
		return hits[0], nil
	}
	return share.Remote{}, fmt.Errorf("%q: %w", s, share.ErrAmbiguous)
}

func (d fakeDir) ResolveFetch(s string) (share.Remote, error) {
	r, err := d.Resolve(s)
	if err == nil {
		return r, nil
	}
	if c, perr := cid.Decode(s); perr == nil {
		return share.Remote{Entry: share.Entry{CID: c}}, nil
	}
	return share.Remote{}, err
}

func TestGet(t *testing.T) {
	a, b, c := mkCID(t, "a"), mkCID(t, "b"), mkCID(t, "c")
	sum := sha256.Sum256([]byte("holiday"))
	dir := fakeDir{entries: []share.Remote{
		{Entry: share.Entry{Name: "holiday.jpg", Size: 7, CID: a, SHA256: sum}},
		{Entry: share.Entry{Name: "twin", CID: b}},
		{Entry: share.Entry{Name: "twin", CID: c}},
	}}
	known := []string{a.String(), b.String(), c.String()}

	// A name others publish: its size and hash are expected of the manifest.
	var opt transfer.GetOptions
	got, err := Get(dir, "holiday.jpg", known, &opt)
	if err != nil || !got.Equals(a) || opt.Name != "holiday.jpg" || opt.Expect == nil ||
		opt.Expect.Size != 7 || opt.Expect.SHA256 != sum || opt.Expect.Source != "catalogue" {
		t.Fatalf("name: %v %v %+v", got, err, opt)
	}

	// A unique prefix of a known CID names its entry.
	opt = transfer.GetOptions{}
	if got, err := Get(dir, a.String()[:shortid.MinCID+6], known, &opt); err != nil || !got.Equals(a) || opt.Name != "holiday.jpg" {
		t.Fatalf("prefix: %v %v %+v", got, err, opt)
	}

	// A full CID no catalogue lists: fetched from whoever the DHT knows,
	// with nothing expected.
	d := mkCID(t, "d")
	opt = transfer.GetOptions{}
	if got, err := Get(dir, d.String(), known, &opt); err != nil || !got.Equals(d) || opt.Expect != nil {
		t.Fatalf("unlisted CID: %v %v %+v", got, err, opt)
	}

	// Two files under one name: ambiguous, not a guess.
	if _, err := Get(dir, "twin", known, &transfer.GetOptions{}); !errors.Is(err, share.ErrAmbiguous) {
		t.Fatalf("ambiguous name: %v", err)
	}
	// A prefix that two CIDs share lists them.
	common := 0
	for common < len(b.String()) && b.String()[common] == c.String()[common] {
		common++
	}
	if _, err := Get(dir, b.String()[:common], []string{b.String(), c.String()}, &transfer.GetOptions{}); !shortid.IsAmbiguous(err) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	// Neither a name nor a CID: the name is unknown.
	if _, err := Get(dir, "nothing.txt", known, &transfer.GetOptions{}); !errors.Is(err, share.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestGetTicket(t *testing.T) {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	sum := sha256.Sum256([]byte("x"))
	tk := ticket.Ticket{CID: mkCID(t, "t"), Name: "film.mkv", Size: 99, SHA256: sum[:], Publisher: id,
		Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/198.51.100.9/tcp/4001")}}
	s, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var opt transfer.GetOptions
	got, err := Get(fakeDir{}, s, nil, &opt)
	if err != nil || !got.Equals(tk.CID) || opt.Name != "film.mkv" || len(opt.Hints) != 1 || opt.Hints[0].ID != id ||
		opt.Expect == nil || opt.Expect.Size != 99 || opt.Expect.SHA256 != sum || opt.Expect.Source != "ticket" {
		t.Fatalf("ticket: %v %v %+v", got, err, opt)
	}
	// A damaged ticket is a TicketError, not an unknown name.
	_, err = Get(fakeDir{}, s[:len(s)-3], nil, &transfer.GetOptions{})
	var te *TicketError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "copy the whole line") {
		t.Fatalf("damaged ticket: %v", err)
	}
}

// A folder in the catalogue, or in a ticket, is expected as a folder of
// its size and file count, so a CID that names a file (or another folder)
// is refused before anything is written.
func TestGetFolder(t *testing.T) {
	c := mkCID(t, "folder")
	dir := fakeDir{entries: []share.Remote{{Entry: share.Entry{Name: "photos", CID: c, Size: 5000, Collection: true, Files: 12}}}}
	var opt transfer.GetOptions
	got, err := Get(dir, "photos", nil, &opt)
	if err != nil || !got.Equals(c) {
		t.Fatalf("Get(photos) = %v, %v", got, err)
	}
	if e := opt.Expect; e == nil || !e.Collection || e.Size != 5000 || e.Files != 12 || e.Source != "catalogue" {
		t.Fatalf("Expect %+v, want a folder of 12 files and 5000 bytes from the catalogue", opt.Expect)
	}

	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	s, err := ticket.Ticket{CID: c, Name: "photos", Size: 5000, Collection: true, Files: 12, Publisher: id}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	opt = transfer.GetOptions{}
	if _, err := Get(fakeDir{}, s, nil, &opt); err != nil {
		t.Fatal(err)
	}
	if e := opt.Expect; e == nil || !e.Collection || e.Size != 5000 || e.Files != 12 || e.Source != "ticket" {
		t.Fatalf("Expect %+v, want a folder of 12 files and 5000 bytes from the ticket", opt.Expect)
	}
}
