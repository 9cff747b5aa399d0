package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/internal/api"
)

// TestPeersShowNames: GET /api/v1/peers carries the name this node gave a
// peer, its groups and block; a get --from takes the name.
func TestPeersShowNames(t *testing.T) {
	na, nb := newNode(t, "a"), newNode(t, "b")
	startAPI(t, nb, 0)
	cb := openClient(t, nb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	aID := na.P2P.ID()
	if _, err := nb.P2P.Connect(ctx, na.P2P.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if err := nb.People.SetName(aID, "alice"); err != nil {
		t.Fatal(err)
	}
	nb.People.CreateGroup("friends")
	nb.People.AddMembers("friends", aID)
	var peers []api.Peer
	if err := call(t, cb, http.MethodGet, "/api/v1/peers", nil, nil, &peers); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(peers, func(p api.Peer) bool { return p.PeerID == aID.String() })
	if i < 0 || peers[i].Nick != "alice" || !slices.Equal(peers[i].Groups, []string{"friends"}) || peers[i].Blocked {
		t.Fatalf("peers: %+v", peers)
	}
	if err := nb.People.Block(aID); err != nil {
		t.Fatal(err)
	}
	call(t, cb, http.MethodGet, "/api/v1/peers", nil, nil, &peers)
	if i := slices.IndexFunc(peers, func(p api.Peer) bool { return p.PeerID == aID.String() }); i < 0 || !peers[i].Blocked {
		t.Fatalf("peers after block: %+v", peers)
	}
	// A group is not a peer: a bad request, not a missing one.
	err := call(t, cb, http.MethodPost, "/api/v1/get", nil, api.GetRequest{Target: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", From: []string{"friends"}}, nil)
	if statusOf(err) != http.StatusBadRequest {
		t.Fatalf("get --from a group: %v", err)
	}
}
