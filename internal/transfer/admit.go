package transfer

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

// New fetch sessions are admitted at a bounded rate per remote IP address
// (an IPv4 address, an IPv6 /56: what one subscriber usually holds), before
// the handshake, which is the expensive part of a session (an RSA-sized
// BBS signature check and key exchange). Idle sessions are evicted under
// pressure (server.go), so throwaway identities that keep opening sessions
// and leaving them idle turn into handshake churn; this bounds it per
// address, whatever the number of identities. Loopback is not exempt:
// tests and the benchmark separate an attacker from an honest peer by
// using different 127.x addresses.
const (
	// sessionBurst is how many sessions one address may start at once. A
	// fetcher keeps its sessions with a provider for its next download
	// (poolPerPeer) and opens at most a few per download and provider, so
	// even a node starting many downloads from one provider at once stays
	// below it.
	sessionBurst = 32
	// sessionsPerSecond is the sustained rate per address once the burst
	// is spent: far above an honest fetcher's, which reuses sessions, and
	// well below the handshakes the two cores of a small node can do
	// while still serving (about a millisecond of CPU each).
	sessionsPerSecond = 16
	// maxSessionBuckets bounds the table of addresses. A bucket unused for
	// bucketIdle has refilled to its burst and is dropped when the table
	// is full (forgetting it changes nothing); if none has, the least
	// recently used one is dropped. Past this many addresses starting
	// sessions at once, a per-address limit no longer helps anyway.
	maxSessionBuckets = 4096
	bucketIdle        = time.Second * sessionBurst / sessionsPerSecond
	ipv6SubnetBits    = 56
)

// sessionAdmission is the per-address token buckets for new sessions.
type sessionAdmission struct {
	mu      sync.Mutex
	buckets map[string]*ipBucket
	now     func() time.Time // tests may replace it
}

type ipBucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newSessionAdmission() *sessionAdmission {
	return &sessionAdmission{buckets: make(map[string]*ipBucket), now: time.Now}
}

// allow reports whether a new session from the address key may start now.
func (a *sessionAdmission) allow(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	b := a.buckets[key]
	if b == nil {
		if len(a.buckets) >= maxSessionBuckets {
			a.makeRoomLocked(now)
		}
		b = &ipBucket{lim: rate.NewLimiter(sessionsPerSecond, sessionBurst)}
		a.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// makeRoomLocked drops every bucket idle for bucketIdle (they are full),
// or, if none is, the least recently used one.
func (a *sessionAdmission) makeRoomLocked(now time.Time) {
	var oldest string
	var oldestT time.Time
	for k, b := range a.buckets {
		if now.Sub(b.last) >= bucketIdle {
			delete(a.buckets, k)
			continue
		}
		if oldest == "" || b.last.Before(oldestT) {
			oldest, oldestT = k, b.last
		}
	}
	if len(a.buckets) >= maxSessionBuckets {
		delete(a.buckets, oldest)
	}
}

// admissionKey is the address a connection's sessions are counted
// against: its remote IPv4 address, or IPv6 /56. A relayed connection
// (p2p-circuit) is counted against the remote peer instead: its remote
// address is the relay's, shared by everyone it relays, and relays bound
// what each peer may send through them.
func admissionKey(c network.Conn) string {
	return addrKey(c.RemoteMultiaddr(), c.RemotePeer())
}

func addrKey(addr ma.Multiaddr, p peer.ID) string {
	if _, err := addr.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return "peer/" + p.String()
	}
	ip, err := manet.ToIP(addr)
	if err != nil {
		return "peer/" + p.String()
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(ipv6SubnetBits, 128)).String() + "/" + strconv.Itoa(ipv6SubnetBits)
}
