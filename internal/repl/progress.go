package repl

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/p2pshare/p2pshare/internal/transfer"
)

// progressBar draws a live bar for a foreground get when output is a
// terminal; otherwise it draws nothing and the command prints a summary.
type progressBar struct {
	mu        sync.Mutex
	out       io.Writer
	p         *mpb.Progress
	bar       *mpb.Bar
	providers int
	last      time.Time
	start     time.Time
	hadPeers  bool // some provider was ever connected
	waiting   bool // told the user the download waits for providers
	updated   bool // some progress was reported
	finished  bool // done was called: print nothing more
	timer     *time.Timer
}

// waitingAfter is how long a get may look for its first provider before it
// is reported as waiting.
const waitingAfter = 3 * time.Second

func (c *call) progress(id cid.Cid, name string) *progressBar {
	pb := &progressBar{out: c.out, start: time.Now()}
	// Progress starts with the manifest: until then, say what is going on
	// if it takes a while.
	pb.timer = time.AfterFunc(waitingAfter, func() {
		pb.mu.Lock()
		defer pb.mu.Unlock()
		if !pb.updated && !pb.waiting && !pb.finished {
			pb.waiting = true
			fmt.Fprintf(pb.out, "looking for providers of %s... (Ctrl-C stops)\n", id)
		}
	})
	if c.r.tty == nil {
		return pb
	}
	if name == "" {
		name = id.String()
	}
	if r := []rune(name); len(r) > 24 {
		name = string(r[:23]) + "…"
	}
	// The bar needs the terminal itself (cursor movement, width), not the
	// line editor's writer; no prompt is shown while a command runs.
	pb.p = mpb.New(mpb.WithOutput(c.r.tty), mpb.WithWidth(40), mpb.WithAutoRefresh())
	pb.bar = pb.p.New(0, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
		mpb.AppendDecorators(
			decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30), decor.Name(" "),
			decor.EwmaETA(decor.ET_STYLE_GO, 30), decor.Name(" "),
			decor.Any(func(decor.Statistics) string {
				if n := pb.peers(); n > 0 || !pb.isWaiting() {
					return fmt.Sprintf("%d provider(s)", n)
				}
				return "waiting for providers (Ctrl-C pauses; progress is kept)"
			}),
		),
	)
	return pb
}

func (pb *progressBar) peers() int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.providers
}

func (pb *progressBar) isWaiting() bool {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.waiting
}

// update takes a progress report. Besides moving the bar, it tells the user
// when no provider is left (the download waits, its progress kept) and when
// one is back; without a terminal these are the only lines printed before
// the summary.
func (pb *progressBar) update(p transfer.Progress) {
	pb.mu.Lock()
	pb.providers = p.Providers
	pb.updated = true
	switch {
	case p.Providers > 0:
		pb.hadPeers = true
		if pb.waiting && pb.bar == nil {
			fmt.Fprintf(pb.out, "%d provider(s) reachable again: download continues\n", p.Providers)
		}
		pb.waiting = false
	case !pb.waiting && p.Done < p.Total && (pb.hadPeers || time.Since(pb.start) > waitingAfter):
		pb.waiting = true
		if pb.bar == nil {
			fmt.Fprintf(pb.out, "no provider reachable: download waits for providers at %s of %s (Ctrl-C pauses; progress is kept)\n", humanBytes(p.Done), humanBytes(p.Total))
		}
	}
	if pb.bar == nil {
		pb.mu.Unlock()
		return
	}
	now := time.Now()
	elapsed := now.Sub(pb.last)
	if pb.last.IsZero() {
		elapsed = 0
	}
	pb.last = now
	pb.mu.Unlock()
	pb.bar.SetTotal(p.Total, false)
	pb.bar.EwmaSetCurrent(p.Done, elapsed)
}

func (pb *progressBar) done() {
	pb.timer.Stop()
	pb.mu.Lock()
	pb.finished = true // a timer callback already running prints nothing
	pb.mu.Unlock()
	if pb.bar == nil {
		return
	}
	if !pb.bar.Completed() {
		pb.bar.Abort(false)
	}
	pb.p.Wait()
}
