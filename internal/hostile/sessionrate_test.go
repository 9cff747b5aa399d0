package hostile

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pshare/p2pshare/internal/node"
)

// The victim's admission rate for new fetch sessions per remote IP
// address (internal/transfer/admit.go): a burst, then a steady rate.
const (
	sessionBurstPerIP = 32
	sessionsPerIPRate = 16 // a second
)

// remoteIP is the IP address victim sees h's connection come from.
func remoteIP(t *testing.T, victim *node.Node, h host.Host) string {
	t.Helper()
	conns := victim.P2P.Host().Network().ConnsToPeer(h.ID())
	if len(conns) == 0 {
		t.Fatalf("victim has no connection to %s", h.ID())
	}
	ip, err := manet.ToIP(conns[0].RemoteMultiaddr())
	if err != nil {
		t.Fatal(err)
	}
	return ip.String()
}

// Session churn from one address: many throwaway identities on one IP
// (127.0.0.2) opening authenticated fetch sessions as fast as they can,
// each dropped once open (so idle-session eviction, which keeps slots
// free, is not what stops them). The victim must admit at most its burst
// plus its steady rate for that address, refusing the rest before the
// handshake, while a peer on another address (127.0.0.1) gets a session at
// once and an honest fetch succeeds.
func TestSessionRatePerIP(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newNode(t, "honest", nil)
	c, data := publishRandom(t, victim, "a.bin", 1<<20+3)

	const ids, perID = 16, 4 // perID: the server's per-peer stream cap
	attackers := make([]host.Host, ids)
	for i := range attackers {
		attackers[i] = newAttackerAt(t, "127.0.0.2", libp2p.Transport(tcp.NewTCPTransport),
			libp2p.ResourceManager(&network.NullResourceManager{}))
		connect(t, attackers[i], victim)
		if ip := remoteIP(t, victim, attackers[i]); ip != "127.0.0.2" {
			t.Fatalf("the victim sees the attacker at %s, not 127.0.0.2", ip)
		}
	}
	// An honest plain host, to open one session by hand during the churn.
	probe := newAttacker(t, libp2p.Transport(tcp.NewTCPTransport))
	connect(t, probe, victim)
	if ip := remoteIP(t, victim, probe); ip != "127.0.0.1" {
		t.Fatalf("the victim sees the honest host at %s, not 127.0.0.1", ip)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		accepted, refused atomic.Int64
		wg                sync.WaitGroup
	)
	start := time.Now()
	for _, a := range attackers {
		for range perID {
			wg.Go(func() {
				for ctx.Err() == nil {
					sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
					st, err := idleSession(sctx, a, victim)
					scancel()
					if err != nil {
						refused.Add(1)
						continue
					}
					accepted.Add(1)
					st.Reset()
				}
			})
		}
	}
	// The churn is on once the victim has refused sessions.
	waitFor(t, 20*time.Second, "the victim to refuse sessions from 127.0.0.2", func() bool {
		return refused.Load() > 2*ids*perID
	})

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	st, err := idleSession(sctx, probe, victim)
	scancel()
	if err != nil {
		t.Fatalf("honest session from 127.0.0.1 during the churn from 127.0.0.2: %v", err)
	}
	st.Reset()
	fetchStart := time.Now()
	mustFetch(t, honest, victim, c, data, 15*time.Second)
	fetchTime := time.Since(fetchStart)

	// At least a second of churn, so the steady rate shows.
	waitFor(t, 10*time.Second, "a second of churn", func() bool { return time.Since(start) > time.Second })
	cancel()
	wg.Wait()
	elapsed := time.Since(start)
	bound := sessionBurstPerIP + int64(elapsed.Seconds()*sessionsPerIPRate) + 1
	t.Logf("%d identities on 127.0.0.2 for %v: %d sessions admitted, %d refused (bound %d); honest fetch of 1 MiB took %v",
		ids, elapsed.Round(time.Millisecond), accepted.Load(), refused.Load(), bound, fetchTime)
	if accepted.Load() > bound {
		t.Errorf("%d sessions admitted from one address in %v; want at most %d (burst %d, %d a second)",
			accepted.Load(), elapsed, bound, sessionBurstPerIP, sessionsPerIPRate)
	}
}
