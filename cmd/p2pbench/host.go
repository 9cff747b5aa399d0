package main

import (
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

type hostConfig struct {
	bulk []protocol.ID // protocols with internal/p2p's transfer limits
	// bounded: a small fixed resource-manager budget and low connection
	// manager watermarks, so hundreds of hosts fit in one process.
	bounded           bool
	connLow, connHigh int
	// transport: "tcp" (the default: TCP, TLS then Noise, yamux) or
	// "quic" (QUIC v1, its own TLS and streams).
	transport string
}

// newHost starts a host configured like internal/p2p's (TCP, TLS before
// Noise, yamux; or QUIC), listening on 127.0.0.1 only and refusing to dial
// anything but loopback.
func newHost(cfg hostConfig) (host.Host, error) {
	var rm network.ResourceManager
	var err error
	if cfg.bounded {
		limits := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&limits)
		rm, err = rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(64<<20, 256)))
	} else {
		rm, err = resourceManagerLikeP2P(cfg.bulk)
	}
	if err != nil {
		return nil, err
	}
	low, high := cfg.connLow, cfg.connHigh
	if low == 0 {
		low, high = 100, 400 // internal/p2p's watermarks
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		rm.Close()
		return nil, err
	}
	transport := []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport)}
	switch cfg.transport {
	case "", "tcp":
	case "quic":
		transport = []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.Transport(quic.NewTransport)}
	default:
		rm.Close()
		return nil, fmt.Errorf("transport %q: want tcp or quic", cfg.transport)
	}
	return libp2p.New(
		libp2p.ChainOptions(transport...),
		libp2p.ChainOptions(libp2p.Security(tls.ID, tls.New), libp2p.Security(noise.ID, noise.New)),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(loopbackOnly{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
}

// resourceManagerLikeP2P repeats internal/p2p's newResourceManager (limits.go):
// default scaled limits with stream and peer memory raised for bulk
// protocols.
func resourceManagerLikeP2P(bulk []protocol.ID) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.StreamBaseLimit.Memory = 64 << 20
	limits.PeerBaseLimit.Memory = max(limits.PeerBaseLimit.Memory, 256<<20)
	for _, p := range bulk {
		limits.AddProtocolLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 512 << 20},
			rcmgr.BaseLimitIncrease{StreamsInbound: 128, StreamsOutbound: 128, Streams: 256, Memory: 256 << 20},
		)
		limits.AddProtocolPeerLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: 192 << 20},
			rcmgr.BaseLimitIncrease{},
		)
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}

// loopbackOnly refuses every dial to an address that is not loopback.
type loopbackOnly struct{}

func isLoopback(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && net.IP(ip).IsLoopback()
}

func (loopbackOnly) InterceptPeerDial(peer.ID) bool                   { return true }
func (loopbackOnly) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool { return isLoopback(a) }
func (loopbackOnly) InterceptAccept(c network.ConnMultiaddrs) bool {
	return isLoopback(c.RemoteMultiaddr())
}
func (loopbackOnly) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (loopbackOnly) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

var _ = fmt.Sprint
