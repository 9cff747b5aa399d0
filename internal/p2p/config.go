package p2p

import (
	"log/slog"
	"slices"
	"time"

	"github.com/ipfs/go-datastore"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Protocol IDs are internal/proto's: proto.Prefix is the DHT's protocol
// prefix, and a peer that speaks any protocol under it is a p2pshare peer
// and enters the peer table; proto.FetchID (internal/transfer) gets the
// generous resource-manager limits of file transfers by default.
const (
	// MDNSServiceName is the mDNS service p2pshare nodes announce and browse.
	MDNSServiceName = "p2pshare"

	// DefaultKeepalive is the ping interval of the peer table, the refresh
	// period of the original system's alive flags.
	DefaultKeepalive = 10 * time.Second

	// DefaultPingTimeout bounds one keepalive ping, dial included.
	DefaultPingTimeout = 5 * time.Second

	// Connection manager watermarks: trim down to connLowWater once above
	// connHighWater, sparing connections younger than connGracePeriod.
	connLowWater    = 100
	connHighWater   = 400
	connGracePeriod = time.Minute

	// mdnsConnectTimeout bounds the dial to a peer found by mDNS.
	mdnsConnectTimeout = 15 * time.Second
)

// DefaultListenAddrs listen on every interface, IPv4 and IPv6, TCP and
// QUIC, on ports chosen by the OS.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// Config configures Open. The zero value plus a DataDir is a working node
// with the defaults documented on each field, except MDNS, which is off
// unless set (the CLI sets it).
type Config struct {
	// DataDir holds identity.key (mode 0600, created on first start) and
	// datastore/ (leveldb). Required. Created with mode 0700 if missing.
	DataDir string

	// ListenAddrs are multiaddrs to listen on; empty means DefaultListenAddrs.
	ListenAddrs []string

	// Bootstrap peers (with /p2p/<id>) are dialled at start and seed the
	// DHT. None by default: p2pshare never uses the public IPFS bootstrappers.
	Bootstrap []multiaddr.Multiaddr

	// MDNS announces and browses the service MDNSServiceName on the LAN.
	MDNS bool

	// Keepalive is the interval between pings of every peer in the table;
	// 0 means DefaultKeepalive, a negative value disables the periodic
	// keepalive (RefreshPeers still works).
	Keepalive time.Duration

	// PingTimeout bounds one ping, dial included; 0 means DefaultPingTimeout.
	PingTimeout time.Duration

	// MaxPeers bounds the peer table; 0 means DefaultMaxPeers.
	MaxPeers int

	// Logger receives the node's logs; nil discards them. Nothing in this
	// package writes to stdout or stderr.
	Logger *slog.Logger

	// ConnectionGater, if set, is installed on the host. Tests use it to
	// refuse any non-loopback dial.
	ConnectionGater connmgr.ConnectionGater

	// GaterFromDatastore, if set, is called once the datastore is open and
	// before the host starts, so a gater whose state is kept there (the
	// blocked peers) refuses connections from the first one. Its gater is
	// installed along with ConnectionGater: both must allow a connection.
	GaterFromDatastore func(datastore.Batching) (connmgr.ConnectionGater, error)

	// UserAgent, if set, replaces libp2p's agent version in identify (a
	// node says a name for itself there; see internal/people).
	UserAgent string

	// DHTOptions are appended to the node's own DHT options (server mode,
	// protocol prefix, datastore, bootstrap peers), so tests can add
	// dht.DisableAutoRefresh() and the like.
	DHTOptions []dht.Option

	// DHT chooses the DHT: DHTLAN (the default) or DHTPublic.
	DHT DHTMode

	// DHTRequestRate is how many DHT requests per second one peer may
	// send (dhtthrottle.go); 0 means DefaultDHTRequestRate, a negative
	// value turns the throttle off.
	DHTRequestRate float64

	// PortMap asks the router for a port mapping (UPnP, NAT-PMP). Off
	// unless set (it talks to the LAN's router; the CLI sets it).
	PortMap bool

	// Relays are fixed circuit relay v2 relays (with /p2p/<id>): dialled
	// at start and tried first for reservations when this node is not
	// publicly reachable.
	Relays []multiaddr.Multiaddr

	// RelayService says whether this node relays for others; "" means
	// RelayAuto.
	RelayService RelayMode

	// BulkProtocols get the generous stream-memory limits of file
	// transfers; nil means []protocol.ID{proto.FetchID}.
	BulkProtocols []protocol.ID
}

func (c Config) withDefaults() Config {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultListenAddrs
	}
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DHT == "" {
		c.DHT = DHTLAN
	}
	if c.DHTRequestRate == 0 {
		c.DHTRequestRate = DefaultDHTRequestRate
	}
	if c.RelayService == "" {
		c.RelayService = RelayAuto
	}
	if c.BulkProtocols == nil {
		c.BulkProtocols = []protocol.ID{proto.FetchID}
	}
	return c
}

// allGaters allows a connection only if every gater does.
type allGaters []connmgr.ConnectionGater

func (gs allGaters) InterceptPeerDial(p peer.ID) bool {
	return !slices.ContainsFunc(gs, func(g connmgr.ConnectionGater) bool { return !g.InterceptPeerDial(p) })
}

func (gs allGaters) InterceptAddrDial(p peer.ID, a multiaddr.Multiaddr) bool {
	return !slices.ContainsFunc(gs, func(g connmgr.ConnectionGater) bool { return !g.InterceptAddrDial(p, a) })
}

func (gs allGaters) InterceptAccept(c network.ConnMultiaddrs) bool {
	return !slices.ContainsFunc(gs, func(g connmgr.ConnectionGater) bool { return !g.InterceptAccept(c) })
}

func (gs allGaters) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return !slices.ContainsFunc(gs, func(g connmgr.ConnectionGater) bool { return !g.InterceptSecured(d, p, c) })
}

func (gs allGaters) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	for _, g := range gs {
		if ok, reason := g.InterceptUpgraded(c); !ok {
			return false, reason
		}
	}
	return true, 0
}
