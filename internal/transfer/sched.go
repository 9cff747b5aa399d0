package transfer

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// request is one chunk range in flight at one provider.
type request struct {
	first, count int
	owner        peer.ID
	dup          bool // an endgame duplicate of another provider's request
	duped        bool // another provider holds a duplicate of it
}

// scheduler hands out missing chunk ranges to provider workers (pull
// model: a worker asks when its window has room, so faster providers take
// more) and records which chunks are verified and on disk.
type scheduler struct {
	mu        sync.Mutex
	n         int
	perReq    int
	done      []bool
	inflight  []uint8 // requests covering each chunk
	ndone     int
	cursor    int      // chunks below it have been handed out at least once
	requeue   [][2]int // ranges given back, handed out again before the cursor moves
	active    map[*request]struct{}
	changed   chan struct{} // closed and replaced on every change
	allDone   chan struct{} // closed once every chunk is done
	doneBytes int64
	chunkLen  func(i int) int
}

func newScheduler(done []bool, perReq int, chunkLen func(int) int) *scheduler {
	s := &scheduler{n: len(done), perReq: perReq, done: done, inflight: make([]uint8, len(done)),
		active: make(map[*request]struct{}), changed: make(chan struct{}), allDone: make(chan struct{}),
		chunkLen: chunkLen}
	for i, d := range done {
		if d {
			s.ndone++
			s.doneBytes += int64(chunkLen(i))
		}
	}
	if s.ndone == s.n {
		close(s.allDone)
	}
	return s
}

func (s *scheduler) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait returns a channel closed at the next change.
func (s *scheduler) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// completed returns a channel closed once every chunk is done.
func (s *scheduler) completed() <-chan struct{} { return s.allDone }

func (s *scheduler) complete() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ndone == s.n
}

func (s *scheduler) progress() (chunks int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ndone, s.doneBytes
}

// free reports whether chunk i needs a request.
func (s *scheduler) free(i int) bool { return !s.done[i] && s.inflight[i] == 0 }

// next returns the next range for provider p, or nil when there is none.
// idle says p has nothing in flight: then, when every missing chunk is
// already in flight elsewhere, p gets a duplicate of another provider's
// request (endgame), and whichever copy verifies first is kept.
func (s *scheduler) next(p peer.ID, idle bool) *request {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.requeue) > 0 {
		r := &s.requeue[len(s.requeue)-1]
		for r[1] > 0 && !s.free(r[0]) {
			r[0]++
			r[1]--
		}
		if r[1] == 0 {
			s.requeue = s.requeue[:len(s.requeue)-1]
			continue
		}
		first := r[0]
		count := 0
		for count < s.perReq && count < r[1] && s.free(first+count) {
			count++
		}
		r[0] += count
		r[1] -= count
		return s.take(&request{first: first, count: count, owner: p})
	}
	for s.cursor < s.n && !s.free(s.cursor) {
		s.cursor++
	}
	if s.cursor < s.n {
		first := s.cursor
		count := 0
		for count < s.perReq && first+count < s.n && s.free(first+count) {
			count++
		}
		s.cursor += count
		return s.take(&request{first: first, count: count, owner: p})
	}
	if !idle {
		return nil
	}
	// Endgame: duplicate the unfinished request of another provider that
	// is the furthest from done.
	var best *request
	bestLeft := 0
	for r := range s.active {
		if r.owner == p || r.duped || r.dup {
			continue
		}
		left := 0
		for i := r.first; i < r.first+r.count; i++ {
			if !s.done[i] {
				left++
			}
		}
		if left > bestLeft {
			best, bestLeft = r, left
		}
	}
	if best == nil {
		return nil
	}
	best.duped = true
	return s.take(&request{first: best.first, count: best.count, owner: p, dup: true})
}

func (s *scheduler) take(r *request) *request {
	for i := r.first; i < r.first+r.count; i++ {
		s.inflight[i]++
	}
	s.active[r] = struct{}{}
	return r
}

// isDone reports whether chunk i is already verified and written.
func (s *scheduler) isDone(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done[i]
}

// markDone records chunk i as verified and on disk (not yet fsynced). It
// returns false if another provider got there first.
func (s *scheduler) markDone(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done[i] {
		return false
	}
	s.done[i] = true
	s.ndone++
	s.doneBytes += int64(s.chunkLen(i))
	if s.ndone == s.n {
		close(s.allDone)
		s.notify()
	}
	return true
}

// release ends request r, finished or failed: its chunks that are not done
// and no longer in flight anywhere go back to the queue.
func (s *scheduler) release(r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, r)
	start := -1
	for i := r.first; i <= r.first+r.count; i++ {
		back := false
		if i < r.first+r.count {
			s.inflight[i]--
			back = s.free(i)
		}
		if back && start < 0 {
			start = i
		}
		if !back && start >= 0 {
			s.requeue = append(s.requeue, [2]int{start, i - start})
			start = -1
		}
	}
	if r.dup {
		// the original may be duplicated again by someone else
		for o := range s.active {
			if o.first == r.first && o.count == r.count && o.duped {
				o.duped = false
			}
		}
	}
	s.notify()
}

// snapshot copies the done bitmap.
func (s *scheduler) snapshot(dst []bool) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(dst[:0], s.done...)
}
