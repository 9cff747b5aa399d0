package people

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/shortid"
)

func newID(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// openLevel opens a Book on a leveldb in dir; close the returned store
// to reopen it.
func openLevel(t *testing.T, dir string, self peer.ID) (*Book, *leveldb.Datastore) {
	t.Helper()
	ds, err := leveldb.NewDatastore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), ds, self)
	if err != nil {
		ds.Close()
		t.Fatal(err)
	}
	return b, ds
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	self, alice, bob, carol := newID(t), newID(t), newID(t), newID(t)
	b, ds := openLevel(t, dir, self)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.SetName(alice, "Alice"))
	must(b.SetName(bob, "bob"))
	must(b.CreateGroup("friends"))
	must(b.AddMembers("friends", alice, bob))
	must(b.CreateGroup("work"))
	must(b.AddMembers("work", carol))
	must(b.Block(carol))
	must(b.DeleteGroup("work"))
	ds.Close()

	b, ds = openLevel(t, dir, self)
	defer ds.Close()
	if n, ok := b.Name(alice); !ok || n != "Alice" {
		t.Errorf("Name(alice) after reopen = %q, %v", n, ok)
	}
	if got, err := b.Resolve("alice", nil); err != nil || got != alice {
		t.Errorf("Resolve(alice) = %s, %v; want %s (case-insensitive)", got, err, alice)
	}
	gs := b.Groups()
	if len(gs) != 1 || gs[0].Name != "friends" || len(gs[0].Members) != 2 {
		t.Fatalf("Groups after reopen = %+v; want friends with 2 members", gs)
	}
	if !slices.Equal(b.GroupsOf(bob), []string{"friends"}) || len(b.GroupsOf(carol)) != 0 {
		t.Errorf("GroupsOf: bob %v, carol %v", b.GroupsOf(bob), b.GroupsOf(carol))
	}
	if !b.Blocked(carol) || b.Blocked(alice) {
		t.Errorf("Blocked after reopen: carol %v alice %v", b.Blocked(carol), b.Blocked(alice))
	}
	if _, err := b.Members("work"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted group work: Members err = %v", err)
	}
}

func TestNamesAndGroupsShareANamespace(t *testing.T) {
	b, err := Open(context.Background(), datastore.NewMapDatastore(), newID(t))
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := newID(t), newID(t)
	if err := b.SetName(alice, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetName(bob, "ALICE"); !errors.Is(err, ErrTaken) {
		t.Errorf("second peer named ALICE: err %v, want ErrTaken", err)
	}
	if err := b.CreateGroup("Alice"); !errors.Is(err, ErrTaken) {
		t.Errorf("group named like a peer: err %v, want ErrTaken", err)
	}
	if err := b.CreateGroup("friends"); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateGroup("Friends"); !errors.Is(err, ErrTaken) {
		t.Errorf("group twice: err %v, want ErrTaken", err)
	}
	if err := b.SetName(bob, "friends"); !errors.Is(err, ErrTaken) {
		t.Errorf("peer named like a group: err %v, want ErrTaken", err)
	}
	// Renaming a peer frees its old name.
	if err := b.SetName(alice, "ally"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetName(bob, "alice"); err != nil {
		t.Errorf("old name not freed by rename: %v", err)
	}
	if id, err := b.Unname("ALLY"); err != nil || id != alice {
		t.Errorf("Unname(ALLY) = %s, %v", id, err)
	}
	if _, ok := b.Name(alice); ok {
		t.Error("alice still named after Unname")
	}
	if _, err := b.Unname("ally"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unname twice: %v", err)
	}
	// A word that names a group is not a peer, but is a target.
	if _, err := b.Resolve("friends", nil); err == nil || !strings.Contains(err.Error(), "group") {
		t.Errorf("Resolve(group) err = %v", err)
	}
	if tg, err := b.ResolveTarget("FRIENDS", nil); err != nil || tg.Group != "friends" || tg.Peer != "" {
		t.Errorf("ResolveTarget(FRIENDS) = %+v, %v", tg, err)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "alice", "Bob_2", "é-li.se", strings.Repeat("x", MaxNameLen)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "12D3KooW", "1bob", "a b", "a,b", "-x", "x\x1b[2J", "a\u202eb", "public", "ALL",
		strings.Repeat("x", MaxNameLen+1), "a/b", "\xff"} {
		if err := ValidName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want ErrBadName", bad, err)
		}
	}
	b, _ := Open(context.Background(), datastore.NewMapDatastore(), "")
	if err := b.SetName(newID(t), "has space"); !errors.Is(err, ErrBadName) {
		t.Errorf("SetName with a space: %v", err)
	}
	if err := b.CreateGroup(""); !errors.Is(err, ErrBadName) {
		t.Errorf("CreateGroup empty: %v", err)
	}
}

func TestSelfRefused(t *testing.T) {
	self := newID(t)
	b, _ := Open(context.Background(), datastore.NewMapDatastore(), self)
	if err := b.Block(self); !errors.Is(err, ErrSelf) {
		t.Errorf("Block(self) = %v", err)
	}
	if err := b.SetName(self, "me2"); !errors.Is(err, ErrSelf) {
		t.Errorf("SetName(self) = %v", err)
	}
	b.CreateGroup("g")
	if err := b.AddMembers("g", newID(t), self); !errors.Is(err, ErrSelf) {
		t.Errorf("AddMembers(self) = %v", err)
	}
	if m, _ := b.Members("g"); len(m) != 0 {
		t.Errorf("a refused AddMembers added %v", m)
	}
}

func TestResolve(t *testing.T) {
	b, _ := Open(context.Background(), datastore.NewMapDatastore(), "")
	// Two IDs sharing a long prefix, to make an ambiguous prefix.
	var x, y peer.ID
	for x == "" {
		a, c := newID(t), newID(t)
		if a.String()[:9] == c.String()[:9] {
			x, y = a, c
		}
	}
	z := newID(t)
	known := []peer.ID{x, y}
	if _, err := b.Resolve(x.String()[:9], known); !shortid.IsAmbiguous(err) {
		t.Errorf("shared prefix: err %v, want ambiguous", err)
	}
	n := shortid.UniqueLen([]string{x.String(), y.String()}, 0)
	if got, err := b.Resolve(x.String()[:n], known); err != nil || got != x {
		t.Errorf("unique prefix: %s, %v", got, err)
	}
	// A full ID nobody knows is still a peer.
	if got, err := b.Resolve(z.String(), known); err != nil || got != z {
		t.Errorf("full unknown ID: %s, %v", got, err)
	}
	// A peer known only to the Book (named, not in known) resolves by prefix.
	if err := b.SetName(z, "zed"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Resolve(z.String()[:20], known); err != nil || got != z {
		t.Errorf("prefix of a named peer: %s, %v", got, err)
	}
	if _, err := b.Resolve("nobody", known); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown word: %v", err)
	}
	if _, err := b.Resolve("", known); err == nil {
		t.Error("empty word resolved")
	}
}

func TestMembersAndForget(t *testing.T) {
	var blocked, forgotten []peer.ID
	b, _ := Open(context.Background(), datastore.NewMapDatastore(), "")
	b.SetHooks(Hooks{
		Blocked:   func(p peer.ID) { blocked = append(blocked, p) },
		Forgotten: func(p peer.ID) { forgotten = append(forgotten, p) },
	})
	a, c := newID(t), newID(t)
	if err := b.AddMembers("nope", a); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddMembers to a missing group: %v", err)
	}
	b.CreateGroup("g")
	b.CreateGroup("h")
	if err := b.AddMembers("g", a, c, a); err != nil {
		t.Fatal(err)
	}
	b.AddMembers("h", a)
	if m, _ := b.Members("g"); len(m) != 2 {
		t.Errorf("members %v, want 2 (duplicates dropped)", m)
	}
	if err := b.RemoveMembers("h", c); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a non-member: %v", err)
	}
	b.SetName(a, "anna")
	b.Block(a)
	if err := b.Forget(a); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Name(a); ok || len(b.GroupsOf(a)) != 0 {
		t.Errorf("after Forget: name %v, groups %v", ok, b.GroupsOf(a))
	}
	if !b.Blocked(a) {
		t.Error("Forget lifted the block")
	}
	if m, _ := b.Members("g"); !slices.Equal(m, []peer.ID{c}) {
		t.Errorf("g after forgetting a: %v", m)
	}
	if !slices.Equal(blocked, []peer.ID{a}) || !slices.Equal(forgotten, []peer.ID{a}) {
		t.Errorf("hooks: blocked %v forgotten %v", blocked, forgotten)
	}
	if err := b.Unblock(a); err != nil || b.Blocked(a) {
		t.Errorf("Unblock: %v", err)
	}
	if err := b.Unblock(a); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unblock twice: %v", err)
	}
}

func TestBadRecordsSkipped(t *testing.T) {
	ds := datastore.NewMapDatastore()
	ctx := context.Background()
	id := newID(t)
	ds.Put(ctx, datastore.NewKey("/nick/notapeer"), []byte("x"))
	ds.Put(ctx, datastore.NewKey("/nick/"+id.String()), []byte("bad name"))
	ds.Put(ctx, datastore.NewKey("/group/g"), []byte("{not json"))
	ds.Put(ctx, datastore.NewKey("/block/"+id.String()), nil)
	b, err := Open(ctx, ds, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Names()) != 0 || len(b.Groups()) != 0 || !b.Blocked(id) {
		t.Errorf("loaded names %v groups %v blocked %v", b.Names(), b.Groups(), b.Blocked(id))
	}
}

func TestSaidName(t *testing.T) {
	av, err := AgentVersion("bob")
	if err != nil || SaidName(av) != "bob" {
		t.Errorf("AgentVersion(bob) = %q, %v; SaidName = %q", av, err, SaidName(av))
	}
	if _, err := AgentVersion("b o b"); err == nil {
		t.Error("AgentVersion accepted a bad name")
	}
	for _, s := range []string{"", "go-libp2p/0.51", agentPrefix, agentPrefix + "x\x1b[2J", agentPrefix + strings.Repeat("y", 40)} {
		if got := SaidName(s); got != "" {
			t.Errorf("SaidName(%q) = %q, want none", s, got)
		}
	}
}

// What an accepted invitation writes: checked first, then the name and
// the group.
func TestContacts(t *testing.T) {
	b, _ := openLevel(t, t.TempDir(), newID(t))
	p := newID(t)
	if err := b.CheckContact("bob", "friends"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CheckContact with a missing group: %v, want ErrNotFound", err)
	}
	if err := b.CreateGroup("friends"); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckContact("friends", ""); !errors.Is(err, ErrTaken) {
		t.Fatalf("CheckContact naming a peer like a group: %v, want ErrTaken", err)
	}
	if err := b.CheckContact("bad name", ""); err == nil {
		t.Fatal("CheckContact accepted a name with a space")
	}
	if err := b.CheckContact("bob", "friends"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddContact(p, "bob", "friends"); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Name(p); n != "bob" {
		t.Errorf("name %q, want bob", n)
	}
	if m, _ := b.Members("friends"); len(m) != 1 || m[0] != p {
		t.Errorf("friends = %v, want [%s]", m, p)
	}
	if err := b.CheckContact("bob", ""); !errors.Is(err, ErrTaken) {
		t.Errorf("CheckContact of a name now taken: %v, want ErrTaken", err)
	}
}
