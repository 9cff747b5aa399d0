package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/internal/transfer"
)

// keepFinished is how many finished jobs GET /api/v1/gets still lists.
const keepFinished = 200

// jobs runs background downloads: at most max at once, the others queued
// in order. Each is one transfer.Get with the server's context, so Close
// pauses them all (their partial data stays for a later get).
type jobs struct {
	s   *Server
	max int

	mu      sync.Mutex
	next    int
	byID    map[string]*job
	order   []*job // every job still listed, oldest first
	queue   []*job
	running int
	closed  bool
	wg      sync.WaitGroup
}

type job struct {
	c      cid.Cid
	opt    transfer.GetOptions
	cancel context.CancelFunc // of its Get; nil while queued
	done   chan struct{}      // closed when it has ended
	// Guarded by jobs.mu.
	state    Job
	canceled bool // cancel was asked: a Get stopped by its context was canceled, not paused
}

func newJobs(s *Server, max int) *jobs {
	return &jobs{s: s, max: max, byID: map[string]*job{}}
}

// errClosed: the node is stopping.
var errClosed = withStatus(http.StatusServiceUnavailable, errors.New("the node is stopping"))

// submit queues a download of c, starting it at once if a slot is free.
// A CID already queued or running here is refused.
func (js *jobs) submit(target string, c cid.Cid, opt transfer.GetOptions) (Job, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.closed {
		return Job{}, errClosed
	}
	for _, j := range js.order {
		if j.c.Equals(c) && !j.state.Finished() {
			return Job{}, withStatus(http.StatusConflict, fmt.Errorf("%s is already being downloaded (job %s)", c, j.state.ID))
		}
	}
	js.next++
	j := &job{c: c, opt: opt, done: make(chan struct{}), state: Job{
		ID: itoa(js.next), CID: c.String(), Name: transfer.SanitizeName(opt.Name, c), Target: target,
		State: JobQueued, Created: time.Now().UTC(),
	}}
	js.byID[j.state.ID] = j
	js.order = append(js.order, j)
	js.trimLocked()
	js.queue = append(js.queue, j)
	js.s.events.send(EventTransfer, j.state)
	js.dispatchLocked()
	return j.state, nil
}

// dispatchLocked starts queued jobs while slots are free.
func (js *jobs) dispatchLocked() {
	for js.running < js.max && len(js.queue) > 0 && !js.closed {
		j := js.queue[0]
		js.queue = js.queue[1:]
		js.running++
		ctx, cancel := context.WithCancel(js.s.ctx)
		j.cancel = cancel
		j.state.State = JobRunning
		js.s.events.send(EventTransfer, j.state)
		js.wg.Add(1)
		go js.run(ctx, j)
	}
}

func (js *jobs) run(ctx context.Context, j *job) {
	defer js.wg.Done()
	defer close(j.done)
	defer j.cancel()
	opt := j.opt
	opt.Progress = func(p transfer.Progress) {
		js.mu.Lock()
		defer js.mu.Unlock()
		st := &j.state
		st.Size, st.Done, st.Rate, st.Providers = p.Total, p.Done, p.Rate, p.Providers
		if p.Name != "" {
			st.Name = p.Name
		}
		st.State = JobRunning
		if p.Providers == 0 && p.Total > 0 && p.Done < p.Total {
			st.State = JobWaiting
		}
		js.s.events.send(EventTransfer, j.state)
	}
	start := time.Now()
	res, err := js.s.cfg.Transfer.Get(ctx, j.c, opt)
	js.mu.Lock()
	defer js.mu.Unlock()
	st := &j.state
	st.Rate, st.Providers = 0, 0
	switch {
	case err == nil:
		st.State = JobDone
		st.Path, st.SHA256, st.Size, st.Done = res.Path, hexSum(res.SHA256), res.Size, res.Size
		st.DurationMS = float64(res.Duration) / float64(time.Millisecond)
		st.Resumed = res.Resumed
		st.BadPeers = peerStrings(res.Bad)
	case errors.Is(err, transfer.ErrCanceled), j.canceled:
		st.State, st.Error = JobCanceled, "canceled; partial data removed"
	case errors.Is(err, transfer.ErrPaused), ctx.Err() != nil:
		st.State, st.Error = JobPaused, "paused when the node stopped; verified chunks are kept: get it again to resume"
	default:
		st.State, st.Error = JobFailed, err.Error()
	}
	js.s.log.Info("background get ended", "job", st.ID, "cid", st.CID, "state", st.State, "err", err, "took", time.Since(start))
	js.s.events.send(EventTransfer, j.state)
	js.running--
	js.dispatchLocked()
}

// trimLocked forgets the oldest finished jobs beyond keepFinished.
func (js *jobs) trimLocked() {
	finished := 0
	for _, j := range js.order {
		if j.state.Finished() {
			finished++
		}
	}
	kept := js.order[:0]
	for _, j := range js.order {
		if finished > keepFinished && j.state.Finished() {
			finished--
			delete(js.byID, j.state.ID)
			continue
		}
		kept = append(kept, j)
	}
	js.order = kept
}

func (js *jobs) list() []Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]Job, 0, len(js.order))
	for _, j := range js.order {
		out = append(out, j.state)
	}
	return out
}

func (js *jobs) get(id string) (Job, bool) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j, ok := js.byID[id]
	if !ok {
		return Job{}, false
	}
	return j.state, true
}

// active returns the unfinished jobs, for cancel's lookup and the
// transfers list.
func (js *jobs) active() []Job {
	var out []Job
	for _, j := range js.list() {
		if !j.Finished() {
			out = append(out, j)
		}
	}
	return out
}

// cancelQueued takes a queued job of c off the queue. It reports whether
// there was one; a running job is canceled through transfer.Cancel.
func (js *jobs) cancelQueued(c cid.Cid) (Job, bool) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for i, j := range js.queue {
		if j.c.Equals(c) {
			js.queue = append(js.queue[:i:i], js.queue[i+1:]...)
			j.state.State, j.state.Error = JobCanceled, "canceled before it started"
			js.s.events.send(EventTransfer, j.state)
			close(j.done)
			return j.state, true
		}
	}
	return Job{}, false
}

// cancelRunning cancels the running job of c, if any, and waits for it
// to end. It reports the job's ID ("" if none ran). The caller then
// removes the partial data with transfer.Cancel.
func (js *jobs) cancelRunning(c cid.Cid) string {
	js.mu.Lock()
	var run *job
	for _, j := range js.order {
		if j.c.Equals(c) && !j.state.Finished() && j.cancel != nil {
			run = j
		}
	}
	if run == nil {
		js.mu.Unlock()
		return ""
	}
	run.canceled = true
	js.mu.Unlock()
	run.cancel()
	<-run.done
	return run.state.ID
}

// close pauses the running jobs (the server's context has ended), drops
// the queued ones and waits.
func (js *jobs) close() {
	js.mu.Lock()
	js.closed = true
	for _, j := range js.queue {
		j.state.State, j.state.Error = JobPaused, "the node stopped before it started"
		close(j.done) // it never ran: nobody else closes it
	}
	js.queue = nil
	js.mu.Unlock()
	js.wg.Wait()
}
