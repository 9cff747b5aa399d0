package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
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
	var groups []api.Group
	if err := call(t, cb, http.MethodGet, "/api/v1/groups", nil, nil, &groups); err != nil ||
		len(groups) != 1 || groups[0].Name != "friends" || !slices.Equal(groups[0].Members, []string{aID.String()}) {
		t.Fatalf("groups: %+v, %v", groups, err)
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

// TestPublishToResolves: the words of a publish request's "to" are read
// as at the prompt (publish --to): a name this node gave a peer, a group,
// the unique prefix of a known peer, a whole peer ID; a word that names
// no one, though peer.Decode would take it for an ID of its own (a short
// prefix of an unknown peer) or it could be a group's name, is refused
// (400) and changes nothing.
func TestPublishToResolves(t *testing.T) {
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
	if err := nb.People.CreateGroup("friends"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, nb, "s.txt", 100)
	// A peer nobody here has met, given whole: taken as it is.
	const stranger = "12D3KooWPvCx5soxxeJ6ZH9dPbBbWER9C76x3fZRpdc4W8ysDCWS"

	publish := func(to ...string) (api.Published, error) {
		var out api.Published
		err := call(t, cb, http.MethodPost, "/api/v1/publish", nil, api.PublishRequest{Names: []string{"s.txt"}, To: to}, &out)
		return out, err
	}
	for _, tc := range []struct {
		to            []string
		peers, groups []string
	}{
		{[]string{"alice"}, []string{aID.String()}, nil},
		{[]string{"ALICE", "Friends"}, []string{aID.String()}, []string{"friends"}},
		{[]string{aID.String()[:14]}, []string{aID.String()}, nil},
		{[]string{stranger}, []string{stranger}, nil},
	} {
		out, err := publish(tc.to...)
		if err != nil || len(out.Files) != 1 {
			t.Fatalf("to %q: %+v, %v", tc.to, out, err)
		}
		e := out.Files[0].Entry
		if !slices.Equal(e.ToPeers, tc.peers) || !slices.Equal(e.ToGroups, tc.groups) {
			t.Fatalf("to %q: for peers %q, groups %q; want %q, %q", tc.to, e.ToPeers, e.ToGroups, tc.peers, tc.groups)
		}
	}

	// The audience now: the stranger. None of these words changes it.
	short := stranger[:12] // peer.Decode takes it for an ID of its own
	for _, bad := range [][]string{{short}, {"team"}, {"alice", "nobody"}, {""}} {
		_, err := publish(bad...)
		mustStatus(t, err, http.StatusBadRequest, `"to"`)
		if e := nb.Share.Published(); len(e) != 1 || len(e[0].Audience.Peers) != 1 || e[0].Audience.Peers[0].String() != stranger || len(e[0].Audience.Groups) != 0 {
			t.Fatalf("to %q changed the audience: %+v", bad, e)
		}
	}
	_, err := publish(short)
	if !strings.Contains(err.Error(), short) {
		t.Fatalf("the refusal does not name the word: %v", err)
	}
}
