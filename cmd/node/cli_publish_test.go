package main

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/api"
)

func newPeerID(t *testing.T) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// The client's --to reads names, groups, IDs and prefixes as the prompt
// does, with the peers the node lists, and sends the API full IDs and
// group names.
func TestResolveAudience(t *testing.T) {
	bob, carol, stranger := newPeerID(t), newPeerID(t), newPeerID(t)
	peers := []api.Peer{
		{PeerID: bob, Nick: "Bob", Groups: []string{"family"}},
		{PeerID: carol, Groups: []string{"family", "work"}},
	}
	for _, tc := range []struct {
		list string
		want []string
	}{
		{"bob", []string{bob}},                       // a name, any case
		{"family, work", []string{"family", "work"}}, // groups
		{carol[:14], []string{carol}},                // a unique prefix
		{stranger, []string{stranger}},               // a whole ID, unknown
		{"newgroup", []string{"newgroup"}},           // a group without members yet
		{"bob,family", []string{bob, "family"}},
	} {
		got, err := resolveAudience(tc.list, peers)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("resolveAudience(%q) = %v, %v; want %v", tc.list, got, err, tc.want)
		}
	}
	for _, bad := range []string{"12D3KooWnotAKnownPrefix", " , ", "12D3Koo"} {
		if got, err := resolveAudience(bad, peers); err == nil {
			t.Errorf("resolveAudience(%q) = %v, want an error", bad, got)
		}
	}
	twins := append(peers, api.Peer{PeerID: stranger, Nick: "bob"})
	if got, err := resolveAudience("bob", twins); err == nil {
		t.Errorf("two peers named bob: %v, want an error", got)
	}
}

func TestAudienceText(t *testing.T) {
	bob, carol := newPeerID(t), newPeerID(t)
	peers := []api.Peer{{PeerID: bob, Nick: "bob"}}
	if s := audienceText(api.Entry{}, peers); s != "everyone" {
		t.Errorf("public: %q", s)
	}
	s := audienceText(api.Entry{ToPeers: []string{bob, carol}, ToGroups: []string{"family"}}, peers)
	if !strings.HasPrefix(s, "bob (12D3KooW") || !strings.Contains(s, ", 12D3KooW") || !strings.HasSuffix(s, ", group family") || strings.Contains(s, carol) {
		t.Errorf("audience text %q", s)
	}
}
