package hostile

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// A peer outside a file's audience asks for its manifest and chunks
// directly on the fetch protocol, after a proper handshake, and for its
// catalog: it gets the very answers given for a CID nobody publishes, no
// byte of the file follows them, and the catalog does not list it. The
// peer it was published to fetches it from the same node.
func TestRestrictedFileOutsideAudience(t *testing.T) {
	victim := newNode(t, "victim", nil)
	friend := newNode(t, "friend", nil)
	c, data := publishRandom(t, victim, "secret.bin", 3<<20+17)
	to := share.Audience{Peers: []peer.ID{friend.P2P.ID()}}
	if _, err := victim.Share.PublishWith(context.Background(), share.PublishOptions{Audience: &to}, "secret.bin"); err != nil {
		t.Fatal(err)
	}

	h := newAttacker(t)
	connect(t, h, victim)
	assertRefusedLikeUnknown(t, h, victim, c)
	assertNotInCatalog(t, h, victim, "secret.bin", c)
	mustFetch(t, friend, victim, c, data, 30*time.Second)
}

// A peer outside a restricted folder's audience asks, on the fetch
// protocol, for the folder's document and for the manifest and chunks of
// each of its files (CIDs it learnt out of band): every answer is the one
// given for a CID nobody publishes, no byte follows, and the catalog does
// not list the folder. The friend it was published to fetches the
// document and a file from the same node.
func TestRestrictedFolderOutsideAudience(t *testing.T) {
	victim := newNode(t, "victim", nil)
	friend := newNode(t, "friend", nil)
	dir := filepath.Join(victim.Config.ShareDir, "album")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"a.bin": make([]byte, 2<<20+5), "sub/b.bin": make([]byte, 4000)}
	for p, b := range files {
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	to := share.Audience{Peers: []peer.ID{friend.P2P.ID()}}
	res, err := victim.Share.PublishWith(context.Background(), share.PublishOptions{Audience: &to}, "album")
	if err != nil {
		t.Fatal(err)
	}
	folder := res[0].Entry.CID
	doc, ok := victim.Share.Collection(folder, victim.P2P.ID())
	if !ok {
		t.Fatal("the victim does not serve its own folder's document")
	}
	col, err := collection.Verify(folder, doc)
	if err != nil {
		t.Fatal(err)
	}
	members := make(map[string]cid.Cid)
	for _, e := range col.Entries {
		members[e.Path] = e.CID
	}
	if len(members) != len(files) {
		t.Fatalf("folder lists %v", members)
	}

	h := newAttacker(t)
	connect(t, h, victim)
	assertRefusedLikeUnknown(t, h, victim, folder, members["a.bin"], members["sub/b.bin"])
	assertNotInCatalog(t, h, victim, "album", folder)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := friend.Transfer.FetchCollection(ctx, folder, transfer.GetOptions{
		Hints: []peer.AddrInfo{{ID: victim.P2P.ID(), Addrs: victim.P2P.Host().Addrs()}},
		From:  []peer.ID{victim.P2P.ID()},
	}); err != nil {
		t.Fatalf("the friend's fetch of the document: %v", err)
	}
	mustFetch(t, friend, victim, members["a.bin"], files["a.bin"], 30*time.Second)
}

// assertRefusedLikeUnknown opens a fetch session from h to victim, after
// a proper handshake, and asks for the manifest and chunks of each of
// cids: each answer must equal the one for a CID nobody publishes, and no
// byte may follow the answers.
func assertRefusedLikeUnknown(t *testing.T, h host.Host, victim *node.Node, cids ...cid.Cid) {
	t.Helper()
	unknown := randomCID()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, victim.P2P.ID(), proto.FetchID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.SetDeadline(time.Now().Add(30 * time.Second))
	r := proto.NewReader(st, proto.MaxResponseSize)
	if _, err := bbsaes.Initiate(ctx, struct {
		io.Reader
		io.Writer
	}{r, st}, bbsaes.Config{
		ProtocolID: proto.FetchID,
		LocalKey:   h.Peerstore().PrivKey(h.ID()),
		RemotePeer: victim.P2P.ID(),
	}); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	ask := func(req *proto.FetchRequest) *proto.FetchResponse {
		t.Helper()
		if err := proto.WriteMsg(st, req); err != nil {
			t.Fatal(err)
		}
		var resp proto.FetchResponse
		if err := r.ReadMsg(&resp); err != nil {
			t.Fatalf("read answer to %v: %v", req, err)
		}
		return &resp
	}
	reqs := func(c cid.Cid) []*proto.FetchRequest {
		return []*proto.FetchRequest{
			{Kind: proto.FetchRequest_MANIFEST, Cid: c.Bytes()},
			{Kind: proto.FetchRequest_CHUNKS, Cid: c.Bytes(), FirstChunk: 0, Count: 1},
			{Kind: proto.FetchRequest_CHUNKS, Cid: c.Bytes(), FirstChunk: 2, Count: proto.MaxChunksPerRequest},
		}
	}
	for _, c := range cids {
		for i, req := range reqs(c) {
			got := ask(req)
			if got.GetStatus() == proto.FetchResponse_OK || got.GetLength() != 0 {
				t.Fatalf("%v of the restricted CID %s answered %v, length %d", req.GetKind(), c, got.GetStatus(), got.GetLength())
			}
			if want := ask(reqs(unknown)[i]); !gproto.Equal(got, want) {
				t.Fatalf("%v of the restricted CID %s answered %v; for an unknown CID %v", req.GetKind(), c, got, want)
			}
		}
	}
	// Nothing follows the answers: no sealed stream, no byte of a file.
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after the refusals the server sent %d more bytes (%v)", len(rest), err)
	}
}

// assertNotInCatalog pulls victim's catalog as h and fails if it lists
// name or c.
func assertNotInCatalog(t *testing.T, h host.Host, victim *node.Node, name string, c cid.Cid) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cst, err := h.NewStream(ctx, victim.P2P.ID(), proto.CatalogID)
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Reset()
	if err := proto.WriteMsg(cst, &proto.CatalogRequest{}); err != nil {
		t.Fatal(err)
	}
	cst.CloseWrite()
	var cat proto.CatalogResponse
	if err := proto.NewReader(cst, proto.MaxCatalogSize).ReadMsg(&cat); err != nil {
		t.Fatal(err)
	}
	for _, e := range cat.GetEntries() {
		if e.GetName() == name || string(e.GetCid()) == string(c.Bytes()) {
			t.Fatalf("the catalog lists the restricted %s to an outsider", name)
		}
	}
}
