package hostile

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"github.com/multiformats/go-multihash"
	protobuf "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// dhtID is the victim's DHT protocol (LAN mode: proto.Prefix + /kad/1.0.0).
const dhtID = proto.Prefix + "/kad/1.0.0"

// randomKey is a multihash of random bytes: a provider-record key for
// content nobody has.
func randomKey(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	h, err := multihash.Sum(b, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Class 7, DHT records: one peer sending ADD_PROVIDER for twice as many
// arbitrary keys as a peer may store gets at most MaxProviderRecordsPerPeer
// of them stored; an honest provider's record is still stored and found.
func TestDHTProviderRecords(t *testing.T) {
	// The request throttle (TestDHTRequestFlood) would make 20,000
	// requests take minutes: this test is about what is stored.
	victim := newNode(t, "victim", func(c *node.Config) { c.DHTRequestRate = -1 })
	honest := newNode(t, "honest", nil)
	heapBefore := heapInUse()

	attacker := newAttacker(t)
	connect(t, attacker, victim)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := attacker.NewStream(ctx, victim.P2P.ID(), dhtID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	w := msgio.NewVarintWriter(st)
	self := pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: attacker.ID(), Addrs: attacker.Addrs()}})
	send := func(m *pb.Message) {
		b, err := protobuf.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMsg(b); err != nil {
			t.Fatalf("send to the victim: %v", err)
		}
	}
	const records = 2 * p2p.MaxProviderRecordsPerPeer
	start := time.Now()
	for range records {
		m := pb.NewMessage(pb.Message_ADD_PROVIDER, randomKey(t), 0)
		m.ProviderPeers = self
		send(m)
	}
	// The victim handles a stream's messages in order, and answers
	// GET_PROVIDERS: its answer means every ADD_PROVIDER was handled.
	send(pb.NewMessage(pb.Message_GET_PROVIDERS, randomKey(t), 0))
	st.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := msgio.NewVarintReaderSize(st, network.MessageSizeMax).ReadMsg(); err != nil {
		t.Fatalf("no answer from the victim after the flood: %v", err)
	}
	took := time.Since(start)
	fromAttacker, total := victim.P2P.ProviderRecords(attacker.ID())
	heapAfter := heapInUse()
	t.Logf("%d ADD_PROVIDER in %v: %d stored for the attacker, %d in all (bounds %d per peer, %d in all)",
		records, took, fromAttacker, total, p2p.MaxProviderRecordsPerPeer, p2p.MaxProviderRecords)
	t.Logf("heap in use: %d MiB before, %d MiB after", heapBefore>>20, heapAfter>>20)
	if fromAttacker > p2p.MaxProviderRecordsPerPeer {
		t.Errorf("%d provider records stored for one peer; bound %d", fromAttacker, p2p.MaxProviderRecordsPerPeer)
	}
	if heapAfter > heapBefore+64<<20 {
		t.Errorf("heap grew by %d MiB; want at most 64 MiB", (heapAfter-heapBefore)>>20)
	}

	// An honest provider is still stored and found.
	connect(t, honest.P2P.Host(), victim)
	waitFor(t, 10*time.Second, "the victim in the honest node's routing table", func() bool {
		return honest.P2P.DHT().RoutingTable().Find(victim.P2P.ID()) != ""
	})
	c := cid.NewCidV1(cid.Raw, randomKey(t))
	if err := honest.P2P.DHT().Provide(ctx, c, true); err != nil {
		t.Fatalf("honest provide: %v", err)
	}
	// ADD_PROVIDER has no answer: the record arrives after Provide returns.
	var provs []peer.AddrInfo
	found := func() bool {
		provs, err = victim.P2P.DHT().ProviderStore().GetProviders(ctx, c.Hash())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range provs {
			if p.ID == honest.P2P.ID() {
				return true
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, "the honest provider's record at the victim", found)
}

// Class 7, DHT request flood: throwaway identities on one address stream
// ADD_PROVIDER as fast as they can. The victim handles them at the
// address's throttled rate (each stores a record, so the records count
// the requests handled), not as fast as they come, and still answers an
// honest peer's request on another address promptly.
func TestDHTRequestFlood(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newAttacker(t) // a plain host on 127.0.0.1 asking honestly
	connect(t, honest, victim)

	const sybils = 6
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var attackers []peer.ID
	begin := make(chan struct{})
	done := make(chan struct{})
	for range sybils {
		a := newAttackerAt(t, "127.0.0.2")
		connect(t, a, victim)
		attackers = append(attackers, a.ID())
		st, err := a.NewStream(ctx, victim.P2P.ID(), dhtID)
		if err != nil {
			t.Fatal(err)
		}
		self := pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: a.ID(), Addrs: a.Addrs()}})
		go func() {
			defer func() { done <- struct{}{} }()
			defer st.Reset()
			w := msgio.NewVarintWriter(st)
			<-begin
			for ctx.Err() == nil {
				m := pb.NewMessage(pb.Message_ADD_PROVIDER, randomKey(t), 0)
				m.ProviderPeers = self
				b, _ := protobuf.Marshal(m)
				if w.WriteMsg(b) != nil {
					return // reset by the victim, or the test is over
				}
			}
		}()
	}
	close(begin)
	start := time.Now()

	// An honest GET_PROVIDERS during the flood is answered.
	st, err := honest.NewStream(ctx, victim.P2P.ID(), dhtID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	b, _ := protobuf.Marshal(pb.NewMessage(pb.Message_GET_PROVIDERS, randomKey(t), 0))
	asked := time.Now()
	if err := msgio.NewVarintWriter(st).WriteMsg(b); err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := msgio.NewVarintReaderSize(st, network.MessageSizeMax).ReadMsg(); err != nil {
		t.Fatalf("honest request not answered during the flood: %v", err)
	}
	t.Logf("honest request answered in %v during the flood", time.Since(asked))

	// Let the flood run for a few seconds more, then count.
	const flood = 4 * time.Second
	if rest := flood - time.Since(start); rest > 0 {
		<-time.After(rest) // the flood's duration, not synchronisation
	}
	elapsed := time.Since(start)
	stored := 0
	for _, a := range attackers {
		n, _ := victim.P2P.ProviderRecords(a)
		stored += n
	}
	cancel()
	for range sybils {
		<-done
	}
	// What one address may have handled: its burst and its rate over the
	// time elapsed, with a second's margin for requests in flight.
	addrRate := p2p.DefaultDHTRequestRate * 4
	bound := int(float64(addrRate)*(elapsed.Seconds()+1)) + 4*1000
	t.Logf("%d identities on one address: %d ADD_PROVIDER handled in %v (bound %d)", sybils, stored, elapsed, bound)
	if stored > bound {
		t.Errorf("%d requests from one address handled in %v; the throttle allows about %d", stored, elapsed, bound)
	}
	if stored == 0 {
		t.Error("no request of the flood was handled: the test did not flood")
	}
}
