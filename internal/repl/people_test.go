package repl

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/share"
)

// peopleNode starts a node (peer table, share service, people book) on
// loopback and a peer h, connected to it and in its table, that says its
// own name is "bob".
func peopleNode(t *testing.T, ctx context.Context) (n *p2p.Node, s *share.Service, book *people.Book, h host.Host) {
	t.Helper()
	var err error
	n, err = p2p.Open(ctx, p2p.Config{
		DataDir:     t.TempDir(),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Keepalive:   -1,
		Logger:      slog.New(slog.DiscardHandler),
		DHTOptions:  []dht.Option{dht.DisableAutoRefresh()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s, err = share.New(ctx, share.Config{
		Network:   share.HostNetwork(n.Host(), nil),
		Datastore: dssync.MutexWrap(datastore.NewMapDatastore()),
		ShareDir:  t.TempDir(),
		OnChange:  share.OnChangeIgnore,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	book, err = people.Open(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), n.ID())
	if err != nil {
		t.Fatal(err)
	}
	book.SetHooks(people.Hooks{Forgotten: func(id peer.ID) { n.Forget(id) }})

	agent, _ := people.AgentVersion("bob")
	h, err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.UserAgent(agent))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(proto.CatalogID, func(s network.Stream) { s.Reset() })
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	// In the table once identified (it speaks a p2pshare protocol).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := n.Peers().Get(h.ID()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the peer never entered the peer table")
		}
	}
	return n, s, book, h
}

// TestPeopleCommands drives name, group, block and forget at the prompt
// against a node with one peer that says its own name is "bob".
func TestPeopleCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, s, book, h := peopleNode(t, ctx)
	r := New(Deps{Node: n, Share: s, People: book})
	run := func(line string, wantOK bool, want ...string) string {
		t.Helper()
		var out bytes.Buffer
		_, failed := r.Exec(ctx, line, &out)
		if failed == wantOK {
			t.Fatalf("%s: failed=%v, output:\n%s", line, failed, out.String())
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Fatalf("%s: output lacks %q:\n%s", line, w, out.String())
			}
		}
		return out.String()
	}
	id := h.ID().String()
	run("wait online "+id[:20], true)
	run("peers", true, id[:12]+" (says: bob)")
	// A said name is only shown: it names nothing.
	run("wait online bob --timeout 1s", false, `no peer or group is named "bob"`)

	run("name "+id[:20]+" alice", true, "named "+id+" alice")
	run("peers", true, "alice ("+id[:12])
	run("wait online alice", true)
	run("name "+n.ID().String()+" me2", false, "this node")
	run("group create Alice", false, "taken")
	run("group create friends", true)
	run("name alice friends", false, "is a group")
	run("group add friends alice", true, "1 member")
	run("groups", true, "friends", "alice ("+id[:12])
	run("group rm friends "+id, true, "0 member")
	run("group bogus friends", false, "usage")

	run("block alice", true, "blocked alice ("+id+")")
	run("blocked", true, "alice ("+id[:12])
	run("peers", true, "blocked")
	run("forget alice", true, "forgot alice", "still blocked")
	if out := run("peers", true); strings.Contains(out, id[:12]) {
		t.Errorf("peers lists a forgotten peer:\n%s", out)
	}
	// Its name went with it; the block stayed, so its ID is still known.
	run("unblock alice", false, `no peer or group is named "alice"`)
	run("unblock "+id[:20], true, "unblocked "+id)
	run("blocked", true, "no peer is blocked")
}
