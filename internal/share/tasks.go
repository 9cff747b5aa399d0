package share

import "sync"

// tasks tracks the goroutines a Library or Directory starts, so that Close
// waits for every one. Go refuses to start one once Wait has begun:
// sync.WaitGroup forbids an Add from zero that races with Wait, and
// Publish (announcing) or Open (withdrawing a changed file) may run on
// the caller's goroutine while Close does.
type tasks struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f in a new goroutine, unless Wait was called; it reports whether
// f was started.
func (t *tasks) Go(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// Wait refuses new goroutines and waits for the running ones. Stop them
// first (cancel their context).
func (t *tasks) Wait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
