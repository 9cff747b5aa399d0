package share

import (
	"context"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
)

// The network, as this package sees it: three small interfaces, so the
// Library and the Directory can be tested without a libp2p host. In the
// binary, internal/node builds them from internal/p2p's node: HostNetwork
// over its host, its *dht.IpfsDHT as Routing, GossipSub over its PubSub.

// Network is the peer-to-peer host: streams, the connected peers and their
// liveness. HostNetwork adapts a libp2p host.
type Network interface {
	ID() peer.ID
	// SetStreamHandler and RemoveStreamHandler serve a protocol (the
	// catalog server); NewStream opens one to a peer (the catalog client).
	SetStreamHandler(pid protocol.ID, handler network.StreamHandler)
	RemoveStreamHandler(pid protocol.ID)
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
	// ConnectedPeers lists the connected peers, other than this node, that
	// advertise pid.
	ConnectedPeers(pid protocol.ID) []peer.ID
	// Online reports whether p is reachable now.
	Online(p peer.ID) bool
	// Addrs lists the addresses known for p, if any.
	Addrs(p peer.ID) []multiaddr.Multiaddr
	// EventBus delivers event.EvtPeerIdentificationCompleted and
	// event.EvtPeerConnectednessChanged: catalogs are pulled from peers
	// as they connect.
	EventBus() event.Bus
}

// Routing is the DHT: provider records for what we publish, and the
// lookups behind Directory.FindProviders. *dht.IpfsDHT satisfies it.
type Routing interface {
	Provide(ctx context.Context, c cid.Cid, announce bool) error
	FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo
	FindPeer(ctx context.Context, p peer.ID) (peer.AddrInfo, error)
}

// Broadcast is a signed publish/subscribe medium: GossipSub in the binary
// (see GossipSub).
type Broadcast interface {
	// Join joins topic. Every message, ours included, passes validate
	// before it is delivered or forwarded; one it refuses goes no further.
	Join(topic string, validate Validator) (Topic, error)
}

// Validator vets one message of a topic. origin is its verified signer,
// empty if it is not signed (validators refuse those); via is the peer
// that passed it on. The value returned comes back with the message from
// Topic.Next; an error refuses the message, and blames via for it unless
// it wraps errIgnore (a well-formed message that is merely unwanted).
type Validator func(origin, via peer.ID, data []byte) (any, error)

// Topic is one joined topic of a Broadcast.
type Topic interface {
	Publish(ctx context.Context, data []byte) error
	// Next returns the next message that passed the validator: its
	// signer and the validator's value. It fails once ctx ends or the
	// topic is closed.
	Next(ctx context.Context) (origin peer.ID, value any, err error)
	Close() error
}
