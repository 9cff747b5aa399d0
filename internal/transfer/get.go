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

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// GetOptions tunes one download.
type GetOptions struct {
	Name   string    // file name to save as (from the catalog); default: the CID string
	Output string    // explicit path; it must not exist (ErrExists), never overwritten
	From   []peer.ID // only these providers
	// Progress is called about every 100 ms and once at the end, from one
	// goroutine, never after Get returned. It must not call Cancel for
	// the same CID (Cancel waits for Get); cancel Get's ctx instead.
	Progress func(Progress)
}

// Progress is a snapshot of a running download.
type Progress struct {
	CID         cid.Cid
	Name        string
	Total, Done int64   // bytes
	Rate        float64 // bytes/s over the last seconds
	Providers   int     // providers downloading now
	ETA         time.Duration
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
}

// Transfer states in Info.State.
const (
	StateRunning = "running"
	StatePaused  = "paused"
	StateWaiting = "waiting for providers"
)

// Info describes a running or paused download.
type Info struct {
	CID         cid.Cid
	Name        string
	Total, Done int64
	Rate        float64
	Providers   []peer.ID
	State       string
}

// pstate is what a Get knows about one provider.
type pstate struct {
	ai     peer.AddrInfo
	status int
	served int // verified chunks
}

const (
	pPending = iota // found, not started
	pActive
	pFailed // disconnected or refused: tried again after the next search
	pBad    // sent bad data: never again for this file
)

// workerEvent reports a worker's end.
type workerEvent struct {
	p   peer.ID
	err error
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
	msem   chan struct{} // one worker fetches the manifest at a time
	ready  chan struct{} // closed once the manifest and partial are set up
	perReq int

	mu   sync.Mutex
	name string
	// connected counts providers with a fetch stream up; retrying is set
	// when none is left and the Finder is asked again.
	connected atomic.Int32
	retrying  atomic.Bool
	provs     map[peer.ID]*pstate
	part      *partial
	sched     *scheduler
	rate      float64
	fetched   atomic.Int64 // chunks
	fetchedB  atomic.Int64 // bytes of those chunks
	mfrom     peer.ID      // provider of the manifest
	startAt   time.Time
	resumed   int
	rechecks  int // rounds of re-verifying the data file after a whole-file mismatch
	readyOne  sync.Once
	// fh computes the whole-file hash as verified chunks are stored
	fh *fileHasher
	// wake asks a waiting download to look for providers now (Retry).
	wake chan struct{}
	// fast: no partial download of c was on disk when Get started, so a
	// file of at most one chunk is fetched into memory (newMemPartial) and
	// written once, into place, by finish.
	fast bool
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
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g := &getter{
		wake: make(chan struct{}, 1),
		s:    s, c: c, opt: opt, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), msem: make(chan struct{}, 1), ready: make(chan struct{}),
		provs: make(map[peer.ID]*pstate), startAt: time.Now(), name: SanitizeName(opt.Name, c),
	}
	key := c.KeyString()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.gets[key] != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrInProgress, c)
	}
	if s.canceling[key] > 0 {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s: it is being cancelled", ErrInProgress, c)
	}
	s.gets[key] = g
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.gets, key)
		s.mu.Unlock()
		close(g.done)
		s.wg.Done()
	}()
	return g.run()
}

func (g *getter) log() *slog.Logger { return g.s.log.With("cid", g.c.String()) }

func (g *getter) run() (*Result, error) {
	s := g.s
	dir := partialDir(s.cfg.DownloadDir, g.c)
	if p, done, err := openPartial(dir, g.c); err == nil {
		g.mu.Lock()
		if g.opt.Name == "" {
			g.name = SanitizeName(p.name, g.c)
		}
		p.name = g.name
		g.mu.Unlock()
		g.resumed = p.resumed
		g.setup(p, done)
		g.log().Info("resuming download", "verified_chunks", p.resumed, "of", len(done))
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
	if err == nil {
		return res, nil
	}

	// Failed, paused or canceled.
	g.mu.Lock()
	p, fh := g.part, g.fh
	g.mu.Unlock()
	if fh != nil {
		fh.release()
	}
	if errors.Is(context.Cause(g.ctx), ErrCanceled) {
		if p != nil {
			p.remove()
		} else {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("transfer %s: %w", g.c, ErrCanceled)
	}
	if p == nil {
		return nil, err
	}
	var fe *fatalError
	if p.inMem {
		if errors.As(err, &fe) || errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		// Paused (or the name was taken): keep what was verified as an
		// ordinary partial download, which a later Get resumes.
		q, serr := p.spill(dir, g.sched.snapshot(nil))
		if serr != nil {
			return nil, fmt.Errorf("transfer %s: %w (and saving its state failed: %v)", g.c, err, serr)
		}
		p = q
	}
	defer p.close()
	if errors.As(err, &fe) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrExists) {
		return nil, err
	}
	if perr := p.persist(g.sched.snapshot(nil)); perr != nil {
		return nil, fmt.Errorf("transfer %s: %w (and saving its state failed: %v)", g.c, err, perr)
	}
	n, _ := g.sched.progress()
	return nil, fmt.Errorf("transfer %s: %w: %d of %d chunks kept in %s, get it again to resume: %w",
		g.c, ErrPaused, n, len(p.m.Chunks), dir, err)
}

// setup installs the partial download and its scheduler.
func (g *getter) setup(p *partial, done []bool) {
	per := g.s.cfg.ChunksPerRequest
	if per <= 0 {
		per = min(max(DefaultRequestBytes/p.m.ChunkSize, 1), proto.MaxChunksPerRequest)
	}
	g.mu.Lock()
	g.part = p
	g.perReq = per
	g.sched = newScheduler(done, per, p.m.ChunkLen)
	g.fh = newFileHasher(g.s, p.m, p.dataReader(), done, 0)
	g.mu.Unlock()
	g.readyOne.Do(func() { close(g.ready) })
}

func (g *getter) getSched() *scheduler {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sched
}

// currentState is "waiting for providers" once every provider is lost or
// unreachable and the Finder is being asked again, until one connects.
func (g *getter) currentState() string {
	if g.retrying.Load() && g.connected.Load() == 0 {
		return StateWaiting
	}
	return StateRunning
}

// download runs until every chunk is verified on disk, or ctx ends.
func (g *getter) download() error {
	s := g.s
	if sc := g.getSched(); sc != nil && sc.complete() {
		return nil
	}
	wctx, wcancelCause := context.WithCancelCause(g.ctx)
	wcancel := func() { wcancelCause(nil) }
	defer wcancel()

	allowed := func(p peer.ID) bool {
		return p != s.cfg.Host.ID() && (len(g.opt.From) == 0 || slices.Contains(g.opt.From, p))
	}
	found := make(chan peer.AddrInfo)
	queryDone := make(chan struct{}, 1)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer wcancel()
	querying := false
	query := func() {
		querying = true
		bg.Add(1)
		go func() {
			defer bg.Done()
			defer func() { queryDone <- struct{}{} }()
			if s.cfg.Finder == nil {
				return
			}
			qctx, cancel := context.WithTimeout(wctx, time.Minute)
			defer cancel()
			for ai := range s.cfg.Finder.FindProviders(qctx, g.c) {
				select {
				case found <- ai:
				case <-wctx.Done():
					return
				}
			}
		}()
	}

	events := make(chan workerEvent)
	active := 0
	var pending []peer.ID
	start := func(id peer.ID) {
		ps := g.provs[id]
		ps.status = pActive
		active++
		bg.Add(1)
		go func() {
			defer bg.Done()
			err := g.work(wctx, ps.ai)
			events <- workerEvent{id, err}
		}()
	}
	// stop waits for the workers after wctx is cancelled.
	defer func() {
		wcancel()
		for active > 0 {
			ev := <-events
			active--
			g.mu.Lock()
			if ps := g.provs[ev.p]; ps.status == pActive {
				ps.status = pFailed
			}
			g.mu.Unlock()
		}
		for querying {
			select {
			case <-queryDone:
				querying = false
			case <-found:
			}
		}
	}()

	query()
	retry := s.cfg.RetryInterval
	var timer *time.Timer
	var timerC <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	ever := false // a provider was ever started
	for {
		g.mu.Lock()
		for active < s.cfg.MaxProviders && len(pending) > 0 {
			id := pending[0]
			pending = pending[1:]
			if g.provs[id].status == pPending {
				ever = true
				start(id)
			}
		}
		g.mu.Unlock()
		var changed <-chan struct{}
		ready := g.ready
		if sc := g.getSched(); sc != nil {
			changed = sc.wait()
			if sc.complete() {
				wcancelCause(errWorkDone) // idle workers keep their sessions
				return nil
			}
			ready = nil
		}
		if active == 0 && len(pending) == 0 && !querying {
			g.retrying.Store(true)
			if timerC == nil {
				timer = time.NewTimer(retry)
				timerC = timer.C
				retry = min(retry*2, maxRetry)
			}
		}
		select {
		case ai := <-found:
			if !allowed(ai.ID) {
				continue
			}
			g.mu.Lock()
			ps := g.provs[ai.ID]
			if ps == nil {
				ps = &pstate{ai: ai, status: pFailed}
				g.provs[ai.ID] = ps
			}
			if len(ai.Addrs) > 0 {
				ps.ai = ai
			}
			if ps.status == pFailed {
				ps.status = pPending
				pending = append(pending, ai.ID)
			}
			g.mu.Unlock()
		case <-queryDone:
			querying = false
		case ev := <-events:
			active--
			if err := g.workerEnded(ev); err != nil {
				return err
			}
			if g.provs[ev.p].status != pBad && ev.err == nil {
				retry = s.cfg.RetryInterval
			}
		case <-changed:
		case <-ready:
		case <-timerC:
			timer, timerC = nil, nil
			query()
		case <-g.wake:
			if timer != nil {
				timer.Stop()
				timer, timerC = nil, nil
			}
			retry = s.cfg.RetryInterval
			if !querying {
				query()
			}
		case <-g.ctx.Done():
			err := context.Cause(g.ctx)
			if !ever || g.connected.Load() == 0 {
				return fmt.Errorf("%w: %w", ErrNoProviders, err)
			}
			return err
		}
	}
}

// workerEnded records how a provider's worker ended; a non-nil return is
// fatal for the Get.
func (g *getter) workerEnded(ev workerEvent) error {
	g.mu.Lock()
	ps := g.provs[ev.p]
	g.mu.Unlock()
	var fe *fatalError
	switch {
	case ev.err == nil:
		g.mu.Lock()
		ps.status = pFailed // done with its share; may rejoin after a search
		g.mu.Unlock()
	case errors.As(ev.err, &fe):
		return fe
	case errors.Is(ev.err, errBadData) && g.ctx.Err() == nil:
		g.mu.Lock()
		ps.status = pBad
		g.mu.Unlock()
		g.log().Warn("provider sent bad data; dropped for this file", "peer", ev.p, "err", ev.err)
	default:
		g.mu.Lock()
		ps.status = pFailed
		g.mu.Unlock()
		g.log().Info("provider lost", "peer", ev.p, "err", ev.err)
	}
	return nil
}

// work downloads from one provider until nothing is left for it, on a
// kept session if there is one. A kept session that fails before its first
// response (the provider closed it meanwhile) is replaced by a new one.
func (g *getter) work(ctx context.Context, ai peer.AddrInfo) error {
	s := g.s
	cn, err := s.connect(ctx, ai, g.c)
	if err != nil {
		return fmt.Errorf("open fetch stream: %w", err)
	}
	err = g.fetchFrom(ctx, ai, cn)
	var fe *fatalError
	if err != nil && cn.reused && !cn.answered && ctx.Err() == nil && !errors.Is(err, errBadData) && !errors.As(err, &fe) {
		g.log().Debug("kept fetch session failed; opening a new one", "peer", ai.ID, "err", err)
		if cn, err = s.dial(ctx, ai, g.c); err != nil {
			return fmt.Errorf("open fetch stream: %w", err)
		}
		err = g.fetchFrom(ctx, ai, cn)
	}
	return err
}

// fetchFrom downloads from one provider over cn until nothing is left for
// it; cn is kept for reuse if it ends in order, reset otherwise.
func (g *getter) fetchFrom(ctx context.Context, ai peer.AddrInfo, cn *conn) (err error) {
	s := g.s
	defer func() {
		if err != nil {
			cn.reset()
		} else {
			s.keep(cn)
		}
	}()
	g.connected.Add(1)
	defer g.connected.Add(-1)
	g.retrying.Store(false)
	if err := g.ensureManifest(ctx, cn); err != nil {
		return err
	}
	g.mu.Lock()
	sc, p, fh := g.sched, g.part, g.fh
	g.mu.Unlock()
	// Reading a chunk off the network overlaps verifying and writing the
	// previous one, in the sink goroutine; two chunk buffers per provider.
	free := make(chan *[]byte, 2)
	free <- s.getBuf(p.m.ChunkSize)
	free <- s.getBuf(p.m.ChunkSize)
	jobs := make(chan sinkJob, 2)
	sinkDone := make(chan error, 1)
	var sinkBad atomic.Bool
	go func() {
		var err error
		for j := range jobs {
			if j.release != nil {
				sc.release(j.release)
				continue
			}
			if err == nil {
				if err = g.store(cn.peer, p, sc, fh, j.i, (*j.buf)[:p.m.ChunkLen(j.i)]); err != nil {
					sinkBad.Store(true)
				}
			}
			free <- j.buf
		}
		sinkDone <- err
	}()
	var q []*request
	defer func() {
		close(jobs)
		if serr := <-sinkDone; serr != nil {
			err = serr // bad data (or a disk error) explains whatever the worker saw
		}
		for _, r := range q {
			sc.release(r)
		}
		s.putBuf(<-free)
		s.putBuf(<-free)
	}()
	for {
		changed := sc.wait()
		for len(q) < s.cfg.Window {
			r := sc.next(ai.ID, len(q) == 0)
			if r == nil {
				break
			}
			if err := cn.begin(); err != nil {
				sc.release(r)
				if len(q) == 0 && sc.complete() {
					return nil
				}
				return err
			}
			if err := cn.requestChunks(r.first, r.count); err != nil {
				sc.release(r)
				return fmt.Errorf("send request: %w", err)
			}
			q = append(q, r)
		}
		if len(q) == 0 {
			if sc.complete() {
				return nil
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				if sc.complete() {
					return nil
				}
				return ctx.Err()
			}
		}
		r := q[0]
		if err := g.receive(cn, p, r, free, jobs, &sinkBad); err != nil {
			return err
		}
		q = q[1:]
		jobs <- sinkJob{release: r}
	}
}

// sinkJob is a chunk read from the network (buf holds it) for the sink to
// verify and write, or a request to release once its chunks are stored.
type sinkJob struct {
	i       int
	buf     *[]byte
	release *request
}

// errSinkFailed stops a worker whose sink refused a chunk; the sink's own
// error is what the worker reports.
var errSinkFailed = errors.New("chunk refused")

// receive reads the answer to r and hands each chunk to the sink.
func (g *getter) receive(cn *conn, p *partial, r *request, free chan *[]byte, jobs chan<- sinkJob, bad *atomic.Bool) error {
	m := p.m
	var want uint64
	for i := r.first; i < r.first+r.count; i++ {
		want += uint64(m.ChunkLen(i))
	}
	sr, err := cn.response(uint64(r.first), want)
	if err != nil {
		return err
	}
	for i := r.first; i < r.first+r.count; i++ {
		buf := <-free
		if bad.Load() {
			free <- buf
			return errSinkFailed
		}
		if err := cn.readFull(sr, (*buf)[:m.ChunkLen(i)]); err != nil {
			free <- buf
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		if i == r.first+r.count-1 {
			// The end of the sealed stream is read before the last chunk
			// is handed on: once it is stored (and the download perhaps
			// complete), nothing of this request is left on the wire.
			if err := cn.finish(sr); err != nil {
				free <- buf
				return err
			}
			cn.done()
		}
		jobs <- sinkJob{i: i, buf: buf}
	}
	return nil
}

// store verifies chunk i and, unless another provider stored it first,
// writes it to the partial file, marks it done and gives it to the
// whole-file hasher.
func (g *getter) store(from peer.ID, p *partial, sc *scheduler, fh *fileHasher, i int, b []byte) error {
	if !p.m.VerifyChunk(i, b) {
		return fmt.Errorf("%w: chunk %d does not match the manifest", errBadData, i)
	}
	if sc.isDone(i) {
		return nil // an endgame duplicate that lost
	}
	if err := p.writeChunk(i, b); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: write partial data: %w", g.c, err)}
	}
	if sc.markDone(i) {
		fh.add(i, b)
		g.fetched.Add(1)
		g.fetchedB.Add(int64(len(b)))
		g.mu.Lock()
		g.provs[from].served++
		g.mu.Unlock()
	}
	return nil
}

// ensureManifest makes sure the manifest and the partial download exist,
// fetching the manifest from this provider if nobody has yet.
func (g *getter) ensureManifest(ctx context.Context, cn *conn) error {
	select {
	case g.msem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.msem }()
	if g.getSched() != nil {
		return nil
	}
	if err := cn.begin(); err != nil {
		return err
	}
	m, mb, err := cn.fetchManifest()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	cn.done()
	var p *partial
	if g.fast && len(m.Chunks) <= 1 {
		p = newMemPartial(g.c, m, mb, g.name)
	} else if p, err = createPartial(partialDir(g.s.cfg.DownloadDir, g.c), g.c, m, mb, g.name); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: create partial download: %w", g.c, err)}
	}
	g.mu.Lock()
	g.mfrom = cn.peer
	g.mu.Unlock()
	g.setup(p, make([]bool, len(m.Chunks)))
	return nil
}

// errWorkDone is the cause of the end of the workers' context when every
// chunk is in: a worker with nothing in flight keeps its session.
var errWorkDone = errors.New("download complete")

// errRefetch: finish found marked chunks damaged on disk and unmarked
// them; run downloads them again.
var errRefetch = errors.New("chunks damaged on disk")

// maxRechecks bounds the rounds of errRefetch for one Get, in case a disk
// keeps damaging what is written to it.
const maxRechecks = 3

// finish checks the whole file and moves it into place.
func (g *getter) finish() (*Result, error) {
	p := g.part
	if p.inMem {
		return g.finishMem(p)
	}
	if err := p.data.Sync(); err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: sync: %w", g.c, err)}
	}
	sum, err := g.fh.sum()
	if err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
	}
	if sum != p.m.FileHash {
		// A chunk marked verified may have been damaged on disk since
		// (a resumed download trusts the marks): find such chunks and
		// fetch them again. Only when every chunk verifies is the
		// manifest itself inconsistent.
		done := g.sched.snapshot(nil)
		bad, err := p.recheck(done)
		if err != nil {
			return nil, &fatalError{fmt.Errorf("transfer %s: re-verify partial data: %w", g.c, err)}
		}
		if bad > 0 {
			if err := p.persist(done); err != nil {
				return nil, &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
			}
			if g.rechecks++; g.rechecks > maxRechecks {
				return nil, &fatalError{fmt.Errorf("transfer %s: %d chunks damaged on disk after they were verified, %d times over",
					g.c, bad, g.rechecks)}
			}
			g.log().Warn("chunks damaged on disk since they were verified; fetching them again", "chunks", bad)
			g.resumed = max(g.resumed-bad, 0)
			g.setup(p, done)
			return nil, errRefetch
		}
		p.remove()
		g.mu.Lock()
		g.part = nil
		g.mu.Unlock()
		return nil, fmt.Errorf("transfer %s: %w", g.c, ErrCorrupt)
	}
	if err := p.data.Chmod(0o644); err != nil {
		return nil, &fatalError{err}
	}
	dst, exact := g.opt.Output, true
	if dst == "" {
		dst, exact = filepath.Join(g.s.cfg.DownloadDir, g.name), false
	}
	final, err := place(filepath.Join(p.dir, dataName), dst, exact)
	if final != "" && err != nil {
		// The link succeeded: the file is in place under its final name.
		// Keeping the partial would make the next Get link a second copy.
		g.log().Warn("file in place but its directory could not be synced; it may not survive a crash",
			"path", final, "err", err)
		err = nil
	}
	if err != nil {
		// keep the complete partial: a Get with another name finishes at once
		if perr := p.persist(g.sched.snapshot(nil)); perr != nil {
			g.log().Warn("save state", "err", perr)
		}
		return nil, fmt.Errorf("transfer %s: %w", g.c, err)
	}
	if err := p.remove(); err != nil {
		g.log().Warn("remove partial download", "err", err)
	}
	return g.result(p, final), nil
}

// finishMem checks and places a download held in memory: its one chunk
// was verified against the manifest when it was stored; the whole-file
// hash is checked here, then the file is written to a temporary file in
// the target directory, fsynced and linked under its final name.
func (g *getter) finishMem(p *partial) (*Result, error) {
	sum, err := g.fh.sum()
	if err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
	}
	if sum != p.m.FileHash {
		g.mu.Lock()
		g.part = nil
		g.mu.Unlock()
		return nil, fmt.Errorf("transfer %s: %w", g.c, ErrCorrupt)
	}
	dst, exact := g.opt.Output, true
	if dst == "" {
		dst, exact = filepath.Join(g.s.cfg.DownloadDir, g.name), false
	}
	final, err := placeData(p.mem, dst, exact)
	if final != "" && err != nil {
		g.log().Warn("file in place but its directory could not be synced; it may not survive a crash",
			"path", final, "err", err)
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("transfer %s: %w", g.c, err)
	}
	return g.result(p, final), nil
}

// result describes the finished download placed at final.
func (g *getter) result(p *partial, final string) *Result {
	res := &Result{
		Path: final, Size: p.m.Size, SHA256: p.m.FileHash, CID: g.c,
		Duration: time.Since(g.startAt), Fetched: int(g.fetched.Load()), Resumed: g.resumed,
		FetchedBytes: g.fetchedB.Load(),
	}
	g.mu.Lock()
	for id, ps := range g.provs {
		switch {
		case ps.status == pBad:
			res.Bad = append(res.Bad, id)
		case ps.served > 0 || id == g.mfrom:
			res.Providers = append(res.Providers, id)
		}
	}
	g.mu.Unlock()
	g.log().Info("download complete", "path", final, "bytes", p.m.Size, "fetched", res.Fetched, "resumed", res.Resumed,
		"providers", len(res.Providers), "bad", len(res.Bad), "duration", res.Duration)
	return res
}
