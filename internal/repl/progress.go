package repl

import (
	"fmt"
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
	p         *mpb.Progress
	bar       *mpb.Bar
	providers int
	last      time.Time
}

func (c *call) progress(id cid.Cid, name string) *progressBar {
	pb := &progressBar{}
	if c.r.tty == nil {
		return pb
	}
	if name == "" {
		name = id.String()
	}
	if len(name) > 24 {
		name = name[:23] + "…"
	}
	// The bar needs the terminal itself (cursor movement, width), not the
	// line editor's writer; no prompt is shown while a command runs.
	pb.p = mpb.New(mpb.WithOutput(c.r.tty), mpb.WithWidth(40), mpb.WithAutoRefresh())
	pb.bar = pb.p.New(0, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
		mpb.AppendDecorators(
			decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30), decor.Name(" "),
			decor.EwmaETA(decor.ET_STYLE_GO, 30), decor.Name(" "),
			decor.Any(func(decor.Statistics) string { return fmt.Sprintf("%d provider(s)", pb.peers()) }),
		),
	)
	return pb
}

func (pb *progressBar) peers() int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.providers
}

func (pb *progressBar) update(p transfer.Progress) {
	if pb.bar == nil {
		return
	}
	pb.mu.Lock()
	pb.providers = p.Providers
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
	if pb.bar == nil {
		return
	}
	if !pb.bar.Completed() {
		pb.bar.Abort(false)
	}
	pb.p.Wait()
}
