package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/share"
)

// TestListingsJSON: peers, available, published and groups with --json
// print one JSON array each, of the local API's objects, with full IDs.
func TestListingsJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, s, book, h := peopleNode(t, ctx)
	bob := h.ID()
	if err := book.SetName(bob, "bobby"); err != nil {
		t.Fatal(err)
	}
	if err := book.CreateGroup("friends"); err != nil {
		t.Fatal(err)
	}
	if err := book.AddMembers("friends", bob); err != nil {
		t.Fatal(err)
	}
	if err := book.CreateGroup("empty"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.ShareDir(), "s.txt"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	aud := share.AudienceOf(share.Who{Peer: bob}, share.Who{Group: "friends"})
	if _, err := s.PublishWith(ctx, share.PublishOptions{Audience: &aud}, "s.txt"); err != nil {
		t.Fatal(err)
	}
	r := New(Deps{Node: n, Share: s, People: book})
	// list runs line and decodes its output, which must be one JSON
	// array of the API's type and nothing else.
	list := func(line string, out any) {
		t.Helper()
		var b bytes.Buffer
		if _, failed := r.Exec(ctx, line, &b); failed {
			t.Fatalf("%s failed:\n%s", line, b.String())
		}
		if !strings.HasPrefix(b.String(), "[") {
			t.Fatalf("%s: not a JSON array:\n%s", line, b.String())
		}
		dec := json.NewDecoder(&b)
		dec.DisallowUnknownFields()
		if err := dec.Decode(out); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if dec.More() {
			t.Fatalf("%s: more than one JSON document", line)
		}
	}

	var peers []api.Peer
	list("peers --json", &peers)
	i := slices.IndexFunc(peers, func(p api.Peer) bool { return p.PeerID == bob.String() })
	if i < 0 || peers[i].Nick != "bobby" || peers[i].Says != "bob" || !slices.Equal(peers[i].Groups, []string{"friends"}) || !peers[i].Online || len(peers[i].Addrs) == 0 {
		t.Fatalf("peers --json: %+v", peers)
	}

	var groups []api.Group
	list("groups --json --wide", &groups)
	want := []api.Group{{Name: "empty", Members: []string{}}, {Name: "friends", Members: []string{bob.String()}}}
	if len(groups) != 2 || groups[0].Name != want[0].Name || len(groups[0].Members) != 0 || groups[1].Name != want[1].Name || !slices.Equal(groups[1].Members, want[1].Members) {
		t.Fatalf("groups --json: %+v, want %+v", groups, want)
	}

	var pub []api.Entry
	list("published --json", &pub)
	if len(pub) != 1 || pub[0].Name != "s.txt" || pub[0].Size != 6 || !strings.HasPrefix(pub[0].CID, "bafk") || len(pub[0].SHA256) != 64 ||
		!slices.Equal(pub[0].ToPeers, []string{bob.String()}) || !slices.Equal(pub[0].ToGroups, []string{"friends"}) {
		t.Fatalf("published --json: %+v", pub)
	}

	// Nothing from others: an empty array, not a sentence.
	var avail []api.Remote
	list("available --json", &avail)
	if avail == nil || len(avail) != 0 {
		t.Fatalf("available --json: %+v", avail)
	}

	var b bytes.Buffer
	if _, failed := r.Exec(ctx, "peers --json extra", &b); !failed {
		t.Fatalf("peers --json with an argument: %s", b.String())
	}
}

// printJSON escapes what a terminal could act on, DEL and the C1
// controls included, and the JSON still means the same.
func TestPrintJSONEscapesControls(t *testing.T) {
	var b bytes.Buffer
	in := []string{"a\x1b[2Jb", "c\u009bd\x7fe", "ünï"}
	if err := (&call{out: &b}).printJSON(in); err != nil {
		t.Fatal(err)
	}
	for _, c := range b.String() {
		if c < 0x20 && c != '\n' || c >= 0x7f && c <= 0x9f {
			t.Fatalf("raw control %U in %q", c, b.String())
		}
	}
	var out []string
	if err := json.Unmarshal(b.Bytes(), &out); err != nil || !slices.Equal(out, in) {
		t.Fatalf("decoded %q, %v; want %q", out, err, in)
	}
}
