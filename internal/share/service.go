package share

import (
	"cmp"
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

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// Provider announces content IDs on the DHT. *dht.IpfsDHT satisfies it.
type Provider interface {
	Provide(ctx context.Context, c cid.Cid, announce bool) error
}

// Defaults and timeouts.
const (
	DefaultReprovideInterval = 22 * time.Hour
	DefaultCatalogInterval   = 60 * time.Second
	// provideTimeout bounds one Provide call; a failed provide is retried
	// every provideRetry until it succeeds.
	provideTimeout = 2 * time.Minute
	provideRetry   = time.Minute
)

// Config configures a Service.
type Config struct {
	Host      host.Host
	Routing   Provider           // nil: no DHT
	PubSub    *pubsub.PubSub     // nil: no announcements (catalog pulls only)
	Datastore datastore.Batching // already namespaced by the caller; the Service owns every key in it
	ShareDir  string             // created if missing
	ChunkSize int                // 0: manifest.DefaultChunkSize
	// Online reports a peer's liveness (from the peer table); nil: the
	// host is connected to it.
	Online            func(peer.ID) bool
	ReprovideInterval time.Duration // 0: DefaultReprovideInterval
	// CatalogInterval is how often connected peers' catalogs are pulled
	// again; 0: DefaultCatalogInterval.
	CatalogInterval time.Duration
	Logger          *slog.Logger // nil: discard
}

// LocalFile is a regular file in the share folder.
type LocalFile struct {
	Name      string
	Size      int64
	ModTime   time.Time
	Published bool
	CID       cid.Cid // cid.Undef if not published
	// Changed: published, but the file on disk no longer matches what was
	// hashed (size or modification time differ); publish it again.
	Changed bool
}

// Entry is one published file: ours (Published) or another peer's claim.
type Entry struct {
	Name      string
	Size      int64
	CID       cid.Cid
	SHA256    [32]byte
	ChunkSize int
	Published time.Time
}

// PublishResult is the outcome of publishing one name.
type PublishResult struct {
	Entry Entry
	// Already: the same content (same CID) was already published; nothing
	// changed. Entry is the existing entry (its name may differ).
	Already bool
}

// Service is the share folder, the published index and the remote view.
type Service struct {
	h         host.Host
	cfg       Config
	log       *slog.Logger
	dir       string
	chunkSize int

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// opMu serialises changes of the index (publish, unpublish, marking a
	// file changed) so that datastore and memory agree.
	opMu     sync.Mutex
	mu       sync.Mutex // guards index, annClock and closed
	index    map[cid.Cid]*record
	annClock int64
	closed   bool

	provMu   sync.Mutex
	provQ    map[cid.Cid]struct{}
	provWake chan struct{}

	remote remoteView

	topic    *pubsub.Topic
	sub      *pubsub.Subscription
	rejected atomic.Int64 // announcements the validator refused
	evSub    event.Subscription

	pullMu  sync.Mutex
	pulling map[peer.ID]bool
	pullSem chan struct{} // bounds background pulls
}

// New opens the share folder and the published index, registers the
// catalog handler, joins the announce topic, re-provides the published CIDs
// in the background, and pulls catalogs from peers as they connect. Close
// stops everything it started.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Host == nil || cfg.Datastore == nil || cfg.ShareDir == "" {
		return nil, errors.New("share: Config needs Host, Datastore and ShareDir")
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

	dir, err := filepath.Abs(cfg.ShareDir)
	if err != nil {
		return nil, fmt.Errorf("share folder %s: %w", cfg.ShareDir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create share folder: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("share folder %s: not a directory (%v)", dir, err)
	}

	index, bad, err := loadIndex(ctx, cfg.Datastore)
	if err != nil {
		return nil, err
	}
	for _, e := range bad {
		log.Warn("skipping broken published index record", "err", e)
	}

	s := &Service{
		h:         cfg.Host,
		cfg:       cfg,
		log:       log,
		dir:       dir,
		chunkSize: cfg.ChunkSize,
		index:     index,
		provQ:     make(map[cid.Cid]struct{}),
		provWake:  make(chan struct{}, 1),
		pulling:   make(map[peer.ID]bool),
		pullSem:   make(chan struct{}, maxConcurrentPulls),
	}
	s.remote.init()
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))

	s.evSub, err = s.h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	}, eventbus.Name("p2pshare/share"))
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("share: subscribe to host events: %w", err)
	}
	if cfg.PubSub != nil {
		if err := s.joinTopic(); err != nil {
			s.evSub.Close()
			s.cancel()
			return nil, err
		}
	}
	s.h.SetStreamHandler(proto.CatalogID, s.handleCatalog)

	for c, r := range s.index {
		if !r.Changed {
			s.provQ[c] = struct{}{}
		}
	}
	s.goLoop(s.provideLoop)
	s.goLoop(s.eventLoop)
	s.goLoop(s.pullLoop)
	if s.sub != nil {
		s.goLoop(s.announceLoop)
	}
	return s, nil
}

func (s *Service) goLoop(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Close stops the Service: the catalog handler, the announce subscription,
// the re-provide and pull loops. The datastore is left open (the caller
// owns it).
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(proto.CatalogID)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		var errs []error
		if err := s.evSub.Close(); err != nil {
			errs = append(errs, err)
		}
		if s.sub != nil {
			s.sub.Cancel()
		}
		s.wg.Wait()
		if s.topic != nil {
			// If the PubSub was shut down first, the topic went with it.
			if err := s.topic.Close(); err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("close announce topic: %w", err))
			}
			if err := s.cfg.PubSub.UnregisterTopicValidator(proto.AnnounceTopic); err != nil {
				errs = append(errs, fmt.Errorf("unregister announce validator: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// online reports a peer's liveness.
func (s *Service) online(p peer.ID) bool {
	if s.cfg.Online != nil {
		return s.cfg.Online(p)
	}
	return s.h.Network().Connectedness(p) == network.Connected
}

// ShareDir is the absolute path of the share folder.
func (s *Service) ShareDir() string { return s.dir }

// Files lists the regular files directly in the share folder. Hidden files
// (temp files start with "."), subfolders, names CheckName refuses and
// symlinks leading out of the folder are left out.
func (s *Service) Files() ([]LocalFile, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list share folder %s: %w", s.dir, err)
	}
	s.mu.Lock()
	byName := make(map[string]*record, len(s.index))
	for _, r := range s.index {
		byName[r.Name] = r
	}
	recs := make(map[string]record, len(byName))
	for n, r := range byName {
		recs[n] = *r
	}
	s.mu.Unlock()

	var out []LocalFile
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || CheckName(name) != nil {
			continue
		}
		if de.IsDir() {
			continue
		}
		fi, err := statShared(s.dir, name) // follows symlinks only inside the folder
		if err != nil {
			continue
		}
		lf := LocalFile{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
		if r, ok := recs[name]; ok {
			lf.Published = true
			lf.CID = r.cid
			lf.Changed = r.Changed || r.Size != fi.Size() || r.ModTime != fi.ModTime().UnixNano()
		}
		out = append(out, lf)
	}
	slices.SortFunc(out, func(a, b LocalFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Publish hashes the named files of the share folder, records them in the
// index, provides their CIDs on the DHT (in the background: a provide
// failure never fails a publish; it is retried) and announces them.
// Publishing a name whose content changed since its last publish withdraws
// the old CID. Every name is tried; the results of those that succeeded
// are returned together with an error joining the failures.
func (s *Service) Publish(ctx context.Context, names ...string) ([]PublishResult, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	var out []PublishResult
	var errs []error
	for _, name := range names {
		res, err := s.publishOne(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("publish %q: %w", name, err))
			continue
		}
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}

func (s *Service) publishOne(ctx context.Context, name string) (PublishResult, error) {
	f, fi, err := openShared(s.dir, name)
	if err != nil {
		return PublishResult{}, err
	}
	defer f.Close()
	m, err := manifest.Build(ctx, f, fi.Size(), s.chunkSize)
	if err != nil {
		return PublishResult{}, err
	}
	if fi2, err := f.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return PublishResult{}, fmt.Errorf("file changed while it was being hashed; try again")
	}
	mb := m.Marshal()
	c := manifest.CIDOf(mb)

	s.mu.Lock()
	existing := s.index[c]
	var olds []*record
	for oc, r := range s.index {
		if r.Name == name && oc != c {
			olds = append(olds, r)
		}
	}
	if existing != nil && !existing.Changed {
		e := existing.entry()
		s.mu.Unlock()
		return PublishResult{Entry: e, Already: true}, nil
	}
	s.mu.Unlock()

	rec := &record{
		CID:       c.String(),
		Name:      name,
		Size:      fi.Size(),
		ModTime:   fi.ModTime().UnixNano(),
		SHA256:    m.FileHash[:],
		ChunkSize: m.ChunkSize,
		Published: time.Now().Round(0).UTC(),
		cid:       c,
		m:         m,
	}
	var del []cid.Cid
	for _, o := range olds {
		del = append(del, o.cid)
	}
	if err := storeRecords(ctx, s.cfg.Datastore, []*record{rec}, map[cid.Cid][]byte{c: mb}, del); err != nil {
		return PublishResult{}, err
	}
	s.mu.Lock()
	s.index[c] = rec
	for _, o := range olds {
		delete(s.index, o.cid)
	}
	s.mu.Unlock()
	s.dequeueProvide(del...)
	s.enqueueProvide(c)
	if len(olds) > 0 {
		var oldEntries []Entry
		for _, o := range olds {
			oldEntries = append(oldEntries, o.entry())
			s.log.Info("withdrew old version", "name", name, "cid", o.cid, "new", c)
		}
		s.announce(proto.Announcement_UNPUBLISH, oldEntries)
	}
	e := rec.entry()
	s.announce(proto.Announcement_PUBLISH, []Entry{e})
	s.log.Info("published", "name", name, "cid", c, "size", rec.Size)
	return PublishResult{Entry: e}, nil
}

// Published lists this node's published entries, sorted by name,
// including any whose file changed on disk (LocalFile.Changed): those stay
// listed until published again or withdrawn, but are not served.
func (s *Service) Published() []Entry {
	s.mu.Lock()
	out := make([]Entry, 0, len(s.index))
	for _, r := range s.index {
		out = append(out, r.entry())
	}
	s.mu.Unlock()
	sortEntries(out)
	return out
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.CID.String(), b.CID.String()))
	})
}

// Unpublish withdraws published entries given by name or CID: removed from
// the index, no longer re-provided (DHT records cannot be withdrawn; they
// expire), withdrawal announced. If any argument is not published, nothing
// is withdrawn and the error (wrapping ErrNotPublished) names it.
func (s *Service) Unpublish(ctx context.Context, namesOrCIDs ...string) ([]Entry, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	sel := make(map[cid.Cid]*record)
	var errs []error
	for _, arg := range namesOrCIDs {
		if c, err := cid.Decode(arg); err == nil {
			if r, ok := s.index[c]; ok {
				sel[c] = r
				continue
			}
		}
		found := false
		for c, r := range s.index {
			if r.Name == arg {
				sel[c] = r
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("unpublish %q: %w (no published name or CID matches)", arg, ErrNotPublished))
		}
	}
	s.mu.Unlock()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s.withdraw(ctx, sel, proto.Announcement_UNPUBLISH)
}

// UnpublishAll withdraws every published entry.
func (s *Service) UnpublishAll(ctx context.Context) ([]Entry, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	sel := make(map[cid.Cid]*record, len(s.index))
	for c, r := range s.index {
		sel[c] = r
	}
	s.mu.Unlock()
	return s.withdraw(ctx, sel, proto.Announcement_UNPUBLISH_ALL)
}

// withdraw removes sel from the index and announces it. Callers hold opMu.
func (s *Service) withdraw(ctx context.Context, sel map[cid.Cid]*record, kind proto.Announcement_Kind) ([]Entry, error) {
	if len(sel) == 0 && kind != proto.Announcement_UNPUBLISH_ALL {
		return nil, nil
	}
	var del []cid.Cid
	var out []Entry
	for c, r := range sel {
		del = append(del, c)
		out = append(out, r.entry())
	}
	if err := storeRecords(ctx, s.cfg.Datastore, nil, nil, del); err != nil {
		return nil, fmt.Errorf("unpublish: %w", err)
	}
	s.mu.Lock()
	for _, c := range del {
		delete(s.index, c)
	}
	s.mu.Unlock()
	s.dequeueProvide(del...)
	sortEntries(out)
	if kind == proto.Announcement_UNPUBLISH_ALL {
		s.announce(kind, nil)
	} else {
		s.announce(kind, out)
	}
	for _, e := range out {
		s.log.Info("unpublished", "name", e.Name, "cid", e.CID)
	}
	return out, nil
}

// Open returns the manifest of a published CID and the file, opened for
// reading, for the fetch protocol; the caller closes the file. It fails
// with ErrNotPublished for CIDs this node does not publish, and with
// ErrChanged when the file's size or modification time differ from when it
// was hashed: the entry is then marked changed, withdrawn from peers and no
// longer served under its old CID.
//
// The manifest was verified when the file was published (or when the index
// was loaded) and is kept in memory: Open reads nothing but the file's
// metadata. The manifest is shared; callers must not modify it.
func (s *Service) Open(c cid.Cid) (*manifest.Manifest, *os.File, error) {
	s.mu.Lock()
	r, ok := s.index[c]
	var rec record
	if ok {
		rec = *r
	}
	s.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("open %s: %w", c, ErrNotPublished)
	}
	if rec.Changed {
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, ErrChanged)
	}
	f, fi, err := openShared(s.dir, rec.Name)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadName) {
			s.markChanged(c, r, "file is gone or no longer a regular file in the share folder")
			return nil, nil, fmt.Errorf("open %s (%q): %w: %v", c, rec.Name, ErrChanged, err)
		}
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, err)
	}
	if fi.Size() != rec.Size || fi.ModTime().UnixNano() != rec.ModTime {
		f.Close()
		s.markChanged(c, r, fmt.Sprintf("size %d -> %d, mtime %s -> %s", rec.Size, fi.Size(),
			time.Unix(0, rec.ModTime).Format(time.RFC3339Nano), fi.ModTime().Format(time.RFC3339Nano)))
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, ErrChanged)
	}
	if rec.m == nil { // a Changed record loaded without its manifest: never served
		f.Close()
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, ErrChanged)
	}
	return rec.m, f, nil
}

// markChanged marks r (at c) as changed at once in memory, so it is not
// served again; persisting and announcing the withdrawal happen in the
// background because Open must not wait for a publish holding opMu.
func (s *Service) markChanged(c cid.Cid, r *record, why string) {
	s.mu.Lock()
	if s.index[c] != r || r.Changed {
		s.mu.Unlock()
		return
	}
	r.Changed = true
	snapshot := *r
	s.mu.Unlock()
	s.log.Warn("published file changed on disk; no longer served under its old CID; publish it again",
		"name", snapshot.Name, "cid", c, "change", why)
	s.dequeueProvide(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.opMu.Lock()
		defer s.opMu.Unlock()
		s.mu.Lock()
		still := s.index[c] == r
		s.mu.Unlock()
		if !still {
			return
		}
		if err := storeRecords(s.ctx, s.cfg.Datastore, []*record{&snapshot}, nil, nil); err != nil {
			s.log.Warn("could not record changed file in the index", "name", snapshot.Name, "cid", c, "err", err)
		}
		s.announce(proto.Announcement_UNPUBLISH, []Entry{snapshot.entry()})
	}()
}

// enqueueProvide schedules c to be provided on the DHT.
func (s *Service) enqueueProvide(cs ...cid.Cid) {
	if s.cfg.Routing == nil {
		return
	}
	s.provMu.Lock()
	for _, c := range cs {
		s.provQ[c] = struct{}{}
	}
	s.provMu.Unlock()
	select {
	case s.provWake <- struct{}{}:
	default:
	}
}

func (s *Service) dequeueProvide(cs ...cid.Cid) {
	s.provMu.Lock()
	for _, c := range cs {
		delete(s.provQ, c)
	}
	s.provMu.Unlock()
}

// provideLoop provides queued CIDs, re-provides every published CID each
// ReprovideInterval and retries failed provides every provideRetry.
func (s *Service) provideLoop() {
	if s.cfg.Routing == nil {
		return
	}
	reprovide := time.NewTicker(s.cfg.ReprovideInterval)
	defer reprovide.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	retrying := false
	failed := make(map[cid.Cid]struct{})
	select {
	case s.provWake <- struct{}{}: // the index loaded at start
	default:
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.provWake:
		case <-reprovide.C:
			s.mu.Lock()
			var all []cid.Cid
			for c, r := range s.index {
				if !r.Changed {
					all = append(all, c)
				}
			}
			s.mu.Unlock()
			s.enqueueProvide(all...)
			continue
		case <-retry.C:
			retrying = false
			var again []cid.Cid
			for c := range failed {
				again = append(again, c)
			}
			clear(failed)
			s.enqueueProvide(again...)
			continue
		}
		for {
			s.provMu.Lock()
			var c cid.Cid
			for c = range s.provQ {
				break
			}
			if c.Defined() {
				delete(s.provQ, c)
			}
			s.provMu.Unlock()
			if !c.Defined() || s.ctx.Err() != nil {
				break
			}
			s.mu.Lock()
			r := s.index[c]
			serve := r != nil && !r.Changed
			s.mu.Unlock()
			if !serve {
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, provideTimeout)
			err := s.cfg.Routing.Provide(ctx, c, true)
			cancel()
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.log.Warn("DHT provide failed; will retry", "cid", c, "err", err, "retry_in", provideRetry)
				failed[c] = struct{}{}
				continue
			}
			delete(failed, c)
			s.log.Debug("provided on the DHT", "cid", c)
		}
		if len(failed) > 0 && !retrying {
			retrying = true
			retry.Reset(min(provideRetry, s.cfg.ReprovideInterval))
		}
	}
}
