package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/share"
)

// TestBlockAndForget: a peer's said name reaches us as its claim; blocking
// it closes the connection, hides its files and keeps it out (it cannot
// connect again, nor we to it); forgetting it removes its row and name but
// keeps the block.
func TestBlockAndForget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := openNodesWith(t, 2, func(i int, c *Config) {
		if i == 0 {
			c.Nick = "anna"
		}
	})
	a, b := nodes[0], nodes[1]
	aID := a.P2P.ID()
	if err := os.WriteFile(filepath.Join(a.Config.ShareDir, "a.txt"), []byte("from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Share.Publish(ctx, "a.txt"); err != nil {
		t.Fatal(err)
	}
	connect(t, ctx, b, a)
	poll(t, ctx, "a's file listed on b", func() bool { return hasFile(b.Share.Available(), "a.txt") })
	if got := people.SaidNameIn(b.P2P.Host().Peerstore(), aID); got != "anna" {
		t.Errorf("a says %q, want anna", got)
	}
	// The said name is not a name: it resolves nothing.
	if _, err := b.People.Resolve("anna", nil); err == nil {
		t.Error("a said name resolved a peer")
	}
	if err := b.People.SetName(aID, "alice"); err != nil {
		t.Fatal(err)
	}

	if err := b.People.Block(aID); err != nil {
		t.Fatal(err)
	}
	if hasFile(b.Share.Available(), "a.txt") {
		t.Error("a blocked peer's file is still listed")
	}
	poll(t, ctx, "connection closed by block", func() bool {
		return b.P2P.Host().Network().Connectedness(aID) != network.Connected &&
			a.P2P.Host().Network().Connectedness(b.P2P.ID()) != network.Connected
	})
	// Neither way in. a's dial may see the handshake finish before b
	// refuses: what counts is that the connection does not stay.
	a.P2P.Connect(ctx, b.P2P.Addrs()[0])
	if _, err := b.P2P.Connect(ctx, a.P2P.Addrs()[0]); err == nil {
		t.Error("b connected to the peer it blocked")
	}
	poll(t, ctx, "a's connection refused", func() bool {
		return a.P2P.Host().Network().Connectedness(b.P2P.ID()) != network.Connected
	})
	if len(b.P2P.Host().Network().ConnsToPeer(aID)) != 0 {
		t.Error("b holds a connection with the peer it blocked")
	}

	if _, ok := b.P2P.Peers().Get(aID); !ok {
		t.Fatal("a is not in b's peer table before forget")
	}
	if err := b.People.Forget(aID); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.P2P.Peers().Get(aID); ok {
		t.Error("forgotten peer still in the peer table")
	}
	if _, ok := b.People.Name(aID); ok {
		t.Error("forgotten peer still named")
	}
	if !b.People.Blocked(aID) {
		t.Error("forget lifted the block")
	}
	if err := b.People.Unblock(aID); err != nil {
		t.Fatal(err)
	}
	connect(t, ctx, b, a)
	poll(t, ctx, "a's file back after unblock", func() bool { return hasFile(b.Share.Available(), "a.txt") })
}

func hasFile(list []share.Remote, name string) bool {
	for _, r := range list {
		if r.Name == name {
			return true
		}
	}
	return false
}
