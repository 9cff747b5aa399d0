package hostile

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"github.com/multiformats/go-multihash"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/share"
)

// Class 4 (announcement memory) and class 9b (replayed announcements):
// attackers on the announce topic, with GossipSub of their own.

// gossiper is an attacker host on the announce topic.
type gossiper struct {
	h     host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func newGossiper(t *testing.T) *gossiper {
	t.Helper()
	h := newAttacker(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// A deep outbound queue: the flood is sent, not dropped on our side.
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithPeerOutboundQueueSize(4096))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(proto.AnnounceTopic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	return &gossiper{h: h, ps: ps, topic: topic, sub: sub}
}

// drain discards what g receives, its own messages included (the
// subscription would otherwise keep the last 32 in memory: the
// attacker's memory, not the victim's, but the test measures both).
func (g *gossiper) drain() {
	go func() {
		for {
			if _, err := g.sub.Next(context.Background()); err != nil {
				return
			}
		}
	}()
}

// join connects g to n and waits until each sees the other on the topic.
func (g *gossiper) join(t *testing.T, n *node.Node) {
	t.Helper()
	connect(t, g.h, n)
	waitTopicPeers(t, g.ps, n.P2P.ID())
	waitTopicPeers(t, n.P2P.PubSub(), g.h.ID())
}

// waitTopicPeers waits until ps sees every one of ids on the announce topic.
func waitTopicPeers(t *testing.T, ps *pubsub.PubSub, ids ...peer.ID) {
	t.Helper()
	poll(t, "peers on the announce topic", 20*time.Second, func() bool {
		have := ps.ListPeers(proto.AnnounceTopic)
		for _, id := range ids {
			if !slices.Contains(have, id) {
				return false
			}
		}
		return true
	})
}

// publishAs publishes m on the topic, signed by key.
func (g *gossiper) publishAs(t *testing.T, key crypto.PrivKey, m *proto.Announcement) {
	t.Helper()
	data, err := gproto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// WithReadiness: GossipSub v0.19 drops a message published before
	// its first heartbeat grafted the topic's mesh.
	if err := g.topic.Publish(ctx, data, pubsub.WithSecretKeyAndPeerId(key, id), pubsub.WithReadiness(pubsub.MinTopicSize(1))); err != nil {
		t.Fatal(err)
	}
}

// ownKey is the gossiper's host key: announcements it signs itself come
// from a connected peer.
func (g *gossiper) ownKey() crypto.PrivKey { return g.h.Peerstore().PrivKey(g.h.ID()) }

// replay sends msgs, messages captured on the topic, to n as they are,
// in one raw RPC from from: what anyone who kept a signed message can do
// at any later time.
func replay(t *testing.T, from host.Host, n *node.Node, msgs ...*pb.Message) {
	t.Helper()
	connect(t, from, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := from.NewStream(ctx, n.P2P.ID(), pubsub.GossipSubID_v12, pubsub.GossipSubID_v11)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sub, topic := true, proto.AnnounceTopic
	rpc := &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{{Subscribe: &sub, Topicid: &topic}}, Publish: msgs}
	b, err := gproto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	if err := msgio.NewVarintWriter(st).WriteMsg(b); err != nil {
		t.Fatal(err)
	}
}

func newKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomCID() cid.Cid {
	var b [32]byte
	rand.Read(b[:])
	mh, _ := multihash.Encode(b[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

// fakeEntry is a well-formed catalog entry for content nobody has.
func fakeEntry(name string) *proto.CatalogEntry {
	return &proto.CatalogEntry{Name: name, Size: 1 << 20, Cid: randomCID().Bytes(), Sha256: make([]byte, 32),
		ChunkSize: 256 << 10, PublishedUnix: time.Now().Unix()}
}

// floodMessages splits n entries with names of nameLen bytes into
// PUBLISH announcements that fit GossipSub's 1 MiB message limit.
func floodMessages(n, nameLen int) []*proto.Announcement {
	var out []*proto.Announcement
	cur := &proto.Announcement{}
	size := 0
	for i := range n {
		name := fmt.Sprintf("%07d-", i)
		e := fakeEntry(name + strings.Repeat("f", nameLen-len(name)))
		if s := gproto.Size(e) + 4; size+s > 900<<10 {
			out = append(out, cur)
			cur, size = &proto.Announcement{}, 0
		}
		cur.Entries = append(cur.Entries, e)
		size += gproto.Size(e) + 4
	}
	return append(out, cur)
}

// poll waits until cond holds, checking every 50 ms, for at most d.
func poll(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAvailable waits on n's Changes until cond holds for its Available.
func waitAvailable(t *testing.T, n *node.Node, what string, d time.Duration, cond func([]share.Remote) bool) []share.Remote {
	t.Helper()
	deadline := time.After(d)
	for {
		ch := n.Share.Changes()
		av := n.Share.Available()
		if cond(av) {
			return av
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out after %s waiting until %s (%d entries available)", d, what, len(av))
		}
	}
}

func hasCID(av []share.Remote, c cid.Cid) bool {
	return slices.ContainsFunc(av, func(r share.Remote) bool { return r.CID.Equals(c) })
}

// offlinePublisher has a publisher announce a file to victim and go
// offline: its entry must survive what follows.
func offlinePublisher(t *testing.T, victim *node.Node) cid.Cid {
	t.Helper()
	pub := newNode(t, "offline-publisher", nil)
	c, _ := publishRandom(t, pub, "kept.bin", 4096)
	connect(t, pub.P2P.Host(), victim)
	waitAvailable(t, victim, "the publisher's file on the victim", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, c) })
	pub.Close()
	return c
}

// relayedCap is what one relaying peer may make the victim hold for keys
// it is not (share's maxRelayedEntries: a tenth of the 50,000-entry budget).
const relayedCap = 5000

// Class 4: one connected peer relays announcements signed by 20 keys of
// its own making, 10,000 entries each, with long names (measured before
// the fix: +180,000 entries, +248 MiB RSS). The victim keeps at most the
// relay's share, its heap returns to within floodHeapBound of where it
// was, an offline publisher's entry survives, and an honest fetch works.
func TestAnnouncementFloodThroughOneRelay(t *testing.T) {
	const floodHeapBound = 32 << 20 // the budget's bytes
	victim := newNode(t, "victim", nil)
	kept := offlinePublisher(t, victim)
	provider := newNode(t, "provider", nil)
	c, data := publishRandom(t, provider, "served.bin", 1<<20)
	connect(t, provider.P2P.Host(), victim)
	waitAvailable(t, victim, "the provider's file", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, c) })

	g := newGossiper(t)
	g.drain()
	g.join(t, victim)
	before := heapInUse()

	msgs := floodMessages(10000, 200)
	tick := time.NewTicker(50 * time.Millisecond) // the flood's pace
	defer tick.Stop()
	sent := 0
	for range 20 {
		key := newKey(t)
		for _, m := range msgs {
			m := gproto.Clone(m).(*proto.Announcement)
			for _, e := range m.Entries {
				e.Cid = randomCID().Bytes()
			}
			m.TimeUnixNano = time.Now().UnixNano()
			g.publishAs(t, key, m)
			sent += len(m.Entries)
			<-tick.C
		}
	}
	// A last announcement signed by the relay itself: once it is
	// applied, the flood sent before it has been through the validator.
	marker := fakeEntry("marker.bin")
	g.publishAs(t, g.ownKey(), &proto.Announcement{TimeUnixNano: time.Now().UnixNano(), Entries: []*proto.CatalogEntry{marker}})
	markerCID, _ := cid.Cast(marker.Cid)
	waitAvailable(t, victim, "the relay's own announcement", 60*time.Second, func(av []share.Remote) bool { return hasCID(av, markerCID) })

	av := victim.Share.Available()
	t.Logf("flood: %d entries sent by 20 keys through one relay; the victim lists %d", sent, len(av))
	if len(av) > relayedCap+3 {
		t.Errorf("the victim holds %d entries after the flood; one relay may inject at most %d", len(av), relayedCap)
	}
	if !hasCID(av, kept) || !hasCID(av, c) {
		t.Error("the flood pushed out a real publisher's entry")
	}
	// GossipSub keeps the last seconds of messages for gossip: wait for
	// those to go, then the heap must be back within the bound.
	var grown int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		grown = int64(heapInUse()) - int64(before)
		if grown <= floodHeapBound || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("heap: %+.1f MiB in use after the flood", float64(grown)/(1<<20))
	if grown > floodHeapBound {
		t.Errorf("heap grew by %.1f MiB and stayed there; bound %d MiB", float64(grown)/(1<<20), floodHeapBound>>20)
	}
	mustFetch(t, victim, provider, c, data, 60*time.Second)
}

// Class 4: connected throwaway identities, each announcing 8,000 entries
// as itself, fill at most the global budget (50,000 entries), and a small
// publisher gone offline keeps its entry.
func TestAnnouncementFloodFromManyIdentities(t *testing.T) {
	const budget = 50000
	victim := newNode(t, "victim", nil)
	kept := offlinePublisher(t, victim)
	msgs := floodMessages(8000, 10)
	if len(msgs) != 1 {
		t.Fatalf("the flood message was split in %d", len(msgs))
	}
	for i := range 8 {
		g := newGossiper(t)
		g.drain()
		g.join(t, victim)
		m := gproto.Clone(msgs[0]).(*proto.Announcement)
		for _, e := range m.Entries {
			e.Cid = randomCID().Bytes()
		}
		m.TimeUnixNano = time.Now().UnixNano()
		g.publishAs(t, g.ownKey(), m)
		// One message is applied whole: once any of it shows, all of it
		// has been through the budget.
		waitAvailable(t, victim, fmt.Sprintf("identity %d's entries", i), 60*time.Second, func(av []share.Remote) bool {
			return slices.ContainsFunc(av, func(r share.Remote) bool {
				return slices.ContainsFunc(r.Providers, func(p share.ProviderInfo) bool { return p.ID == g.h.ID() })
			})
		})
	}
	av := victim.Share.Available()
	t.Logf("8 identities announced 64,000 entries; the victim lists %d", len(av))
	if len(av) > budget+1 {
		t.Errorf("the victim holds %d entries; budget %d", len(av), budget)
	}
	if !hasCID(av, kept) {
		t.Error("the flood pushed out an offline publisher's entry")
	}
}

// Class 9b: a withdrawn file's signed announcement, kept by a peer and
// replayed after the victim restarted, does not bring the file back.
func TestReplayedAnnouncementAfterRestart(t *testing.T) {
	publisher := newNode(t, "publisher", nil)
	victim := newNode(t, "victim", nil)
	g := newGossiper(t)
	g.join(t, publisher)
	connect(t, victim.P2P.Host(), publisher)
	waitTopicPeers(t, publisher.P2P.PubSub(), victim.P2P.ID())

	// The attacker keeps every announcement signed on the topic.
	captured := make(chan *pubsub.Message, 64)
	go func() {
		for {
			m, err := g.sub.Next(context.Background())
			if err != nil {
				return
			}
			captured <- m
		}
	}()
	keep := func(what string, from peer.ID, kind proto.Announcement_Kind) *pb.Message {
		t.Helper()
		for {
			select {
			case m := <-captured:
				var a proto.Announcement
				if m.GetFrom() == from && gproto.Unmarshal(m.GetData(), &a) == nil && a.GetKind() == kind {
					return gproto.Clone(m.Message).(*pb.Message)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the attacker did not see %s", what)
			}
		}
	}
	c, _ := publishRandom(t, publisher, "withdrawn.txt", 2048)
	waitAvailable(t, victim, "the file on the victim", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, c) })
	old := keep("the publish", publisher.P2P.ID(), proto.Announcement_PUBLISH)
	if _, err := publisher.Share.Unpublish(context.Background(), "withdrawn.txt"); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, victim, "the withdrawal on the victim", 20*time.Second, func(av []share.Remote) bool { return !hasCID(av, c) })
	publisher.Close()
	victim = restart(t, victim)

	// A marker, signed by the attacker, sent after the replay in the same
	// RPC: once it shows, the replay before it has been validated.
	marker := fakeEntry("marker.bin")
	markerCID, _ := cid.Cast(marker.Cid)
	data, err := gproto.Marshal(&proto.Announcement{TimeUnixNano: time.Now().UnixNano(), Entries: []*proto.CatalogEntry{marker}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.topic.Publish(context.Background(), data); err != nil { // no peers: only to itself
		t.Fatal(err)
	}
	mark := keep("its own marker", g.h.ID(), proto.Announcement_PUBLISH)
	replay(t, newAttacker(t), victim, old, mark)
	av := waitAvailable(t, victim, "the marker", 20*time.Second, func(av []share.Remote) bool { return hasCID(av, markerCID) })
	if hasCID(av, c) {
		t.Fatal("a replayed announcement brought back a withdrawn file after a restart")
	}
}

// restart closes n and opens it again on the same folders.
func restart(t *testing.T, n *node.Node) *node.Node {
	t.Helper()
	cfg := n.Config
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2, err := node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n2.Close() })
	return n2
}

// writeShared writes b to name in n's share folder.
func writeShared(t *testing.T, n *node.Node, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.Config.ShareDir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
