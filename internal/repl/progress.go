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
//
// The bar is drawn only once the file's size is known (the manifest has
// arrived): a get that fails before that shows no empty "0 B / 0 B" bar.
type progressBar struct {
	mu        sync.Mutex
	out       io.Writer // the command's output, for messages
	draw      io.Writer // the terminal the bar is drawn on; nil: no bar
	cols      int       // its width, if it cannot tell (not a terminal)
	name      string
	p         *mpb.Progress
	bar       *mpb.Bar
	providers int // shown on the bar; at 100% the last count while running
	// files, filesDone: a folder's files, shown on the bar (0: a file)
	files, filesDone int
	last             time.Time
	start            time.Time
	hadPeers         bool // some provider was ever connected
	waiting          bool // told the user the download waits for providers
	updated          bool // some progress was reported
	finished         bool // done was called: draw and print nothing more
	timer            *time.Timer
}

// waitingAfter is how long a get may look for its first provider before it
// is reported as waiting.
const waitingAfter = 3 * time.Second

func (c *call) progress(id cid.Cid, name string) *progressBar {
	var draw io.Writer
	if c.r.tty != nil {
		// The bar needs the terminal itself (cursor movement, width), not
		// the line editor's writer; no prompt is shown while a command runs.
		draw = c.r.tty
	}
	return newProgressBar(c.out, draw, c.r.width(), id, name)
}

// maxBarName is the room for the file name on the bar: with the counters,
// rate, ETA and providers, a bar of some length still fits in 80 columns.
const maxBarName = 16

func newProgressBar(out, draw io.Writer, cols int, id cid.Cid, name string) *progressBar {
	if name == "" {
		name = id.String()
	}
	if r := []rune(name); len(r) > maxBarName {
		name = string(r[:maxBarName-1]) + "…"
	}
	pb := &progressBar{out: out, draw: draw, cols: cols, name: name, start: time.Now()}
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
	return pb
}

// newBar starts drawing; pb.mu is held.
func (pb *progressBar) newBar(total int64) {
	pb.p = mpb.New(mpb.WithOutput(pb.draw), mpb.WithWidth(pb.cols), mpb.WithAutoRefresh())
	pb.bar = pb.p.New(total, mpb.BarStyle(), mpb.BarWidth(40),
		mpb.PrependDecorators(decor.Name(pb.name, decor.WCSyncSpaceR), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"),
			decor.Any(func(decor.Statistics) string { return pb.fileCount() })),
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
}

// fileCount is " done/total files" for a folder, "" for a file.
func (pb *progressBar) fileCount() string {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.files == 0 {
		return ""
	}
	return fmt.Sprintf(" %d/%d files", pb.filesDone, pb.files)
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
	if pb.finished {
		pb.mu.Unlock()
		return
	}
	complete := p.Total > 0 && p.Done >= p.Total
	// The last report comes when every provider is idle: at 100% keep
	// the count of those that did the work rather than show 0.
	if !complete || p.Providers > 0 {
		pb.providers = p.Providers
	}
	pb.updated = true
	pb.files, pb.filesDone = p.Files, p.FilesDone
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
	if pb.draw == nil || p.Total <= 0 {
		pb.mu.Unlock()
		return
	}
	first := pb.bar == nil
	if first {
		pb.newBar(p.Total)
	}
	now := time.Now()
	elapsed := now.Sub(pb.last)
	pb.last = now
	bar := pb.bar
	pb.mu.Unlock()
	if first {
		// What a resumed download already had is where the bar starts,
		// not bytes moved now: it must not count in the rate.
		bar.SetCurrent(p.Done)
		return
	}
	bar.EwmaSetCurrent(p.Done, elapsed)
}

// done ends the bar: it stays as last drawn (complete, or where the get
// stopped), and nothing is drawn after done returns.
func (pb *progressBar) done() {
	pb.timer.Stop()
	pb.mu.Lock()
	pb.finished = true // a timer callback or late update prints nothing
	bar, p := pb.bar, pb.p
	pb.mu.Unlock()
	if bar == nil {
		return
	}
	if !bar.Completed() {
		bar.Abort(false)
	}
	p.Wait()
}
