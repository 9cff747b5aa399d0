package transfer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// swarm is the providers of one Get: every provider the Finder found, what
// each is doing (waiting for a worker slot, fetching, failed, dropped for
// bad data) and how many chunks it sent. Its run is one download round:
// it starts a worker (worker.go) on each provider found, up to
// Config.MaxProviders at once, and when none is left asks the Finder
// again, waiting RetryInterval, then twice as long each time up to
// maxRetry, unless Retry wakes it.
//
// A round reacts only to events, small messages on one channel sent by
// the round's goroutines: its Finder searches, its workers, the backoff
// timer, and two watchers (the download becoming complete, Retry).
type swarm struct {
	g *getter
	// wake is Retry's request to search now; buffered, so a request is
	// kept until a round takes it.
	wake chan struct{}
	// connected counts workers with a fetch stream up; waiting is set when
	// no provider is left and the Finder is asked again, cleared when a
	// worker connects.
	connected atomic.Int32
	waiting   atomic.Bool

	mu    sync.Mutex // guards provs: Transfers, progress and result read it
	provs map[peer.ID]*pstate

	// One round's state, set by begin; used only by the goroutine running
	// the round, except ctx and events, which its goroutines use.
	ctx       context.Context // the workers' and searches' context; ends with the round
	stop      context.CancelCauseFunc
	events    chan event
	tasks     sync.WaitGroup // every goroutine of the round
	pending   []peer.ID      // found providers waiting for a worker slot, in order
	active    int            // workers running
	started   bool           // a worker was started
	searching bool           // a Finder search is running
	backoff   time.Duration  // the wait before the next search
	timer     context.CancelFunc
	timerID   int // tells the armed timer's searchDue from a cancelled one's
}

// pstate is what a Get knows about one provider.
type pstate struct {
	ai      peer.AddrInfo
	status  int
	served  int   // verified chunks
	lastErr error // why its last worker ended
	// reasked is served when the provider was last asked again at once
	// after losing its stream (-1: never); see reask.
	reasked int
}

// Provider states.
const (
	pPending = iota // found, waiting for a worker slot
	pActive         // a worker is fetching from it
	pFailed         // lost, refused, or done with its share: tried again when a search finds it
	pBad            // sent bad data: never again for this file
)

// The events of a round.
type (
	event any

	providerFound struct{ ai peer.AddrInfo } // a Finder search found ai
	searchEnded   struct{}                   // the Finder search ended
	workerEnded   struct {                   // the worker on p returned err
		p   peer.ID
		err error
	}
	searchDue   struct{ timer int } // the backoff timer fired
	retryNow    struct{}            // Retry: a peer came online, search now
	allVerified struct{}            // every chunk is verified on disk: wakes the loop
)

// errWorkDone is the cause of the end of the workers' context when every
// chunk is in: a worker with nothing in flight keeps its session.
var errWorkDone = errors.New("download complete")

func newSwarm(g *getter) *swarm {
	return &swarm{g: g, wake: make(chan struct{}, 1), provs: make(map[peer.ID]*pstate)}
}

// run is one download round. It returns nil once every chunk is verified
// on disk, a worker's fatal (disk) error, or the cause of the end of the
// Get's context, wrapped in ErrNoProviders if no provider was reached.
func (s *swarm) run() error {
	s.begin()
	defer s.end()
	s.search()
	for {
		if s.g.complete() {
			s.stop(errWorkDone) // idle workers keep their sessions
			return nil
		}
		s.startWorkers()
		if s.active == 0 && len(s.pending) == 0 && !s.searching {
			if err := s.allRefused(); err != nil {
				return err
			}
			s.searchLater()
		}
		var ev event
		select {
		case ev = <-s.events:
		case <-s.g.ctx.Done():
			return s.interrupted()
		}
		switch ev := ev.(type) {
		case providerFound:
			s.add(ev.ai)
		case searchEnded:
			s.searching = false
		case workerEnded:
			if err := s.workerEnded(ev); err != nil {
				return err
			}
		case searchDue:
			if ev.timer == s.timerID && s.timer != nil {
				s.stopTimer()
				s.search()
			}
		case retryNow:
			s.stopTimer()
			s.backoff = s.g.s.cfg.RetryInterval
			s.search()
		case allVerified:
			// the top of the loop returns
		}
	}
}

// begin starts a round and its two watchers.
func (s *swarm) begin() {
	s.ctx, s.stop = context.WithCancelCause(s.g.ctx)
	s.events = make(chan event)
	s.pending, s.active, s.started, s.searching = nil, 0, false, false
	s.backoff = s.g.s.cfg.RetryInterval
	s.tasks.Go(s.watchCompletion)
	s.tasks.Go(s.watchRetry)
}

// end finishes a round, in this order: its context is cancelled, which
// stops the backoff timer, the searches and the watchers, and makes each
// worker return (one with a request in flight resets its stream; an idle
// one keeps its session if the download is complete, see keepable); every
// goroutine of the round is waited for, so none outlives it; then the
// providers that were fetching or waiting for a slot are marked failed,
// so that a later search brings them back.
func (s *swarm) end() {
	s.stop(nil)
	s.tasks.Wait()
	s.timer = nil
	s.mu.Lock()
	for _, ps := range s.provs {
		if ps.status == pActive || ps.status == pPending {
			ps.status = pFailed
		}
	}
	s.mu.Unlock()
}

// send delivers ev to the round's loop; false if the round is over.
func (s *swarm) send(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// interrupted is run's result when the Get's context ends.
func (s *swarm) interrupted() error {
	err := context.Cause(s.g.ctx)
	if !s.started || s.connected.Load() == 0 {
		return fmt.Errorf("%w: %w", ErrNoProviders, err)
	}
	return err
}

// allowed reports whether p may be asked: not this node, and one of
// GetOptions.From if that is set.
func (s *swarm) allowed(p peer.ID) bool {
	from := s.g.opt.From
	return p != s.g.s.cfg.Host.ID() && (len(from) == 0 || slices.Contains(from, p))
}

// add records a provider a search found. A new one, or one that failed
// before, waits for a worker slot.
func (s *swarm) add(ai peer.AddrInfo) {
	if !s.allowed(ai.ID) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.provs[ai.ID]
	if ps == nil {
		ps = &pstate{ai: ai, status: pFailed, reasked: -1}
		s.provs[ai.ID] = ps
	}
	if len(ai.Addrs) > 0 {
		ps.ai = ai
	}
	if ps.status == pFailed {
		ps.status = pPending
		s.pending = append(s.pending, ai.ID)
	}
}

// startWorkers starts a worker on each pending provider, in the order
// they were found, while fewer than MaxProviders are fetching.
func (s *swarm) startWorkers() {
	for s.active < s.g.s.cfg.MaxProviders && len(s.pending) > 0 {
		id := s.pending[0]
		s.pending = s.pending[1:]
		s.mu.Lock()
		ps := s.provs[id]
		ok := ps.status == pPending
		if ok {
			ps.status = pActive
		}
		ai := ps.ai
		s.mu.Unlock()
		if !ok {
			continue
		}
		s.started = true
		s.active++
		s.tasks.Go(func() {
			err := s.g.work(s.ctx, ai)
			s.send(workerEnded{id, err})
		})
	}
}

// workerEnded records how a provider's worker ended; a non-nil return is
// fatal for the Get.
func (s *swarm) workerEnded(ev workerEnded) error {
	s.active--
	var fe *fatalError
	switch {
	case ev.err == nil:
		s.setStatus(ev.p, pFailed) // done with its share; may rejoin after a search
		s.backoff = s.g.s.cfg.RetryInterval
	case errors.As(ev.err, &fe):
		return fe
	case errors.Is(ev.err, errBadData) && s.g.ctx.Err() == nil:
		s.setStatus(ev.p, pBad)
		s.g.log().Warn("provider sent bad data; dropped for this file", "peer", ev.p, "err", ev.err)
	case s.reask(ev.p, ev.err):
		s.g.log().Info("provider's stream lost while still connected; asking it again", "peer", ev.p, "err", ev.err)
	default:
		s.setStatus(ev.p, pFailed)
		s.g.log().Info("provider lost", "peer", ev.p, "err", ev.err)
	}
	if ev.err != nil {
		s.mu.Lock()
		s.provs[ev.p].lastErr = ev.err
		s.mu.Unlock()
	}
	return nil
}

// reask puts p, whose worker ended with err, back among the pending
// providers at once if its stream was lost while the connection to it is
// still up, and reports whether it did. A provider that resets a stream
// but stays connected has not gone away: it may have stopped serving this
// file to us (its audience no longer admits us, and its fetch server cut
// the session; see Service.Recheck), and only a new request tells, with a
// NOT_SERVED that ends the Get (allRefused) instead of a wait for a
// provider no search finds any more. A provider that is gone is waited for
// as before. Once asked again, it is asked again only after it has sent a
// verified chunk since, so a provider that keeps resetting streams costs
// one extra request per chunk at most and is then waited for.
func (s *swarm) reask(p peer.ID, err error) bool {
	if s.g.ctx.Err() != nil || cannotServe(err) {
		return false
	}
	if s.g.s.cfg.Host.Network().Connectedness(p) == network.NotConnected {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.provs[p]
	if ps.reasked == ps.served {
		return false
	}
	ps.reasked = ps.served
	ps.status = pPending
	s.pending = append(s.pending, p)
	return true
}

// allRefused returns an error when every provider found so far failed
// because it cannot serve this download (cannotServe): waiting would hang
// silently, so the Get ends with each provider's answer.
func (s *swarm) allRefused() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	carry := true // every one is unreachable: it cannot carry file bytes
	for id, ps := range s.provs {
		switch {
		case ps.status == pBad:
			continue
		case ps.status != pFailed || !cannotServe(ps.lastErr):
			return nil
		}
		err := ps.lastErr
		if !isUnreachable(err) { // an UnreachableError names its peer
			carry = false
			err = fmt.Errorf("peer %s: %w", id, err)
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	// In a stable order, for the user and for tests.
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	what := "no provider can carry the file"
	if !carry {
		what = "no provider can serve the file"
	}
	return &fatalError{fmt.Errorf("%s: %w", what, errors.Join(errs...))}
}

// cannotServe reports whether err, the end of a provider's worker, says
// that the provider cannot serve this download at all rather than that it
// is lost for now: it cannot carry file bytes (Config.Reach said so), it
// answered that it does not serve the file (NOT_SERVED: not published, or
// withdrawn) or that the file changed since it was published (CHANGED),
// or its manifest was refused (checkHeader). A lost provider is waited
// for; one that cannot serve is not.
func cannotServe(err error) bool {
	var re *refusedError
	var rm *refusedManifestError
	switch {
	case isUnreachable(err), errors.As(err, &rm):
		return true
	case errors.As(err, &re):
		return re.status == proto.FetchResponse_NOT_SERVED || re.status == proto.FetchResponse_CHANGED
	}
	return false
}

func (s *swarm) setStatus(p peer.ID, status int) {
	s.mu.Lock()
	s.provs[p].status = status
	s.mu.Unlock()
}

// search asks the Finder for providers, unless a search is running. What
// it finds arrives as providerFound events, its end as searchEnded.
func (s *swarm) search() {
	if s.searching {
		return
	}
	s.searching = true
	s.tasks.Go(func() {
		defer s.send(searchEnded{})
		for _, ai := range s.g.opt.Hints {
			if !s.send(providerFound{ai}) {
				return
			}
		}
		// The peers the user named are asked whether or not a search
		// finds them: one that does not have the file says so.
		for _, id := range s.g.opt.From {
			if !s.send(providerFound{peer.AddrInfo{ID: id}}) {
				return
			}
		}
		finder := s.g.s.cfg.Finder
		if finder == nil {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		for ai := range finder.FindProviders(ctx, s.g.c) {
			if !s.send(providerFound{ai}) {
				return
			}
		}
	})
}

// searchLater is called when no provider is left: the Get is waiting for
// providers (its state says so) and searches again when the backoff
// timer fires, which arms the next one twice as long.
func (s *swarm) searchLater() {
	s.waiting.Store(true)
	if s.timer != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.timerID++
	id, wait := s.timerID, s.backoff
	s.timer = cancel
	s.backoff = min(s.backoff*2, maxRetry)
	s.tasks.Go(func() {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
			s.send(searchDue{id})
		case <-ctx.Done():
		}
	})
}

// stopTimer cancels the backoff timer, if one is armed.
func (s *swarm) stopTimer() {
	if s.timer != nil {
		s.timer()
		s.timer = nil
	}
}

// watchCompletion sends allVerified once the manifest is known and every
// chunk is verified on disk.
func (s *swarm) watchCompletion() {
	select {
	case <-s.g.ready:
	case <-s.ctx.Done():
		return
	}
	select {
	case <-s.g.getSched().completed():
		s.send(allVerified{})
	case <-s.ctx.Done():
	}
}

// watchRetry turns Retry's requests into retryNow events.
func (s *swarm) watchRetry() {
	for {
		select {
		case <-s.wake:
			s.send(retryNow{})
		case <-s.ctx.Done():
			return
		}
	}
}

// searchNow asks a waiting Get to search for providers now (Retry). It
// never blocks.
func (s *swarm) searchNow() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// state is StateWaiting once every provider is lost or unreachable and
// the Finder is asked again, until one connects; StateRunning otherwise.
func (s *swarm) state() string {
	if s.waiting.Load() && s.connected.Load() == 0 {
		return StateWaiting
	}
	return StateRunning
}

// streamUp and streamDown count a worker's fetch stream.
func (s *swarm) streamUp() {
	s.connected.Add(1)
	s.waiting.Store(false)
}

func (s *swarm) streamDown() { s.connected.Add(-1) }

// credit counts a verified chunk that p sent.
func (s *swarm) credit(p peer.ID) {
	s.mu.Lock()
	s.provs[p].served++
	s.mu.Unlock()
}

// fetching lists the providers a worker is fetching from, sorted.
func (s *swarm) fetching() []peer.ID {
	var ps []peer.ID
	s.mu.Lock()
	for id, p := range s.provs {
		if p.status == pActive {
			ps = append(ps, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ps)
	return ps
}

// outcome lists the providers that sent verified chunks (or the manifest:
// manifestFrom) and those dropped for bad data.
func (s *swarm) outcome(manifestFrom peer.ID) (good, bad []peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ps := range s.provs {
		switch {
		case ps.status == pBad:
			bad = append(bad, id)
		case ps.served > 0 || id == manifestFrom:
			good = append(good, id)
		}
	}
	return good, bad
}
