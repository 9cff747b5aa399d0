package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// GetOptions tunes one download.
type GetOptions struct {
	Name   string    // file name to save as (from the catalog); default: the CID string
	Output string    // explicit path; it must not exist (ErrExists), never overwritten
	From   []peer.ID // only these providers
	// Hints are providers to try first, with their addresses (a ticket's
	// publisher); the Finder is asked as well.
	Hints []peer.AddrInfo
	// Expect, if set, is what the catalogue or ticket said the file is:
	// a manifest that disagrees is refused before anything is allocated.
	Expect *Expect
	// Only selects part of a collection: the files and empty folders
	// whose path, or one of whose parent folders, matches one of the
	// patterns (path.Match; a pattern ending in "/" matches folders only).
	// Ignored for a file. See selectEntries.
	Only []string
	// Into, if set and Output is not, is the folder the download is saved
	// in under its own name (numbered if taken) instead of the downloads
	// folder.
	Into string
	// Progress is called about every 100 ms and once at the end, from one
	// goroutine, never after Get returned. It must not call Cancel for
	// the same CID (Cancel waits for Get); cancel Get's ctx instead.
	Progress func(Progress)

	// Again: make another copy even if a completed download of the CID
	// is still where it was put (see alreadyFile, alreadyFolder). Without
	// it, a Get that saves under the default name in the downloads folder
	// (no Output, no Into) of a CID already downloaded returns that
	// download (Result.Already) and fetches nothing.
	Again bool

	// fileOnly: the CID must name a file (a collection's member), not a
	// collection.
	fileOnly bool
}

// Expect is what a catalogue entry or a ticket says a CID's file is.
type Expect struct {
	Size   int64
	SHA256 [32]byte
	Source string // "ticket", "catalogue": for the error message
	// Collection: the CID names a collection (a published folder) of
	// Files files (0: not said) and Size bytes in all; SHA256 is unused.
	Collection bool
	Files      int
}

// ErrMismatch says the manifest behind a CID is not the file the
// catalogue or ticket described.
var ErrMismatch = errors.New("the file behind this CID is not the one described")

// check compares a verified manifest with what was expected.
func (e *Expect) check(m *manifest.Manifest) error {
	return e.checkHeader(manifest.Header{Size: m.Size, FileHash: m.FileHash})
}

// checkHeader compares a manifest's header with what was expected.
func (e *Expect) checkHeader(h manifest.Header) error {
	if e == nil {
		return nil
	}
	if e.Collection {
		return fmt.Errorf("%w: the %s says a folder, the content ID names a file", ErrMismatch, e.Source)
	}
	if h.Size != e.Size {
		return fmt.Errorf("%w: the %s says %d bytes, the manifest %d bytes", ErrMismatch, e.Source, e.Size, h.Size)
	}
	if h.FileHash != manifest.Hash(e.SHA256) {
		return fmt.Errorf("%w: the %s's SHA-256 differs from the manifest's", ErrMismatch, e.Source)
	}
	return nil
}

// checkCollection compares a verified collection document with what was
// expected.
func (e *Expect) checkCollection(c *collection.Collection) error {
	switch {
	case e == nil:
		return nil
	case !e.Collection:
		return fmt.Errorf("%w: the %s says a file, the content ID names a folder", ErrMismatch, e.Source)
	case c.TotalSize() != e.Size:
		return fmt.Errorf("%w: the %s says %d bytes, the folder holds %d bytes", ErrMismatch, e.Source, e.Size, c.TotalSize())
	case e.Files > 0 && c.Files() != e.Files:
		return fmt.Errorf("%w: the %s says %d files, the folder holds %d", ErrMismatch, e.Source, e.Files, c.Files())
	}
	return nil
}

// unreachable is implemented by the errors Config.Reach returns when a
// provider cannot carry file bytes at all (reachable only through a
// limited relay, say): unlike a lost provider it is not worth waiting for,
// so a Get whose every provider is unreachable fails with the reason.
type unreachable interface{ Unreachable() bool }

func isUnreachable(err error) bool {
	var u unreachable
	return errors.As(err, &u) && u.Unreachable()
}

// Progress is a snapshot of a running download.
type Progress struct {
	CID         cid.Cid
	Name        string
	Total, Done int64   // bytes
	Rate        float64 // bytes/s over the last seconds
	Providers   int     // providers downloading now
	ETA         time.Duration
	// Files and FilesDone count the files of a collection (0 for a file).
	Files, FilesDone int
}

// Result describes a finished download.
type Result struct {
	Path      string
	Size      int64
	SHA256    [32]byte
	CID       cid.Cid
	Duration  time.Duration
	Providers []peer.ID // providers that sent verified chunks (or the manifest)
	Fetched   int       // chunks fetched and verified by this Get
	Resumed   int       // chunks already verified on disk when it started
	Bad       []peer.ID // providers dropped for sending bad data

	// FetchedBytes is what the Fetched chunks hold: the bytes this Get
	// moved, for its rate (a resumed download already had the others).
	FetchedBytes int64

	// ChunkSize is the file's chunk size (its manifest's).
	ChunkSize int
	// Collection: Path is a folder, the collection's tree (or the part
	// GetOptions.Only selected) with Files files, of which Copied were
	// copied from files this node already had (not fetched) and
	// FilesResumed were found done by an earlier, interrupted Get.
	Collection   bool
	Files        int
	Copied       int
	FilesResumed int

	// Already: nothing was fetched; Path is a completed download of the
	// CID found still there and still the same, as Verified says
	// (VerifiedHash or VerifiedMtime). See GetOptions.Again.
	Already  bool
	Verified string
}

// fatalError is a local failure (disk) that ends the whole Get.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// getter is one running Get.
type getter struct {
	s      *Service
	c      cid.Cid
	opt    GetOptions
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when Get has returned
	swarm  *swarm        // its providers
	// setupMu is held by the worker whose manifest arrived first while
	// it sets up the partial download (every worker asks its provider
	// for the manifest at once; see ensureManifest).
	setupMu      sync.Mutex
	ready        chan struct{} // closed once the manifest and partial are set up
	readyOnce    sync.Once
	startAt      time.Time
	fetched      atomic.Int64 // chunks fetched and verified
	fetchedBytes atomic.Int64 // bytes of those chunks
	// Written only by the goroutine running Get, before the workers start
	// or after they have stopped.
	resumed int // chunks already verified on disk when it started
	// trusted marks the chunks the done bitmap vouched for when the
	// partial download was opened: verified by an earlier Get, not by
	// this one; finish verifies them again (checkTrusted).
	trusted []bool
	// fast: no partial download of c was on disk when Get started, so a
	// file of at most one chunk is fetched into memory (newMemPartial) and
	// written once, into place, by finish.
	fast bool

	mu           sync.Mutex
	name         string
	part         *partial
	sched        *scheduler
	rate         float64  // bytes/s, measured by the progress goroutine
	manifestFrom peer.ID  // the provider that sent the manifest
	coll         *collGet // set once the CID turned out to be a collection
}

// Get downloads the file with content ID c, or resumes its partial
// download. It returns when the file is in place and verified, or when ctx
// ends (ErrPaused: the partial state is kept) or Cancel stops it
// (ErrCanceled: the partial state is removed). While no provider is
// reachable it waits, asking the Finder again with backoff.
func (s *Service) Get(ctx context.Context, c cid.Cid, opt GetOptions) (*Result, error) {
	if err := manifest.CheckCID(c); err != nil {
		return nil, err
	}
	if opt.Output != "" {
		if _, err := os.Lstat(opt.Output); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrExists, opt.Output)
		}
		if fi, err := os.Stat(filepath.Dir(opt.Output)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("transfer: output directory %s: not a directory", filepath.Dir(opt.Output))
		}
	}
	g, err := s.register(ctx, c, opt)
	if err != nil {
		return nil, err
	}
	defer g.unregister()
	if cf, ok := s.resumeCollection(c); ok && !opt.fileOnly {
		return g.runCollection(cf, true)
	}
	if g.dedup() {
		if _, err := os.Lstat(partialDir(s.cfg.DownloadDir, c)); err != nil { // none to resume
			if res, ok := s.alreadyFile(g.ctx, c); ok {
				return res, nil
			}
		}
	}
	res, err := g.run()
	if cf := (*collectionFound)(nil); errors.As(err, &cf) {
		if opt.fileOnly {
			return nil, fmt.Errorf("transfer %s: a folder where a file was expected", c)
		}
		if opt.Output != "" {
			if _, err := os.Lstat(opt.Output); err == nil {
				return nil, fmt.Errorf("%w: %s", ErrExists, opt.Output)
			}
		}
		return g.runCollection(cf, false)
	}
	return res, err
}

// dedup reports whether a completed download of g's CID, still there,
// answers g instead of a new copy: unless asked for another copy, or for
// a place of the caller's choosing (Output, Into), or g gets a folder's
// member into its staging folder.
func (g *getter) dedup() bool {
	return !g.opt.Again && !g.opt.fileOnly && g.opt.Output == "" && g.opt.Into == ""
}

// register creates the getter of c and enters it in s.gets; a CID that is
// being downloaded or whose partial data Cancel is removing is refused.
func (s *Service) register(ctx context.Context, c cid.Cid, opt GetOptions) (*getter, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &getter{
		s: s, c: c, opt: opt, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), ready: make(chan struct{}),
		startAt: time.Now(), name: SanitizeName(opt.Name, c),
	}
	g.swarm = newSwarm(g)
	key := c.KeyString()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	switch {
	case s.closed:
		err = ErrClosed
	case s.gets[key] != nil:
		err = fmt.Errorf("%w: %s", ErrInProgress, c)
	case s.canceling[key] > 0:
		err = fmt.Errorf("%w: %s: it is being cancelled", ErrInProgress, c)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	s.gets[key] = g
	s.wg.Add(1)
	return g, nil
}

// unregister ends a Get, in this order: it leaves s.gets (a new Get of
// the CID may start), g.done is closed (a Cancel waiting for it goes on),
// the Service's wait group is released (Close waits for every Get), and
// its context is released.
func (g *getter) unregister() {
	s := g.s
	s.mu.Lock()
	delete(s.gets, g.c.KeyString())
	s.mu.Unlock()
	close(g.done)
	s.wg.Done()
	g.cancel(nil)
}

func (g *getter) log() *slog.Logger { return g.s.log.With("cid", g.c.String()) }

// run is the course of a Get: resume the partial download on disk if
// there is one, download until every chunk is verified, then finish
// (verify again the chunks a resumed download trusted, and place the
// file); if finish finds chunks damaged on disk, download them again. A Get that ends otherwise keeps or removes what was
// verified (unfinished).
func (g *getter) run() (*Result, error) {
	dir := partialDir(g.s.cfg.DownloadDir, g.c)
	if p, done, err := openPartial(dir, g.c); err == nil {
		g.mu.Lock()
		if g.opt.Name == "" {
			g.name = SanitizeName(p.name, g.c)
		}
		name := g.name
		g.mu.Unlock()
		if err := p.rename(name); err != nil {
			g.log().Warn("save the new name of a partial download", "err", err)
		}
		g.resumed = p.resumed
		g.trusted = slices.Clone(done)
		g.setup(p, done)
		g.log().Info("resuming download", "verified_chunks", p.resumed, "of", len(done))
		_, have := g.sched.progress()
		if err := g.s.checkSpace(p.m.Size - have); err != nil {
			return nil, g.unfinished(&fatalError{fmt.Errorf("transfer %s: %w", g.c, err)})
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		g.log().Warn("discarding unreadable partial download", "dir", dir, "err", err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("transfer: remove bad partial download: %w", err)
		}
		g.fast = true
	} else {
		g.fast = true
	}

	stopProgress := g.startProgress()
	var res *Result
	var err error
	for {
		stopBackground := g.startBackground()
		err = g.download()
		stopBackground()
		if err == nil {
			res, err = g.finish()
		}
		if !errors.Is(err, errRefetch) {
			break
		}
	}
	stopProgress()
	if err != nil {
		return nil, g.unfinished(err)
	}
	return res, nil
}

// download runs until every chunk is verified on disk, or ctx ends.
func (g *getter) download() error {
	if g.complete() {
		return nil
	}
	return g.swarm.run()
}

// complete reports whether every chunk is verified on disk.
func (g *getter) complete() bool {
	sc := g.getSched()
	return sc != nil && sc.complete()
}

// setup installs the partial download and its scheduler.
func (g *getter) setup(p *partial, done []bool) {
	per := g.s.cfg.ChunksPerRequest
	if per <= 0 {
		per = min(max(DefaultRequestBytes/p.m.ChunkSize, 1), proto.MaxChunksPerRequest)
	}
	g.mu.Lock()
	g.part = p
	g.sched = newScheduler(done, per, p.m.ChunkLen)
	g.mu.Unlock()
	g.readyOnce.Do(func() { close(g.ready) })
}

func (g *getter) getSched() *scheduler {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sched
}

// ensureManifest makes sure the manifest and the partial download exist,
// fetching the manifest from this provider if nobody has yet. Every
// worker asks its own provider at once, so a provider that never answers
// does not hold up the others; the first valid manifest wins, and one that
// arrives later is dropped unread (fetchManifest). Its header is checked
// (checkHeader) before the rest is read.
func (g *getter) ensureManifest(ctx context.Context, cn *conn) error {
	select {
	case <-g.ready:
		return nil
	default:
	}
	if err := cn.begin(); err != nil {
		return err
	}
	m, mb, err := cn.fetchManifest(g.checkHeader, g.ready)
	if cf := (*collectionFound)(nil); errors.As(err, &cf) {
		cn.done()
		return &fatalError{cf} // ends the round: Get downloads a collection instead
	}
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	cn.done()
	if m == nil {
		return nil // another provider's manifest won
	}
	g.setupMu.Lock()
	defer g.setupMu.Unlock()
	if g.getSched() != nil {
		return nil
	}
	// Verified now: a mismatch is the CID's, whoever serves it.
	if err := g.opt.Expect.check(m); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
	}
	var p *partial
	if g.fast && len(m.Chunks) <= 1 {
		p = newMemPartial(g.c, m, mb, g.name)
	} else if p, err = createPartial(partialDir(g.s.cfg.DownloadDir, g.c), g.c, m, mb, g.name); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: create partial download: %w", g.c, err)}
	}
	g.mu.Lock()
	g.manifestFrom = cn.peer
	g.mu.Unlock()
	g.setup(p, make([]bool, len(m.Chunks)))
	return nil
}
