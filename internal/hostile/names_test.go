package hostile

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/share"
)

// Class 9a (lying names) and 9c (names Windows reserves): providers that
// name content falsely or dangerously.

// catalogLiar is a host that answers catalog requests with entries.
func catalogLiar(t *testing.T, entries ...*proto.CatalogEntry) host.Host {
	t.Helper()
	h := newAttacker(t)
	h.SetStreamHandler(proto.CatalogID, func(s network.Stream) {
		var req proto.CatalogRequest
		if err := proto.NewReader(s, proto.MaxRequestSize).ReadMsg(&req); err != nil {
			s.Reset()
			return
		}
		if err := proto.WriteMsg(s, &proto.CatalogResponse{Entries: entries}); err != nil {
			s.Reset()
			return
		}
		s.Close()
	})
	return h
}

func findRemote(av []share.Remote, c cid.Cid) (share.Remote, bool) {
	for _, r := range av {
		if r.CID.Equals(c) {
			return r, true
		}
	}
	return share.Remote{}, false
}

// Class 9a: a connected provider that lists an honest publisher's file
// under a name sorting first, and keys heard of through a relay that name
// it otherwise or give other content the honest name, neither rename the
// file nor make its name ambiguous.
func TestLyingProvidersDoNotNameOthersContent(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newNode(t, "honest", nil)
	y, _ := publishRandom(t, honest, "report.pdf", 8192)
	connect(t, honest.P2P.Host(), victim)
	av := waitAvailable(t, victim, "the honest file", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, y) })
	r, _ := findRemote(av, y)

	// A connected liar: the same content under a name sorting first.
	lie := fakeEntry("aaa-report.exe")
	lie.Cid, lie.Size, lie.Sha256, lie.ChunkSize = y.Bytes(), uint64(r.Size), r.SHA256[:], uint32(r.ChunkSize)
	liar := catalogLiar(t, lie)
	connect(t, liar, victim)
	// Strangers (keys only relayed): other content under the honest name,
	// and the honest content under yet another name, twice.
	g := newGossiper(t)
	g.join(t, victim)
	other := fakeEntry("report.pdf")
	otherCID, _ := cid.Cast(other.Cid)
	g.publishAs(t, newKey(t), &proto.Announcement{TimeUnixNano: time.Now().UnixNano(), Entries: []*proto.CatalogEntry{other}})
	for range 2 {
		alias := fakeEntry("000-report.exe")
		alias.Cid, alias.Size, alias.Sha256, alias.ChunkSize = lie.Cid, lie.Size, lie.Sha256, lie.ChunkSize
		g.publishAs(t, newKey(t), &proto.Announcement{TimeUnixNano: time.Now().UnixNano(), Entries: []*proto.CatalogEntry{alias}})
	}
	av = waitAvailable(t, victim, "every claim applied", 20*time.Second, func(av []share.Remote) bool {
		r, ok := findRemote(av, y)
		return ok && len(r.Providers) == 4 && hasCID(av, otherCID)
	})
	if r, _ := findRemote(av, y); r.Name != "report.pdf" {
		t.Errorf("the honest file is listed (and would be saved) as %q, want report.pdf", r.Name)
	}
	got, err := victim.Share.Resolve("report.pdf")
	if err != nil || !got.CID.Equals(y) {
		t.Errorf("get report.pdf resolves to %v, %v; want the honest publisher's file", got.CID, err)
	}
	if r, _ := findRemote(av, otherCID); len(r.Providers) != 1 {
		t.Error("the stranger's file is not listed under its own CID")
	}
}

// Class 9c: names Windows reserves for devices, or drops a trailing dot
// of, are refused from a peer's catalog and for publishing; the others in
// the same catalog are taken.
func TestWindowsReservedNamesRefused(t *testing.T) {
	victim := newNode(t, "victim", nil)
	bad := []string{"CON", "aux.txt", "Nul.tar.gz", "com1.log", "LPT9", "prn.", "report.", "con .txt"}
	var entries []*proto.CatalogEntry
	var badCIDs []cid.Cid
	for _, n := range bad {
		e := fakeEntry(n)
		c, _ := cid.Cast(e.Cid)
		badCIDs = append(badCIDs, c)
		entries = append(entries, e)
	}
	ok := fakeEntry("console.txt")
	okCID, _ := cid.Cast(ok.Cid)
	liar := catalogLiar(t, append(entries, ok)...)
	connect(t, liar, victim)
	av := waitAvailable(t, victim, "the acceptable entry", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, okCID) })
	for i, c := range badCIDs {
		if hasCID(av, c) {
			t.Errorf("a peer's entry named %q is listed", bad[i])
		}
	}
	writeShared(t, victim, "aux.txt", []byte("x"))
	if _, err := victim.Share.Publish(context.Background(), "aux.txt"); !errors.Is(err, share.ErrBadName) {
		t.Errorf("publish aux.txt = %v, want ErrBadName", err)
	}
}
