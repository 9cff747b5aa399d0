package share

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// DHT provider records, in the manner of go-libp2p-kad-dht's provider
// package: a queue of CIDs to provide, drained by one loop that the queue
// owns; failures are retried, and everything published is provided again
// before the records expire.
const (
	DefaultReprovideInterval = 22 * time.Hour
	// provideTimeout bounds one Provide call; a failed provide is retried
	// every provideRetry until it succeeds.
	provideTimeout = 2 * time.Minute
	provideRetry   = time.Minute
)

// provider is the part of Routing the queue uses.
type provider interface {
	Provide(ctx context.Context, c cid.Cid, announce bool) error
}

// provideQueue provides CIDs on the DHT in the background. Without
// routing it does nothing.
type provideQueue struct {
	routing  provider
	interval time.Duration
	log      *slog.Logger
	// published lists what to provide at start and every interval;
	// serving reports whether c is still published and served when its
	// turn comes (a CID withdrawn meanwhile is skipped).
	published func() []cid.Cid
	serving   func(c cid.Cid) bool

	mu      sync.Mutex
	pending map[cid.Cid]struct{}
	wake    chan struct{} // one token: pending may have grown

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// newProvideQueue starts the queue with everything published; Close
// stops it.
func newProvideQueue(routing provider, interval time.Duration, log *slog.Logger,
	published func() []cid.Cid, serving func(cid.Cid) bool) *provideQueue {
	q := &provideQueue{
		routing:   routing,
		interval:  interval,
		log:       log,
		published: published,
		serving:   serving,
		pending:   make(map[cid.Cid]struct{}),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	if routing == nil {
		close(q.done)
		return q
	}
	q.Enqueue(published()...)
	go q.loop()
	return q
}

// Enqueue schedules cs to be provided.
func (q *provideQueue) Enqueue(cs ...cid.Cid) {
	if q.routing == nil {
		return
	}
	q.mu.Lock()
	for _, c := range cs {
		q.pending[c] = struct{}{}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Dequeue drops cs from the queue (a provide under way finishes).
func (q *provideQueue) Dequeue(cs ...cid.Cid) {
	q.mu.Lock()
	for _, c := range cs {
		delete(q.pending, c)
	}
	q.mu.Unlock()
}

// next takes one CID off the queue; cid.Undef when it is empty.
func (q *provideQueue) next() cid.Cid {
	q.mu.Lock()
	defer q.mu.Unlock()
	for c := range q.pending {
		delete(q.pending, c)
		return c
	}
	return cid.Undef
}

// Close stops the loop and waits for it.
func (q *provideQueue) Close() {
	q.cancel()
	<-q.done
}

// loop provides queued CIDs, re-provides everything published each
// interval and retries failed provides every provideRetry.
func (q *provideQueue) loop() {
	defer close(q.done)
	reprovide := time.NewTicker(q.interval)
	defer reprovide.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	retrying := false
	failed := make(map[cid.Cid]struct{})
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-q.wake:
		case <-reprovide.C:
			q.Enqueue(q.published()...)
			continue
		case <-retry.C:
			retrying = false
			var again []cid.Cid
			for c := range failed {
				again = append(again, c)
			}
			clear(failed)
			q.Enqueue(again...)
			continue
		}
		for {
			c := q.next()
			if !c.Defined() || q.ctx.Err() != nil {
				break
			}
			if !q.serving(c) {
				continue
			}
			ctx, cancel := context.WithTimeout(q.ctx, provideTimeout)
			err := q.routing.Provide(ctx, c, true)
			cancel()
			if err != nil {
				if q.ctx.Err() != nil {
					return
				}
				q.log.Warn("DHT provide failed; will retry", "cid", c, "err", err, "retry_in", provideRetry)
				failed[c] = struct{}{}
				continue
			}
			delete(failed, c)
			q.log.Debug("provided on the DHT", "cid", c)
		}
		if len(failed) > 0 && !retrying {
			retrying = true
			retry.Reset(min(provideRetry, q.interval))
		}
	}
}
