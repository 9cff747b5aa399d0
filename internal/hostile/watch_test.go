package hostile

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/share"
)

// Class 8 (part): a file edited after publishing. Before, the publisher
// only logged a warning when a peer asked for it, and its files, its
// published list and the others' available still listed it, so a get
// waited for content that no longer existed. Now the publisher watches
// its share folder and republishes or withdraws the file, as the user
// chose, and the others are told.

// editPair starts a publisher (with mod) and a peer connected to it on
// the announce topic, publishes name, and waits until the peer lists it.
func editPair(t *testing.T, mod func(*node.Config), name string) (pub, peerNode *node.Node, c cid.Cid) {
	t.Helper()
	pub = newNode(t, "publisher", mod)
	peerNode = newNode(t, "peer", nil)
	connect(t, peerNode.P2P.Host(), pub)
	waitTopicPeers(t, pub.P2P.PubSub(), peerNode.P2P.ID())
	c, _ = publishRandom(t, pub, name, 64<<10)
	waitAvailable(t, peerNode, "the file on the peer", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, c) })
	return pub, peerNode, c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// republished waits until n publishes name under a CID other than old,
// and returns it.
func republished(t *testing.T, n *node.Node, name string, old cid.Cid) cid.Cid {
	t.Helper()
	var now cid.Cid
	poll(t, name+" published again with its new content", 20*time.Second, func() bool {
		es := n.Share.Published()
		if len(es) == 1 && es[0].Name == name && !es[0].CID.Equals(old) {
			now = es[0].CID
			return true
		}
		return false
	})
	return now
}

func TestEditedFileIsRepublished(t *testing.T) {
	pub, other, old := editPair(t, nil, "doc.txt")
	v2 := randomBytes(80 << 10)
	writeShared(t, pub, "doc.txt", v2)
	c := republished(t, pub, "doc.txt", old)
	files, err := pub.Share.Files()
	if err != nil || len(files) != 1 || !files[0].Published || files[0].Changed || !files[0].CID.Equals(c) {
		t.Fatalf("files after the edit: %+v, %v", files, err)
	}
	waitAvailable(t, other, "the new version replacing the old on the peer", 20*time.Second, func(av []share.Remote) bool {
		return len(av) == 1 && av[0].CID.Equals(c)
	})
	mustFetch(t, other, pub, c, v2, 30*time.Second)
}

func TestEditedFileIsWithdrawnWhenChosen(t *testing.T) {
	pub, other, _ := editPair(t, func(c *node.Config) { c.OnChange = share.OnChangeWithdraw }, "doc.txt")
	writeShared(t, pub, "doc.txt", randomBytes(80<<10))
	poll(t, "the edited file withdrawn", 20*time.Second, func() bool { return len(pub.Share.Published()) == 0 })
	waitAvailable(t, other, "the withdrawal on the peer", 20*time.Second, func(av []share.Remote) bool { return len(av) == 0 })
	files, err := pub.Share.Files()
	if err != nil || len(files) != 1 || files[0].Published {
		t.Fatalf("files after the edit: %+v, %v", files, err)
	}
}

func TestRemovedFileIsWithdrawn(t *testing.T) {
	pub, other, _ := editPair(t, nil, "doc.txt")
	if err := os.Remove(filepath.Join(pub.Config.ShareDir, "doc.txt")); err != nil {
		t.Fatal(err)
	}
	poll(t, "the removed file withdrawn", 20*time.Second, func() bool { return len(pub.Share.Published()) == 0 })
	waitAvailable(t, other, "the withdrawal on the peer", 20*time.Second, func(av []share.Remote) bool { return len(av) == 0 })
}

// A file written slowly (appends 200 ms apart, each an event) is
// published once, when it has been quiet: no half-written version
// reaches the peers.
func TestFileBeingWrittenIsPublishedOnceQuiet(t *testing.T) {
	pub, other, old := editPair(t, nil, "log.txt")
	var mu sync.Mutex
	seen := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // every CID the peer ever lists
		defer close(done)
		for {
			ch := other.Share.Changes()
			mu.Lock()
			for _, r := range other.Share.Available() {
				seen[r.CID.String()] = true
			}
			mu.Unlock()
			select {
			case <-ch:
			case <-stop:
				return
			}
		}
	}()
	f, err := os.OpenFile(filepath.Join(pub.Config.ShareDir, "log.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(200 * time.Millisecond) // the writer's pace
	for range 6 {
		if _, err := f.Write(randomBytes(4096)); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	tick.Stop()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	final := republished(t, pub, "log.txt", old)
	if fs, _ := pub.Share.Files(); len(fs) != 1 || fs[0].Size != 64<<10+6*4096 || fs[0].Changed {
		t.Fatalf("published %+v, want the whole file", fs)
	}
	waitAvailable(t, other, "the final version on the peer", 20*time.Second, func(av []share.Remote) bool {
		return len(av) == 1 && av[0].CID.Equals(final)
	})
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	delete(seen, old.String())
	delete(seen, final.String())
	if len(seen) > 0 {
		t.Errorf("half-written versions reached the peer: %v", seen)
	}
}

// An edit made while the node was stopped is noticed when it starts.
func TestEditWhileStoppedIsNoticedAtStart(t *testing.T) {
	pub := newNode(t, "publisher", nil)
	old, _ := publishRandom(t, pub, "doc.txt", 4096)
	cfg := pub.Config
	pub.Close()
	if err := os.WriteFile(filepath.Join(cfg.ShareDir, "doc.txt"), randomBytes(5000), 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	republished(t, pub, "doc.txt", old)
}
