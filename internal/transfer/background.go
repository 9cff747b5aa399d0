package transfer

import (
	"sync"
	"time"
)

// persistInterval batches bitmap updates: the state file is rewritten at
// most this often while chunks arrive, so after a crash at most this much
// is unmarked (and re-verified from the data file on resume, not fetched).
const persistInterval = 200 * time.Millisecond

// startBackground starts, once the manifest is known, the goroutine that
// persists the verified-chunk bitmap. The returned func stops it and
// waits.
func (g *getter) startBackground() (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-g.ready:
		case <-quit:
			return
		}
		g.mu.Lock()
		p, sc := g.part, g.sched
		g.mu.Unlock()
		g.persistLoop(p, sc, quit)
	}()
	return func() {
		close(quit)
		wg.Wait()
	}
}

func (g *getter) persistLoop(p *partial, sc *scheduler, quit <-chan struct{}) {
	t := time.NewTicker(persistInterval)
	defer t.Stop()
	last, _ := sc.progress()
	var snap []bool
	for {
		select {
		case <-t.C:
		case <-quit:
			return
		}
		n, _ := sc.progress()
		if n == last {
			continue
		}
		// The snapshot only marks chunks whose WriteAt returned; persist
		// fsyncs the data before writing the state that marks them.
		snap = sc.snapshot(snap)
		if err := p.persist(snap); err != nil {
			g.log().Warn("save download state", "err", err)
			continue
		}
		last = n
	}
}
