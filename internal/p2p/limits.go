package p2p

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Stream memory for file transfers. libp2p's defaults (16 MiB per stream,
// 64 MiB per peer before scaling) stop yamux windows from growing under
// load and throttle a fetch stream, which carries chunks at full speed, and
// the several ones a peer may have open at once (one per download and
// provider); these are the limits p2pshare raises.
const (
	bulkStreamMemory        = 64 << 20  // one transfer stream
	bulkPeerMemory          = 256 << 20 // all streams with one peer
	bulkProtocolMemory      = 512 << 20 // all transfer streams, base
	bulkProtocolMemoryPerGB = 256 << 20 // added per GiB the limiter scales to
	bulkProtocolPeerMemory  = 192 << 20 // transfer streams with one peer
)

// newResourceManager builds the host's resource manager: libp2p's default
// scaling limits plus its default service limits, with stream and peer
// memory raised for file transfers, scaled to this machine (1/8 of RAM,
// half the file descriptors) and frozen into a fixed limiter, so the
// limits are explicit and the same for the node's whole life.
func newResourceManager(bulk []protocol.ID) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits // a copy; its maps are nil and filled below
	libp2p.SetDefaultServiceLimits(&limits)

	limits.StreamBaseLimit.Memory = bulkStreamMemory
	limits.PeerBaseLimit.Memory = max(limits.PeerBaseLimit.Memory, bulkPeerMemory)
	for _, p := range bulk {
		limits.AddProtocolLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: bulkProtocolMemory},
			rcmgr.BaseLimitIncrease{StreamsInbound: 128, StreamsOutbound: 128, Streams: 256, Memory: bulkProtocolMemoryPerGB},
		)
		limits.AddProtocolPeerLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: bulkProtocolPeerMemory},
			rcmgr.BaseLimitIncrease{},
		)
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}
