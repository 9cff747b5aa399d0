package hostile

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// streamFlood keeps target streams open from h to victim that never
// negotiate a protocol: each is opened (a yamux SYN reaches the victim) and
// then left silent. A stream the victim resets is opened again, so the
// pressure lasts until stop. It returns how many streams are open.
type streamFlood struct {
	open   atomic.Int64
	opened atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startStreamFlood(h host.Host, victim peer.ID, target int) *streamFlood {
	ctx, cancel := context.WithCancel(context.Background())
	f := &streamFlood{cancel: cancel}
	f.wg.Go(func() {
		var streams sync.WaitGroup
		defer streams.Wait()
		for ctx.Err() == nil {
			for int(f.open.Load()) < target && ctx.Err() == nil {
				st, err := h.Network().NewStream(ctx, victim)
				if err != nil {
					break
				}
				f.open.Add(1)
				f.opened.Add(1)
				streams.Go(func() {
					defer f.open.Add(-1)
					stop := context.AfterFunc(ctx, func() { st.Reset() })
					defer stop()
					var b [1]byte
					st.Read(b[:]) // returns when the victim resets the stream, or at stop
					st.Reset()
				})
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond): // pace the re-opening of refused streams
			}
		}
	})
	return f
}

func (f *streamFlood) stop() {
	f.cancel()
	f.wg.Wait()
}

// Class 2, stream exhaustion: one peer opening more streams than the
// victim's whole transient scope holds, none of which ever negotiates a
// protocol, must not stop other peers' pings and fetches. The peer may hold
// only a small share of the transient scope; everything else is refused.
func TestStreamExhaustion(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newNode(t, "honest", nil)
	c, data := publishRandom(t, victim, "a.bin", 4<<20+3)

	start := time.Now()
	mustFetch(t, honest, victim, c, data, 30*time.Second)
	base := time.Since(start)
	heapBefore := heapInUse()

	limit, _ := transientInbound(t, victim)
	// One attacker identity on several connections, each with fewer silent
	// streams than the victim's per-connection memory allows (yamux
	// reserves a 256 KiB window per stream; past 128 the victim drops the
	// whole connection, which would end the flood). Its own resource manager must not
	// be what stops it. TCP only: yamux opens a stream at the peer with its
	// first frame and sets no limit of its own on a connection's streams
	// (QUIC allows 256 and opens a stream only when data is sent).
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var floods []*streamFlood
	defer func() {
		for _, f := range floods {
			f.stop()
		}
	}()
	const perConn = 100
	for range (limit+200)/perConn + 1 {
		a := newAttacker(t, libp2p.Identity(key), libp2p.ResourceManager(&network.NullResourceManager{}),
			libp2p.Transport(tcp.NewTCPTransport))
		connect(t, a, victim)
		floods = append(floods, startStreamFlood(a, victim.P2P.ID(), perConn))
	}
	opened := func() (n int64) {
		for _, f := range floods {
			n += f.opened.Load()
		}
		return n
	}
	// The flood is on once the victim has refused or reset streams beyond
	// what it keeps, or holds all of them.
	waitFor(t, 20*time.Second, "the flood to reach the victim", func() bool {
		_, now := transientInbound(t, victim)
		return opened() > int64(limit) || now >= limit
	})

	// Pings and a fetch from the honest peer, for longer than libp2p's
	// negotiation timeout (10 s), so streams the victim drops after it
	// are replaced by new ones during the test.
	c2, data2 := publishRandom(t, victim, "b.bin", 4<<20+5)
	var (
		pingErr      error
		pings        int
		maxTransient int
	)
	pingsDone := make(chan struct{})
	floodEnd := time.Now().Add(12 * time.Second)
	go func() {
		defer close(pingsDone)
		for time.Now().Before(floodEnd) {
			if _, err := pingOnce(honest.P2P.Host(), victim.P2P.ID(), 5*time.Second); err != nil {
				pingErr = fmt.Errorf("honest ping %d during the flood: %w", pings+1, err)
				return
			}
			pings++
			_, now := transientInbound(t, victim)
			maxTransient = max(maxTransient, now)
			time.Sleep(200 * time.Millisecond) // ping cadence, not synchronisation
		}
	}()
	start = time.Now()
	mustFetch(t, honest, victim, c2, data2, 30*time.Second)
	fetchTime := time.Since(start)
	<-pingsDone
	if pingErr != nil {
		t.Fatal(pingErr)
	}
	heapDuring := heapInUse()

	t.Logf("transient inbound limit %d; attacker opened %d streams, at most %d in the victim's transient scope; %d honest pings ok",
		limit, opened(), maxTransient, pings)
	t.Logf("honest fetch of 4 MiB: %v without the flood, %v during it", base, fetchTime)
	t.Logf("heap in use: %d MiB before the flood, %d MiB during it", heapBefore>>20, heapDuring>>20)

	// One peer is a small share of the transient scope.
	if maxTransient > limit/8 {
		t.Errorf("one peer held %d of %d transient inbound streams; want at most an eighth", maxTransient, limit)
	}
	if heapDuring > heapBefore+64<<20 {
		t.Errorf("heap grew by %d MiB during the flood; want at most 64 MiB", (heapDuring-heapBefore)>>20)
	}
}

// A peer that keeps flooding the victim with streams it refuses is cut
// off: past a thousand refusals in ten seconds its connections are closed
// and it may not reconnect for a while, while an honest peer still pings
// and fetches.
func TestStreamFlooderDisconnected(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newNode(t, "honest", nil)
	c, data := publishRandom(t, victim, "a.bin", 1<<20+3)

	a := newAttackerAt(t, "127.0.0.2", libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.Transport(tcp.NewTCPTransport))
	connect(t, a, victim)
	f := startStreamFlood(a, victim.P2P.ID(), 100)
	defer f.stop()
	waitFor(t, 30*time.Second, "the victim to close the flooder's connections", func() bool {
		return f.opened.Load() > 1000 && len(victim.P2P.Host().Network().ConnsToPeer(a.ID())) == 0
	})
	f.stop()
	opened := f.opened.Load()

	// It may not come back at once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.Network().ClosePeer(victim.P2P.ID())
	err := a.Connect(ctx, peer.AddrInfo{ID: victim.P2P.ID(), Addrs: victim.P2P.Host().Addrs()})
	if err == nil {
		// A connection the victim refuses may look open to the dialer
		// for a moment; the victim must not hold it.
		waitFor(t, 10*time.Second, "the victim to drop the flooder's new connection", func() bool {
			return len(victim.P2P.Host().Network().ConnsToPeer(a.ID())) == 0
		})
	}
	t.Logf("flooder opened %d streams before it was disconnected; reconnecting: %v", opened, err)

	if err := honest.P2P.Host().Connect(ctx, peer.AddrInfo{ID: victim.P2P.ID(), Addrs: victim.P2P.Host().Addrs()}); err != nil {
		t.Fatalf("honest peer connecting after the flood: %v", err)
	}
	if _, err := pingOnce(honest.P2P.Host(), victim.P2P.ID(), 5*time.Second); err != nil {
		t.Fatalf("honest ping after the flood: %v", err)
	}
	mustFetch(t, honest, victim, c, data, 15*time.Second)
}
