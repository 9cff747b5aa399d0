// Package limiter holds bounded tables of token buckets keyed by who is
// asking: a remote address (an IPv4 address, an IPv6 /56: what one
// subscriber usually holds) or a peer. The fetch server admits new
// sessions with one (internal/transfer), the DHT throttles requests with
// two (internal/p2p): per peer, and per address so that throwaway
// identities from one address share one budget.
package limiter

import (
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"
)

// IPv6SubnetBits is the IPv6 prefix counted as one address.
const IPv6SubnetBits = 56

// Keyed is a bounded table of token buckets, one per key, each refilling
// at the same rate up to the same burst. A bucket unused long enough to
// have refilled is dropped when the table is full (forgetting it changes
// nothing); if none has, the least recently used one is.
type Keyed struct {
	rate  rate.Limit
	burst int
	max   int
	idle  time.Duration // time for an empty bucket to refill

	mu      sync.Mutex
	buckets map[string]*bucket
	// Now is the clock; tests may replace it before first use.
	Now func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewKeyed returns a table of at most max buckets of perSecond tokens a
// second and burst tokens at most.
func NewKeyed(perSecond float64, burst, max int) *Keyed {
	return &Keyed{
		rate:    rate.Limit(perSecond),
		burst:   burst,
		max:     max,
		idle:    time.Duration(float64(burst) / perSecond * float64(time.Second)),
		buckets: make(map[string]*bucket),
		Now:     time.Now,
	}
}

// Allow takes one token of key's bucket if it has one.
func (k *Keyed) Allow(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.Now()
	return k.bucketLocked(key, now).AllowN(now, 1)
}

// Reserve takes one token of key's bucket, now or in the future, and
// returns how long to wait for it. A caller that will not wait that long
// gives the token back with the returned cancel.
func (k *Keyed) Reserve(key string) (wait time.Duration, cancel func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.Now()
	r := k.bucketLocked(key, now).ReserveN(now, 1)
	return r.DelayFrom(now), func() { r.CancelAt(k.Now()) }
}

// Len is the number of buckets held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// Has reports whether key has a bucket.
func (k *Keyed) Has(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.buckets[key]
	return ok
}

func (k *Keyed) bucketLocked(key string, now time.Time) *rate.Limiter {
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= k.max {
			k.makeRoomLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(k.rate, k.burst)}
		k.buckets[key] = b
	}
	b.last = now
	return b.lim
}

func (k *Keyed) makeRoomLocked(now time.Time) {
	var oldest string
	var oldestT time.Time
	for key, b := range k.buckets {
		if now.Sub(b.last) >= k.idle {
			delete(k.buckets, key)
			continue
		}
		if oldest == "" || b.last.Before(oldestT) {
			oldest, oldestT = key, b.last
		}
	}
	if len(k.buckets) >= k.max {
		delete(k.buckets, oldest)
	}
}

// ConnKey is the address a connection is counted against: its remote
// IPv4 address, or IPv6 /56. A relayed connection (p2p-circuit) is counted
// against the remote peer instead: its remote address is the relay's,
// shared by everyone it relays, and relays bound what each peer may send
// through them.
func ConnKey(c network.Conn) string {
	return AddrKey(c.RemoteMultiaddr(), c.RemotePeer())
}

// AddrKey is ConnKey for a remote address addr of peer p.
func AddrKey(addr ma.Multiaddr, p peer.ID) string {
	if _, err := addr.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return PeerKey(p)
	}
	ip, err := manet.ToIP(addr)
	if err != nil {
		return PeerKey(p)
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(IPv6SubnetBits, 128)).String() + "/" + strconv.Itoa(IPv6SubnetBits)
}

// PeerKey is the key of a peer, distinct from every address key.
func PeerKey(p peer.ID) string { return "peer/" + p.String() }
