package share

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// DefaultCatalogInterval is how often connected peers' catalogs are
// pulled again.
const DefaultCatalogInterval = 60 * time.Second

// Config configures a Service.
type Config struct {
	Network   Network   // required
	Routing   Routing   // nil: no DHT
	Broadcast Broadcast // nil: no announcements (catalog pulls only)
	// Datastore is already namespaced by the caller; the Library owns
	// /published and /manifest in it, the Directory /announced.
	Datastore datastore.Batching
	ShareDir  string // created if missing
	ChunkSize int    // 0: manifest.DefaultChunkSize
	// ReprovideInterval is how often the published CIDs are provided on
	// the DHT again; 0: DefaultReprovideInterval.
	ReprovideInterval time.Duration
	// CatalogInterval is how often connected peers' catalogs are pulled
	// again; 0: DefaultCatalogInterval.
	CatalogInterval time.Duration
	// Known reports whether a peer is one this node has met (internal/node
	// passes its peer table's): such peers keep their entries when others'
	// announcements fill the budget. nil: only peers seen connected have
	// that standing.
	Known func(peer.ID) bool
	// Hidden reports whether a peer's files are hidden (it is blocked):
	// they are left out of every listing and lookup. nil: none.
	Hidden func(peer.ID) bool
	// OnChange is what the Library does when a published file changes
	// on disk; "" is OnChangeRepublish.
	OnChange OnChange
	// Audience tells the members of the groups that audiences name
	// (audience.go); asked at every check. nil: groups have no members.
	Audience AudienceResolver
	// OnAudienceChange, if set, is called after who may fetch a published
	// entry changed (a new audience, AudiencesChanged): internal/node
	// makes the fetch server close what revoked peers are downloading.
	OnAudienceChange func()
	Logger           *slog.Logger // nil: discard
}

// Entry is one published file: ours (Published) or another peer's claim.
type Entry struct {
	Name      string
	Size      int64
	CID       cid.Cid
	SHA256    [32]byte
	ChunkSize int
	Published time.Time
	// Collection: a published folder (internal/collection): CID names its
	// document, Size is the total of its Files files, SHA256 and
	// ChunkSize are zero.
	Collection bool
	Files      int
	// Audience is who may see and fetch one of our entries (public: zero);
	// always zero in another peer's claim.
	Audience Audience
	// Aliases are the other names the same content is published under by
	// the same publisher (the same bytes in several files: one CID, one
	// entry, one audience), at most maxNamesPerEntry-1, none equal to
	// Name. On the wire each name is an entry of its own (names.go).
	Aliases []string

	// heard, for another peer's claim, is our clock when that peer first
	// gave the CID this name (see merged).
	heard int64
}

// Service is a node's Library and Directory, started together: they share
// the announce topic (the Library sends on it, the Directory receives),
// and the Directory resolves a CID this node publishes to this node too.
// Their methods are the Service's.
type Service struct {
	*Library
	*Directory

	topic     Topic // nil: no announcements
	closeOnce sync.Once
	closeErr  error
}

// New starts a Library and a Directory: it opens the share folder and the
// published index, serves the catalog, joins the announce topic, provides
// the published CIDs on the DHT in the background, and pulls catalogs
// from peers as they connect. Close stops everything it started.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	if cfg.Network == nil || cfg.Datastore == nil || cfg.ShareDir == "" {
		return nil, errors.New("share: Config needs Network, Datastore and ShareDir")
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = manifest.DefaultChunkSize
	}
	if cfg.ChunkSize < manifest.MinChunkSize || cfg.ChunkSize > manifest.MaxChunkSize {
		return nil, fmt.Errorf("share: chunk size %d out of range [%d, %d]", cfg.ChunkSize, manifest.MinChunkSize, manifest.MaxChunkSize)
	}
	if cfg.ReprovideInterval <= 0 {
		cfg.ReprovideInterval = DefaultReprovideInterval
	}
	if cfg.CatalogInterval <= 0 {
		cfg.CatalogInterval = DefaultCatalogInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "share")

	s := &Service{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// The Directory validates announcements, so it exists before the
	// topic; it starts once the Library it resolves our own CIDs with does.
	s.Directory = newDirectory(cfg, log)
	if cfg.Broadcast != nil {
		s.topic, err = cfg.Broadcast.Join(proto.AnnounceTopic, s.Directory.validateAnnouncement)
		if err != nil {
			return nil, fmt.Errorf("share: announce topic: %w", err)
		}
	}
	s.Library, err = newLibrary(ctx, cfg, log, s.topic)
	if err != nil {
		return nil, err
	}
	if err = s.Directory.loadMarks(ctx); err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	if err = s.Directory.start(s.Library, s.topic); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the Library, then the Directory, then leaves the announce
// topic. The datastore is left open (the caller owns it).
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.Library != nil {
			errs = append(errs, s.Library.Close())
		}
		errs = append(errs, s.Directory.Close())
		if s.topic != nil {
			errs = append(errs, s.topic.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
