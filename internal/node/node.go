// Package node assembles a full p2pshare node from its parts: the libp2p
// host with its DHT and peer table (internal/p2p), the share folder and
// catalog (internal/share) and the fetch protocol (internal/transfer). The
// binary and the whole-node tests both start nodes through it, so what the
// tests run is what users run.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// Config is what a user chooses for a node. Zero values are the defaults.
type Config struct {
	DataDir     string // default ~/.p2pshare
	ShareDir    string // default <data>/files
	DownloadDir string // default <data>/downloads
	ListenAddrs []string
	Bootstrap   []multiaddr.Multiaddr
	MDNS        bool
	Keepalive   time.Duration
	// Beyond the LAN: which DHT, router port mapping, fixed relays, and
	// whether this node relays for others (see p2p.Config).
	DHT          p2p.DHTMode
	PortMap      bool
	Relays       []multiaddr.Multiaddr
	RelayService p2p.RelayMode
	// BBSBits is the size of the node's BBS modulus, made on first start
	// (default and minimum in production: 2048).
	BBSBits int
	// UploadLimit caps what the node serves, bytes per second (0: none).
	UploadLimit int64
	// MaxPeers bounds the peer table (0: p2p.DefaultMaxPeers).
	MaxPeers int
	// OnChange is what happens when a published file is edited in the
	// share folder: republished (the default) or withdrawn, peers told.
	OnChange share.OnChange
	// Audience tells the members of the groups that file audiences name
	// (publish --to GROUP); nil: groups have no members.
	Audience share.AudienceResolver
	Logger   *slog.Logger
	// DHTOptions are passed to the DHT (tests use dht.DisableAutoRefresh).
	DHTOptions []dht.Option
}

// Node is a running p2pshare node.
type Node struct {
	P2P      *p2p.Node
	Share    *share.Service
	Transfer *transfer.Service
	Config   Config

	stopLiveness func()        // ends followLiveness
	livenessDone chan struct{} // closed when followLiveness has returned
}

// DefaultDataDir is ~/.p2pshare.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".p2pshare"
	}
	return filepath.Join(home, ".p2pshare")
}

// Open starts a node. Close it to stop everything it started.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if cfg.ShareDir == "" {
		cfg.ShareDir = filepath.Join(cfg.DataDir, "files")
	}
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = filepath.Join(cfg.DataDir, "downloads")
	}
	if cfg.BBSBits == 0 {
		cfg.BBSBits = 2048
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, d := range []string{cfg.DataDir, cfg.ShareDir, cfg.DownloadDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	bbsKey, err := bbsaes.LoadOrGenerateKey(filepath.Join(cfg.DataDir, "bbs.key"), cfg.BBSBits)
	if err != nil {
		return nil, fmt.Errorf("BBS key: %w", err)
	}

	n := &Node{Config: cfg}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.P2P, err = p2p.Open(ctx, p2p.Config{
		DataDir:      cfg.DataDir,
		ListenAddrs:  cfg.ListenAddrs,
		Bootstrap:    cfg.Bootstrap,
		MDNS:         cfg.MDNS,
		Keepalive:    cfg.Keepalive,
		Logger:       cfg.Logger,
		DHTOptions:   cfg.DHTOptions,
		DHT:          cfg.DHT,
		PortMap:      cfg.PortMap,
		Relays:       cfg.Relays,
		RelayService: cfg.RelayService,
		MaxPeers:     cfg.MaxPeers,
	})
	if err != nil {
		return nil, err
	}
	peers := n.P2P.Peers()
	n.Share, err = share.New(ctx, share.Config{
		Network: share.HostNetwork(n.P2P.Host(), func(id peer.ID) bool {
			info, ok := peers.Get(id)
			return ok && info.Online
		}),
		Routing:   n.P2P.DHT(),
		Broadcast: share.GossipSub(n.P2P.PubSub()),
		Datastore: namespace.Wrap(n.P2P.Datastore(), datastore.NewKey("/share")),
		ShareDir:  cfg.ShareDir,
		// Peers in the peer table (met, not just heard of) keep their
		// entries when others' announcements fill the budget.
		Known: func(id peer.ID) bool {
			_, ok := peers.Get(id)
			return ok
		},
		OnChange: cfg.OnChange,
		Audience: cfg.Audience,
		// A peer taken out of a file's audience stops downloading it now.
		OnAudienceChange: func() {
			if n.Transfer != nil {
				n.Transfer.Recheck()
			}
		},
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.Transfer, err = transfer.New(transfer.Config{
		Host:        n.P2P.Host(),
		Source:      n.Share.Library,
		BBSKey:      bbsKey,
		Finder:      n.Share.Directory,
		Reach:       n.P2P.Reach,
		DownloadDir: cfg.DownloadDir,
		UploadLimit: cfg.UploadLimit,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	events, stop := peers.Subscribe()
	n.stopLiveness, n.livenessDone = stop, make(chan struct{})
	go n.followLiveness(events)
	return n, nil
}

// followLiveness ties transfers to the peer table's keepalive. A peer that
// stops answering pings and has moved no file bytes for livenessGrace is
// disconnected, so streams to it fail now rather than at their I/O timeout
// (a killed peer on QUIC, or one whose cable was pulled, sends nothing). A
// peer whose pings fail while chunks still flow is only busy (pings queue
// behind a saturated link): it is left alone and checked again. A peer that
// comes back online makes waiting downloads look for providers at once.
func (n *Node) followLiveness(events <-chan p2p.PeerEvent) {
	defer close(n.livenessDone)
	suspects := map[peer.ID]bool{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Kind {
			case p2p.PeerOffline:
				suspects[ev.Peer.ID] = true
			case p2p.PeerOnline:
				delete(suspects, ev.Peer.ID)
				n.Transfer.Retry()
			}
		case <-tick.C:
		}
		for id := range suspects {
			if info, ok := n.P2P.Peers().Get(id); ok && info.Online {
				delete(suspects, id)
			} else if !n.Transfer.ActiveWithin(id, livenessGrace) {
				delete(suspects, id)
				n.P2P.Host().Network().ClosePeer(id)
			}
		}
	}
}

// livenessGrace is how long a peer that fails keepalive may go without
// moving file bytes before it is disconnected.
const livenessGrace = 10 * time.Second

// Close stops the node's services in reverse order of start.
func (n *Node) Close() error {
	var errs []error
	if n.stopLiveness != nil {
		n.stopLiveness()
		<-n.livenessDone
	}
	if n.Transfer != nil {
		errs = append(errs, n.Transfer.Close())
	}
	if n.Share != nil {
		errs = append(errs, n.Share.Close())
	}
	if n.P2P != nil {
		errs = append(errs, n.P2P.Close())
	}
	return errors.Join(errs...)
}
