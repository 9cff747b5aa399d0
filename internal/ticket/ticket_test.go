package ticket

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
)

func sample(t testing.TB) Ticket {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	mh, err := multihash.Sum([]byte("manifest"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("file"))
	return Ticket{
		CID:       cid.NewCidV1(cid.Raw, mh),
		Name:      "holiday photo.jpg",
		Size:      123456789,
		SHA256:    sum[:],
		Publisher: id,
		Addrs: []multiaddr.Multiaddr{
			multiaddr.StringCast("/ip4/203.0.113.7/udp/4001/quic-v1"),
			multiaddr.StringCast("/ip4/198.51.100.1/tcp/4001/p2p/" + id.String() + "/p2p-circuit"),
		},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample(t)
	s, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "p2ps1") || strings.ToLower(s) != s {
		t.Fatalf("ticket %q: want lowercase, prefix p2ps1", s)
	}
	out, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if !out.CID.Equals(in.CID) || out.Name != in.Name || out.Size != in.Size ||
		string(out.SHA256) != string(in.SHA256) || out.Publisher != in.Publisher || len(out.Addrs) != len(in.Addrs) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	for i := range in.Addrs {
		if !out.Addrs[i].Equal(in.Addrs[i]) {
			t.Errorf("addr %d: got %s, want %s", i, out.Addrs[i], in.Addrs[i])
		}
	}
	// Case and surrounding space do not matter (a ticket read aloud or
	// pasted from a mail).
	if _, err := Decode("  " + strings.ToUpper(s) + "\n"); err != nil {
		t.Errorf("upper case: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := sample(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	flip := []byte(good)
	i := len(flip) / 2
	if flip[i] == 'a' {
		flip[i] = 'b'
	} else {
		flip[i] = 'a'
	}
	cases := []struct {
		name, in, want string
	}{
		{"truncated", good[:len(good)-7], "copy the whole line again"},
		{"one character changed", string(flip), "checksum mismatch"},
		{"not base32", good[:20] + "!" + good[21:], "damaged"},
		{"only the prefix and version", "p2ps1", "truncated"},
		{"future version", "p2ps2" + good[5:], "version 2"},
		{"too long", "p2ps1" + strings.Repeat("a", MaxLen), "more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode: err %v, want one containing %q", err, tc.want)
			}
		})
	}
	for _, s := range []string{"holiday.jpg", "bafkreie66", "", "p2ps"} {
		if _, err := Decode(s); !errors.Is(err, ErrNotTicket) {
			t.Errorf("Decode(%q): %v, want ErrNotTicket", s, err)
		}
	}
}

func TestEncodeRefusesBadFields(t *testing.T) {
	for name, mod := range map[string]func(*Ticket){
		"name with a slash": func(t *Ticket) { t.Name = "../etc/passwd" },
		"no cid":            func(t *Ticket) { t.CID = cid.Undef },
		"short sha256":      func(t *Ticket) { t.SHA256 = t.SHA256[:5] },
		"no publisher":      func(t *Ticket) { t.Publisher = "" },
	} {
		tk := sample(t)
		mod(&tk)
		if _, err := tk.Encode(); err == nil {
			t.Errorf("%s: Encode accepted it", name)
		}
	}
	tk := sample(t)
	for range MaxAddrs + 4 {
		tk.Addrs = append(tk.Addrs, multiaddr.StringCast("/ip4/192.0.2.1/tcp/1"))
	}
	s, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Addrs) != MaxAddrs {
		t.Errorf("addresses: %d, want at most %d", len(back.Addrs), MaxAddrs)
	}
}

// FuzzDecode: no input crashes Decode, and whatever it accepts encodes
// back to an equivalent ticket.
func FuzzDecode(f *testing.F) {
	good, err := sample(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add("p2ps1")
	f.Add("p2ps1aaaa")
	f.Add("P2PS1" + strings.ToUpper(good[5:]))
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := Decode(s)
		if err != nil {
			return
		}
		again, err := tk.Encode()
		if err != nil {
			t.Fatalf("decoded ticket does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil || !back.CID.Equals(tk.CID) || back.Publisher != tk.Publisher || back.Name != tk.Name {
			t.Fatalf("re-encoded ticket differs: %v", err)
		}
	})
}

// A folder's ticket says so, with its file count and no SHA-256; the
// fields cannot be mixed.
func TestCollectionTicket(t *testing.T) {
	tk := sample(t)
	tk.SHA256, tk.Collection, tk.Files = nil, true, 1234
	s, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Collection || got.Files != 1234 || len(got.SHA256) != 0 || got.Size != tk.Size {
		t.Fatalf("decoded %+v", got)
	}
	bad := tk
	bad.SHA256 = make([]byte, 32)
	if _, err := bad.Encode(); err == nil {
		t.Error("a folder's ticket with a SHA-256 was encoded")
	}
	file := sample(t)
	file.Files = 3
	if _, err := file.Encode(); err == nil {
		t.Error("a file's ticket with a file count was encoded")
	}
}
