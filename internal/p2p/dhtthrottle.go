package p2p

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pshare/p2pshare/internal/limiter"
)

// The DHT answers every request a peer sends, as fast as it arrives: a
// decode, a datastore lookup, often a write. Bounding what is stored
// (providers.go) does not bound that work, and one peer streaming
// ADD_PROVIDER messages kept a core busy and halved an honest download
// here. So inbound DHT requests are throttled: each takes a token of its
// peer's bucket and of its address's (IPv4 address, IPv6 /56; the peer's
// on a relayed connection), and waits for them. Throwaway identities from
// one address share the address's budget. A request that would wait
// longer than maxDHTWait resets its stream instead: its sender is far
// beyond any honest rate.
const (
	// DefaultDHTRequestRate is the sustained rate of DHT requests one
	// peer may send, per second. An honest peer sends a few while looking
	// something up, and one ADD_PROVIDER per published file when it
	// provides; 10,000 files then take 50 s to provide to this node, which
	// happens in the background.
	DefaultDHTRequestRate = 200
	// dhtRequestBurst is how many requests a peer may send at once: a
	// node that just joined, looking up and providing everything it has.
	dhtRequestBurst = 1000
	// dhtAddrFactor: one address gets this many peers' worth (a LAN
	// behind one NAT, several nodes on one machine).
	dhtAddrFactor = 4
	// maxDHTBuckets bounds each table of buckets (limiter.Keyed).
	maxDHTBuckets = 4096
	// maxDHTWait is the longest a request waits for its tokens.
	maxDHTWait = 10 * time.Second
)

type dhtThrottle struct {
	peers, addrs *limiter.Keyed
	log          *slog.Logger
	throttled    atomic.Int64 // requests that waited
	reset        atomic.Int64 // streams reset for waiting too long
}

// newDHTThrottle throttles each peer to perSecond requests; nil if
// perSecond <= 0 (no throttle).
func newDHTThrottle(perSecond float64, log *slog.Logger) *dhtThrottle {
	if perSecond <= 0 {
		return nil
	}
	return &dhtThrottle{
		peers: limiter.NewKeyed(perSecond, dhtRequestBurst, maxDHTBuckets),
		addrs: limiter.NewKeyed(perSecond*dhtAddrFactor, dhtRequestBurst*dhtAddrFactor, maxDHTBuckets),
		log:   log,
	}
}

// request is the DHT's OnRequestHook: it runs before each inbound request
// is handled, on the goroutine that reads the stream, so waiting here
// slows that peer's requests and nobody else's.
func (t *dhtThrottle) request(ctx context.Context, s network.Stream, _ *pb.Message) {
	c := s.Conn()
	waitPeer, cancelPeer := t.peers.Reserve(limiter.PeerKey(c.RemotePeer()))
	waitAddr, cancelAddr := t.addrs.Reserve(limiter.ConnKey(c))
	wait := max(waitPeer, waitAddr)
	if wait == 0 {
		return
	}
	if wait > maxDHTWait {
		cancelPeer()
		cancelAddr()
		_ = s.Reset() // the request is still handled; the stream's next read fails
		if n := t.reset.Add(1); n == 1 || n%100 == 0 {
			t.log.Warn("DHT requests from a peer far over the rate: stream reset",
				"peer", c.RemotePeer(), "addr", c.RemoteMultiaddr(), "resets_so_far", n)
		}
		return
	}
	t.throttled.Add(1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
