package hostile

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// fetchInboundLimit is the victim's inbound stream limit for the fetch
// protocol, and how many inbound fetch streams it has now.
func fetchInboundLimit(t *testing.T, n *node.Node) (limit, now int) {
	t.Helper()
	err := n.P2P.Host().Network().ResourceManager().ViewProtocol(proto.FetchID, func(s network.ProtocolScope) error {
		limit, now = inbound(t, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return limit, now
}

// idleSession opens a fetch stream from h to victim, completes the
// authenticated handshake and then sends nothing: a session slot held for
// free. It returns the stream, which the victim may close.
func idleSession(ctx context.Context, h host.Host, victim *node.Node) (network.Stream, error) {
	st, err := h.NewStream(ctx, victim.P2P.ID(), proto.FetchID)
	if err != nil {
		return nil, err
	}
	st.SetDeadline(time.Now().Add(20 * time.Second))
	r := proto.NewReader(st, proto.MaxResponseSize)
	_, err = bbsaes.Initiate(ctx, struct {
		io.Reader
		io.Writer
	}{r, st}, bbsaes.Config{
		ProtocolID: proto.FetchID,
		LocalKey:   h.Peerstore().PrivKey(h.ID()),
		RemotePeer: victim.P2P.ID(),
	})
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	st.SetDeadline(time.Time{})
	return st, nil
}

// Class 3, session slots: throwaway identities each holding as many idle,
// authenticated fetch sessions as the victim allows one peer, together
// more than the fetch protocol's inbound limit, must not keep an honest
// peer from fetching: idle sessions are evicted under pressure, longest
// idle first, and one peer keeps at most a couple of idle ones.
func TestSessionSlots(t *testing.T) {
	victim := newNode(t, "victim", nil)
	// Two honest nodes: one fetches before the attack, the other during it
	// (the first would reuse the session it keeps from its first fetch).
	before, honest := newNode(t, "before", nil), newNode(t, "honest", nil)
	c, data := publishRandom(t, victim, "a.bin", 4<<20+3)
	start := time.Now()
	mustFetch(t, before, victim, c, data, 30*time.Second)
	base := time.Since(start)

	limit, _ := fetchInboundLimit(t, victim)
	const perPeer = 4 // the server's per-peer stream cap
	ids := limit/perPeer + 8
	var (
		mu       sync.Mutex
		streams  []network.Stream
		accepted atomic.Int64
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 8)
	)
	defer func() {
		for _, st := range streams {
			st.Reset()
		}
	}()
	// Each identity on its own loopback address (127.1.x.y), as a swarm
	// spread over many addresses: the victim's per-address admission rate
	// for new sessions (TestSessionRatePerIP) then does not stop them, and
	// the eviction of idle sessions is what is tested here.
	attackers := make([]host.Host, ids)
	for i := range attackers {
		attackers[i] = newAttackerAt(t, fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), libp2p.Transport(tcp.NewTCPTransport),
			libp2p.ResourceManager(&network.NullResourceManager{}))
		connect(t, attackers[i], victim)
	}
	heapBefore := heapInUse() // the attackers' hosts run in this process too
	for _, a := range attackers {
		for range perPeer {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				st, err := idleSession(ctx, a, victim)
				if err != nil {
					return // refused: the victim is full, or evicting
				}
				accepted.Add(1)
				mu.Lock()
				streams = append(streams, st)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	_, now := fetchInboundLimit(t, victim)
	t.Logf("fetch inbound limit %d; %d identities opened %d authenticated sessions, %d open at the victim now",
		limit, ids, accepted.Load(), now)

	c2, data2 := publishRandom(t, victim, "b.bin", 4<<20+5)
	start = time.Now()
	mustFetch(t, honest, victim, c2, data2, 15*time.Second)
	during := time.Since(start)
	heapDuring := heapInUse()
	_, now = fetchInboundLimit(t, victim)
	t.Logf("honest fetch of 4 MiB: %v without the attack, %v during it; %d inbound fetch streams after", base, during, now)
	t.Logf("heap in use: %d MiB with the attackers connected, %d MiB with their sessions open", heapBefore>>20, heapDuring>>20)
	if now >= limit {
		t.Errorf("%d inbound fetch streams at the victim, its limit %d: no slot left", now, limit)
	}
	if heapDuring > heapBefore+64<<20 {
		t.Errorf("heap grew by %d MiB; want at most 64 MiB", (heapDuring-heapBefore)>>20)
	}
}
