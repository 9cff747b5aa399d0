package hostile

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/share"
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
	unknown := randomCID()

	h := newAttacker(t)
	connect(t, h, victim)
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
	for i, req := range reqs(c) {
		got := ask(req)
		want := ask(reqs(unknown)[i])
		if got.GetStatus() == proto.FetchResponse_OK || got.GetLength() != 0 || !gproto.Equal(got, want) {
			t.Fatalf("%v of the restricted CID answered %v; for an unknown CID %v", req.GetKind(), got, want)
		}
	}
	// Nothing follows the answers: no sealed stream, no byte of the file.
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after the refusals the server sent %d more bytes (%v)", len(rest), err)
	}

	// Nor does the catalog list it to the outsider.
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
		if e.GetName() == "secret.bin" || string(e.GetCid()) == string(c.Bytes()) {
			t.Fatal("the catalog lists the restricted file to an outsider")
		}
	}

	mustFetch(t, friend, victim, c, data, 30*time.Second)
}
