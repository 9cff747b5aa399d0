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
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/invite"
	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/people"
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
	// Nick is the name this node says for itself to its peers (a claim
	// they show as such, never an identity); "" says none.
	Nick string
	// Audience tells the members of the groups that file audiences name
	// (publish --to GROUP); nil: the node's People (group add ...).
	Audience share.AudienceResolver
	Logger   *slog.Logger
	// DHTOptions are passed to the DHT (tests use dht.DisableAutoRefresh).
	DHTOptions []dht.Option
	// DHTRequestRate bounds each peer's DHT requests per second (see
	// p2p.Config); 0 means the default, negative turns it off.
	DHTRequestRate float64
}

// peopleNamespace is internal/people's part of the datastore.
const peopleNamespace = "/people"

// Node is a running p2pshare node.
type Node struct {
	P2P      *p2p.Node
	Share    *share.Service
	Transfer *transfer.Service
	// People is what the user says about peers: names, groups, blocks.
	People *people.Book
	Invite *invite.Service
	Config Config

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

	var agent string
	if cfg.Nick != "" {
		if agent, err = people.AgentVersion(cfg.Nick); err != nil {
			return nil, fmt.Errorf("nick: %w", err)
		}
	}

	n := &Node{Config: cfg}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.P2P, err = p2p.Open(ctx, p2p.Config{
		DataDir:        cfg.DataDir,
		ListenAddrs:    cfg.ListenAddrs,
		Bootstrap:      cfg.Bootstrap,
		MDNS:           cfg.MDNS,
		Keepalive:      cfg.Keepalive,
		Logger:         cfg.Logger,
		DHTOptions:     cfg.DHTOptions,
		DHTRequestRate: cfg.DHTRequestRate,
		DHT:            cfg.DHT,
		PortMap:        cfg.PortMap,
		Relays:         cfg.Relays,
		RelayService:   cfg.RelayService,
		MaxPeers:       cfg.MaxPeers,
		UserAgent:      agent,
		// The blocks are loaded before the host starts, so a blocked peer
		// is refused from the first connection.
		GaterFromDatastore: func(ds datastore.Batching) (connmgr.ConnectionGater, error) {
			var err error
			n.People, err = people.Open(ctx, namespace.Wrap(ds, datastore.NewKey(peopleNamespace)), "")
			if err != nil {
				return nil, err
			}
			return n.People.Gater(), nil
		},
	})
	if err != nil {
		return nil, err
	}
	n.People.SetSelf(n.P2P.ID())
	peers := n.P2P.Peers()
	audience := cfg.Audience
	if audience == nil {
		audience = n.People
	}
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
		Hidden:   n.People.Blocked,
		OnChange: cfg.OnChange,
		Audience: audience,
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
	n.People.SetHooks(people.Hooks{
		Blocked: func(id peer.ID) {
			n.P2P.Host().Network().ClosePeer(id)
			n.Share.DropPeer(id)
		},
		Forgotten: func(id peer.ID) {
			n.P2P.Forget(id)
			n.Share.DropPeer(id)
		},
		// A group's members changed (or a peer was forgotten): peers
		// that joined or left a file's audience are told.
		Changed: func() { n.Share.AudiencesChanged() },
	})
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
	n.Invite, err = invite.New(invite.Config{
		Host:    n.P2P.Host(),
		Routing: n.P2P.DHT(),
		Record:  n.recordInvited,
		// An accepted invitation names the peer and puts it in the
		// invitation's group.
		Contacts: n.People,
		Logger:   cfg.Logger,
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

// recordInvited records a peer an invitation brought as added by hand
// (valued: kept when the table is full), over the connection the
// invitation used, which may be a limited relayed one.
func (n *Node) recordInvited(ctx context.Context, p peer.ID) error {
	addr, err := multiaddr.NewMultiaddr("/p2p/" + p.String())
	if err != nil {
		return err
	}
	_, err = n.P2P.Connect(network.WithAllowLimitedConn(ctx, "p2pshare-invite"), addr)
	return err
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
	if n.Invite != nil {
		errs = append(errs, n.Invite.Close())
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
