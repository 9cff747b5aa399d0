package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/singleflight"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// Names inside DataDir and key prefixes inside the datastore.
const (
	IdentityFile   = "identity.key"
	DatastoreDir   = "datastore"
	peersNamespace = "/peers"
	dhtNamespace   = "/dht"
)

// ErrNotP2PShare is returned by Connect when the peer answered but speaks
// no p2pshare protocol; the connection is left to the connection manager
// and the peer is not recorded.
var ErrNotP2PShare = errors.New("peer does not speak p2pshare")

// Node is a running p2pshare network node. Open starts it; Close stops
// everything it started. Its methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	ds    *leveldb.Datastore
	peers *PeerTable
	host  host.Host
	dht   *dht.IpfsDHT
	// providers is the DHT's provider datastore, which bounds the
	// provider records others store here.
	providers *providerLimiter
	// dhtThrottle bounds the rate of inbound DHT requests; nil if off.
	dhtThrottle *dhtThrottle
	ps          *pubsub.PubSub
	mdns        mdns.Service
	// relay is the relay service when started by us (RelayOn,
	// RelayUnlimited); RelayAuto's lives inside the host.
	relay   *relayv2.Relay
	punches *punchLog
	// reaching makes concurrent Reach calls for one peer share an attempt.
	reaching singleflight.Group
	// hostForRelays is the host, for AutoRelay's candidate source, which
	// may run before Open has assigned n.host.
	hostForRelays atomic.Value
	// mdnsErr is why mDNS could not start, if it could not.
	mdnsErr error
	sub     event.Subscription

	// ctx ends when Close starts; wg counts every goroutine the node owns.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	checks    chan peer.ID       // liveness checks asked for by events
	dials     chan peer.AddrInfo // peers found by mDNS, to connect to
	live      *liveness          // per-peer keepalive state
	closeOnce sync.Once
	closeErr  error
}

// Open starts a node: identity, datastore, peer table, libp2p host, DHT,
// GossipSub, keepalive, and mDNS if cfg.MDNS. Bootstrap peers are dialled
// in the background. ctx bounds only the start-up, not the node's life.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("p2p: Config.DataDir is required")
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger,
		checks:  make(chan peer.ID, 256),
		dials:   make(chan peer.AddrInfo, 64),
		live:    newLiveness(),
		punches: newPunchLog(),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("p2p: data dir: %w", err)
	}
	key, err := LoadOrCreateIdentity(filepath.Join(cfg.DataDir, IdentityFile))
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	n.ds, err = leveldb.NewDatastore(filepath.Join(cfg.DataDir, DatastoreDir), nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: open datastore: %w", err)
	}
	n.peers, err = newPeerTable(ctx, namespace.Wrap(n.ds, datastore.NewKey(peersNamespace)), n.log, cfg.MaxPeers)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}

	bootstrap, err := addrInfos(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("p2p: bootstrap peers: %w", err)
	}
	relays, err := addrInfos(cfg.Relays)
	if err != nil {
		return nil, fmt.Errorf("p2p: relays: %w", err)
	}

	rm, err := newResourceManager(cfg.BulkProtocols)
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(connLowWater, connHighWater, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.DialRanker(dialRanker), // TCP first on a LAN (ranker.go)
		// TLS first: it uses AES-NI and runs about twice as fast as Noise here.
		libp2p.ChainOptions(libp2p.Security(tls.ID, tls.New), libp2p.Security(noise.ID, noise.New)),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
	}
	opts = append(opts, n.reachOptions(relays)...)
	var gaters allGaters
	if cfg.ConnectionGater != nil {
		gaters = append(gaters, cfg.ConnectionGater)
	}
	if cfg.GaterFromDatastore != nil {
		g, err := cfg.GaterFromDatastore(n.ds)
		if err != nil {
			return nil, fmt.Errorf("p2p: %w", err)
		}
		gaters = append(gaters, g)
	}
	if len(gaters) > 0 {
		opts = append(opts, libp2p.ConnectionGater(gaters))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, libp2p.UserAgent(cfg.UserAgent))
	}
	n.host, err = libp2p.New(opts...) // on error, libp2p closes rm and cm
	if err != nil {
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	n.hostForRelays.Store(n.host)
	rm.setClosePeer(func(p peer.ID) { n.host.Network().ClosePeer(p) })

	// Known peers' last addresses, so the keepalive can dial them.
	for _, p := range n.peers.List() {
		n.host.Peerstore().AddAddrs(p.ID, p.Addrs, keepaliveAddrTTL)
	}

	// Subscribe before the DHT and mDNS can connect anyone.
	n.sub, err = n.host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return nil, fmt.Errorf("p2p: subscribe to host events: %w", err)
	}
	n.wg.Go(n.eventLoop)

	if err := n.startRelayService(); err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}

	dhtStore := namespace.Wrap(n.ds, datastore.NewKey(dhtNamespace))
	n.providers, err = newProviderLimiter(ctx, dhtStore, n.host.ID(), n.log)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	dhtOpts := []dht.Option{
		dht.Datastore(dhtStore),
		// The same datastore, with the bounds on others' provider records.
		dht.ProviderDatastore(n.providers),
	}
	if n.dhtThrottle = newDHTThrottle(cfg.DHTRequestRate, n.log); n.dhtThrottle != nil {
		dhtOpts = append(dhtOpts, dht.OnRequestHook(n.dhtThrottle.request))
	}
	switch cfg.DHT {
	case DHTPublic:
		// The IPFS DHT's own protocol and mode rules: a client until
		// AutoNAT says this node is reachable, then a server.
		dhtOpts = append(dhtOpts, dht.Mode(dht.ModeAuto))
		if len(bootstrap) == 0 {
			bootstrap = dht.GetDefaultBootstrapPeerAddrInfos()
		}
	default:
		dhtOpts = append(dhtOpts,
			dht.Mode(dht.ModeServer), // a LAN node has no public reachability: auto mode would stay a client
			dht.ProtocolPrefix(proto.Prefix))
	}
	if len(bootstrap) > 0 {
		dhtOpts = append(dhtOpts, dht.BootstrapPeers(bootstrap...))
	}
	n.dht, err = dht.New(n.host, append(dhtOpts, cfg.DHTOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start DHT: %w", err)
	}

	n.ps, err = pubsub.NewGossipSub(n.ctx, n.host)
	if err != nil {
		return nil, fmt.Errorf("p2p: start gossipsub: %w", err)
	}

	n.wg.Go(n.checkLoop)
	n.wg.Go(n.dialLoop)
	if cfg.Keepalive > 0 {
		n.wg.Go(n.keepaliveLoop)
	}

	for _, ai := range bootstrap {
		n.peers.observe(ai.ID, ai.Addrs, SourceBootstrap)
	}
	n.wg.Go(func() { n.bootstrap(append(slices.Clip(relays), bootstrap...)) })

	if cfg.MDNS {
		n.mdns = mdns.NewMdnsService(n.host, MDNSServiceName, mdnsNotifee{n})
		if err := n.mdns.Start(); err != nil {
			// No multicast-capable interface (some containers, a machine
			// offline): the node still works through bootstrap peers and
			// connect, so this is reported, not fatal.
			n.mdnsErr = fmt.Errorf("p2p: start mDNS: %w", err)
			n.mdns = nil
			n.log.Warn("mDNS unavailable", "err", err)
		}
	}

	n.log.Info("p2p node started", "peer", n.host.ID(), "addrs", n.host.Addrs(),
		"mdns", cfg.MDNS, "bootstrap", len(bootstrap), "known_peers", n.peers.Len())
	return n, nil
}

// bootstrap dials the bootstrap peers, then bootstraps the DHT.
func (n *Node) bootstrap(peers []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, ai := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.PingTimeout*3)
			defer cancel()
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
	if err := n.dht.Bootstrap(n.ctx); err != nil && n.ctx.Err() == nil {
		n.log.Warn("DHT bootstrap", "err", err)
	}
}

// Close stops everything Open started, in reverse order, and waits for the
// node's goroutines. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		n.cancel() // stops keepalive, checks, dials, bootstrap, gossipsub
		if n.sub != nil {
			errs = append(errs, n.sub.Close()) // ends eventLoop
		}
		n.wg.Wait()
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.relay != nil {
			errs = append(errs, n.relay.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.peers != nil {
			errs = append(errs, n.peers.close())
		}
		if n.ds != nil {
			errs = append(errs, n.ds.Close())
		}
		n.closeErr = errors.Join(errs...)
		if n.host != nil {
			n.log.Info("p2p node stopped", "peer", n.host.ID(), "err", n.closeErr)
		}
	})
	return n.closeErr
}

// MDNSError reports why LAN discovery could not start, or nil.
func (n *Node) MDNSError() error { return n.mdnsErr }

// Host returns the libp2p host.
func (n *Node) Host() host.Host { return n.host }

// DHT returns the Kademlia DHT (server mode, prefix proto.Prefix). It is a
// routing.ContentRouting: Provide and FindProvidersAsync.
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// ProviderRecords reports how many DHT provider records p has stored at
// this node, and how many are stored in all (flushed to the datastore; the
// DHT buffers up to a few hundred recent ones in memory first). The bounds
// are MaxProviderRecordsPerPeer and MaxProviderRecords.
func (n *Node) ProviderRecords(p peer.ID) (fromPeer, total int) {
	return n.providers.providerCount(p)
}

// PubSub returns the node's GossipSub router (messages signed by default).
func (n *Node) PubSub() *pubsub.PubSub { return n.ps }

// Datastore returns the node's root datastore. Each package keeps its data
// under its own prefix with namespace.Wrap; "/peers" and "/dht" are taken.
func (n *Node) Datastore() datastore.Batching { return n.ds }

// Peers returns the peer table.
func (n *Node) Peers() *PeerTable { return n.peers }

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs returns the node's addresses with /p2p/<id>, ready to share.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil { // only for an empty ID, which a running host never has
		return nil
	}
	return out
}

// Connect dials addr, which must end in /p2p/<id>, and records the peer
// with source "manual". If the peer answers but speaks no p2pshare
// protocol, Connect returns its ID and an error wrapping ErrNotP2PShare.
func (n *Node) Connect(ctx context.Context, addr multiaddr.Multiaddr) (peer.ID, error) {
	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return "", fmt.Errorf("connect %s: need an address ending in /p2p/<peer-id>: %w", addr, err)
	}
	if ai.ID == n.host.ID() {
		return ai.ID, fmt.Errorf("connect %s: that is this node", addr)
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return ai.ID, fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	// Connect waits for identify only on a connection it made itself; with
	// one already open (the DHT dialled the peer a moment ago) the
	// protocols may not be known yet.
	if err := n.waitIdentified(ctx, ai.ID); err != nil {
		return ai.ID, fmt.Errorf("connect %s: identify: %w", ai.ID, err)
	}
	protos, _ := n.host.Peerstore().GetProtocols(ai.ID)
	if !speaksP2PShare(protos) {
		return ai.ID, fmt.Errorf("connect %s: %w", ai.ID, ErrNotP2PShare)
	}
	n.peers.observe(ai.ID, n.connectedAddrs(ai.ID, ai.Addrs), SourceManual)
	n.peers.markOnline(ai.ID, 0)
	return ai.ID, nil
}

// Forget drops everything the network layer keeps about id: its
// connections, its peer-table row, its addresses and keys in the
// peerstore, its place in the DHT routing table. It reports whether the
// peer had a row. Met again, it comes back as a new peer.
func (n *Node) Forget(id peer.ID) bool {
	if id == n.host.ID() {
		return false
	}
	// Disconnect first, so an identify in flight does not write the row
	// back after it is removed.
	n.host.Network().ClosePeer(id)
	if n.dht != nil {
		n.dht.RoutingTable().RemovePeer(id)
	}
	n.host.Peerstore().RemovePeer(id)
	n.host.Peerstore().ClearAddrs(id)
	return n.peers.Remove(id)
}

// connectedAddrs is what Connect records for id: the peerstore's addresses
// less those of tried (the user's) that no connection uses. With a
// connection already open, host.Connect puts tried in the peerstore and
// returns without dialling them: a wrong port must not become the peer's
// recorded address.
func (n *Node) connectedAddrs(id peer.ID, tried []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	var used []multiaddr.Multiaddr
	for _, c := range n.host.Network().ConnsToPeer(id) {
		used = append(used, c.RemoteMultiaddr())
	}
	has := func(list []multiaddr.Multiaddr, a multiaddr.Multiaddr) bool {
		return slices.ContainsFunc(list, a.Equal)
	}
	return slices.DeleteFunc(n.knownAddrs(id, nil), func(a multiaddr.Multiaddr) bool {
		return has(tried, a) && !has(used, a)
	})
}

// waitIdentified waits until identify has run on every connection to id.
func (n *Node) waitIdentified(ctx context.Context, id peer.ID) error {
	h, ok := n.host.(interface{ IDService() identify.IDService })
	if !ok {
		return nil
	}
	for _, c := range n.host.Network().ConnsToPeer(id) {
		select {
		case <-h.IDService().IdentifyWait(c):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// knownAddrs returns the peerstore's addresses for id, or fallback.
func (n *Node) knownAddrs(id peer.ID, fallback []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	if a := n.host.Peerstore().Addrs(id); len(a) > 0 {
		return a
	}
	return fallback
}

// speaksP2PShare reports whether protos contains a p2pshare protocol.
func speaksP2PShare(protos []protocol.ID) bool {
	for _, p := range protos {
		if strings.HasPrefix(string(p), string(proto.Prefix)+"/") {
			return true
		}
	}
	return false
}

func addrInfos(addrs []multiaddr.Multiaddr) ([]peer.AddrInfo, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	return peer.AddrInfosFromP2pAddrs(addrs...)
}

// keepaliveAddrTTL is how long the peerstore keeps the table's addresses
// for a peer; the keepalive renews it every round for offline peers.
const keepaliveAddrTTL = time.Hour
