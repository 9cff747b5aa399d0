package transfer

import (
	"sync"
	"time"
)

// progressInterval is how often GetOptions.Progress is called.
const progressInterval = 100 * time.Millisecond

// rateWindow is the span the transfer rate is measured over.
const rateWindow = 3 * time.Second

type sample struct {
	t     time.Time
	bytes int64
}

// startProgress starts the goroutine that measures the rate and calls
// opt.Progress; the returned func makes the final call and stops it.
func (g *getter) startProgress() (stop func()) { return runProgress(g.report) }

// runProgress calls report every progressInterval, from one goroutine,
// with the download's rate meter; the returned func makes the final call
// (final true) and waits for it.
func runProgress(report func(rm *rateMeter, final bool)) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		var rm rateMeter
		for {
			final := false
			select {
			case <-t.C:
			case <-quit:
				final = true
			}
			report(&rm, final)
			if final {
				return
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}

// report takes one progress sample and passes it on.
func (g *getter) report(rm *rateMeter, final bool) {
	sc := g.getSched()
	now := time.Now()
	var total, done int64
	g.mu.Lock()
	if g.part != nil {
		total = g.part.m.Size
	}
	name := g.name
	g.mu.Unlock()
	active := len(g.swarm.fetching())
	if sc != nil {
		_, done = sc.progress()
	}
	rate := rm.add(now, done)
	g.mu.Lock()
	g.rate = rate
	g.mu.Unlock()
	if g.opt.Progress == nil {
		return
	}
	p := Progress{CID: g.c, Name: name, Total: total, Done: done, Rate: rate, Providers: active}
	if rate > 0 && total > done {
		p.ETA = time.Duration(float64(total-done) / rate * float64(time.Second))
	}
	if final || sc != nil || p.Providers > 0 {
		g.opt.Progress(p)
	}
}
