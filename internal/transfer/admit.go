package transfer

import (
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pshare/p2pshare/internal/limiter"
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
	// maxSessionBuckets bounds the table of addresses (limiter.Keyed
	// drops full buckets first, then the least recently used). Past this
	// many addresses starting sessions at once, a per-address limit no
	// longer helps anyway.
	maxSessionBuckets = 4096
)

// sessionAdmission is the per-address token buckets for new sessions.
type sessionAdmission struct{ *limiter.Keyed }

func newSessionAdmission() *sessionAdmission {
	return &sessionAdmission{limiter.NewKeyed(sessionsPerSecond, sessionBurst, maxSessionBuckets)}
}

// allow reports whether a new session from the address key may start now.
func (a *sessionAdmission) allow(key string) bool { return a.Allow(key) }

// admissionKey is the address a connection's sessions are counted
// against (limiter.ConnKey): its remote IPv4 address or IPv6 /56, or the
// peer on a relayed connection.
func admissionKey(c network.Conn) string { return limiter.ConnKey(c) }
