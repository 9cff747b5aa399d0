package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// errRefetch: finish found marked chunks damaged on disk and unmarked
// them; run downloads them again.
var errRefetch = errors.New("chunks damaged on disk")

// maxRechecks bounds the rounds of errRefetch for one Get, in case a disk
// keeps damaging what is written to it.
const maxRechecks = 3

// finish checks the whole file once every chunk is verified and moves it
// into place. A file held in memory (one chunk at most, see getter.fast)
// and one assembled in a data file take the same way; only the partial's
// methods differ.
func (g *getter) finish() (*Result, error) {
	p := g.part
	if err := p.sync(); err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: sync: %w", g.c, err)}
	}
	sum, err := g.fh.sum()
	if err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
	}
	if sum != p.m.FileHash {
		if err := g.recheck(p); err != nil {
			return nil, err
		}
		// Every chunk verifies: the manifest itself is inconsistent.
		p.remove()
		g.mu.Lock()
		g.part = nil
		g.mu.Unlock()
		return nil, fmt.Errorf("transfer %s: %w", g.c, ErrCorrupt)
	}
	if err := p.setFinalMode(); err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
	}
	final, err := g.placeFile(p)
	if err != nil {
		// Keep the complete partial: a Get with another name finishes at
		// once. (One held in memory is written to disk by unfinished.)
		if perr := p.persist(g.sched.snapshot(nil)); perr != nil {
			g.log().Warn("save state", "err", perr)
		}
		return nil, fmt.Errorf("transfer %s: %w", g.c, err)
	}
	if err := p.remove(); err != nil {
		g.log().Warn("remove partial download", "err", err)
	}
	res := g.result(p, final)
	if !g.opt.fileOnly { // a folder's member is recorded with its folder
		g.s.recordFile(g.c, res)
	}
	return res, nil
}

// recheck runs when the whole-file hash does not match. A chunk marked
// verified may have been damaged on disk since (a resumed download trusts
// the marks): recheck unmarks such chunks and returns errRefetch, so that
// they are fetched again. It returns nil if every chunk still verifies.
func (g *getter) recheck(p *partial) error {
	done := g.sched.snapshot(nil)
	bad, err := p.recheck(done)
	if err != nil {
		return &fatalError{fmt.Errorf("transfer %s: re-verify partial data: %w", g.c, err)}
	}
	if bad == 0 {
		return nil
	}
	if err := p.persist(done); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
	}
	if g.rechecks++; g.rechecks > maxRechecks {
		return &fatalError{fmt.Errorf("transfer %s: %d chunks damaged on disk after they were verified, %d times over",
			g.c, bad, g.rechecks)}
	}
	g.log().Warn("chunks damaged on disk since they were verified; fetching them again", "chunks", bad)
	g.resumed = max(g.resumed-bad, 0)
	g.setup(p, done)
	return errRefetch
}

// placeFile puts the verified file in place (place.go): at
// GetOptions.Output exactly, or under its name in the downloads folder,
// numbered if the name is taken. It returns the final path.
func (g *getter) placeFile(p *partial) (string, error) {
	dst, exact := g.opt.Output, true
	if dst == "" {
		dst, exact = filepath.Join(g.s.cfg.DownloadDir, g.name), false
	}
	final, err := p.placeAt(dst, exact)
	if final != "" && err != nil {
		// The link succeeded: the file is in place under its final name.
		// Keeping the partial would make the next Get link a second copy.
		g.log().Warn("file in place but its directory could not be synced; it may not survive a crash",
			"path", final, "err", err)
		err = nil
	}
	return final, err
}

// result describes the finished download placed at final.
func (g *getter) result(p *partial, final string) *Result {
	res := &Result{
		Path: final, Size: p.m.Size, SHA256: p.m.FileHash, CID: g.c,
		Duration: time.Since(g.startAt), Fetched: int(g.fetched.Load()), Resumed: g.resumed,
		FetchedBytes: g.fetchedBytes.Load(), ChunkSize: p.m.ChunkSize,
	}
	g.mu.Lock()
	from := g.manifestFrom
	g.mu.Unlock()
	res.Providers, res.Bad = g.swarm.outcome(from)
	g.log().Info("download complete", "path", final, "bytes", p.m.Size, "fetched", res.Fetched, "resumed", res.Resumed,
		"providers", len(res.Providers), "bad", len(res.Bad), "duration", res.Duration)
	return res
}

// unfinished ends a Get that returns err instead of a file. Canceled: its
// partial data is removed. Paused (ctx ended) or no provider left: what
// was verified is kept on disk, a download held in memory included, and a
// later Get resumes it. A fatal error (what was verified saved all the
// same), ErrCorrupt or ErrExists is returned as it is.
func (g *getter) unfinished(err error) error {
	dir := partialDir(g.s.cfg.DownloadDir, g.c)
	g.mu.Lock()
	p, fh := g.part, g.fh
	g.mu.Unlock()
	if fh != nil {
		fh.release()
	}
	if errors.Is(context.Cause(g.ctx), ErrCanceled) {
		if p != nil {
			p.remove()
		} else {
			os.RemoveAll(dir)
		}
		return fmt.Errorf("transfer %s: %w", g.c, ErrCanceled)
	}
	if p == nil {
		return err
	}
	var fe *fatalError
	if p.inMem {
		if errors.As(err, &fe) || errors.Is(err, ErrCorrupt) {
			return err
		}
		// Paused (or the name was taken): keep what was verified as an
		// ordinary partial download, which a later Get resumes.
		q, serr := p.spill(dir, g.sched.snapshot(nil))
		if serr != nil {
			return fmt.Errorf("transfer %s: %w (and saving its state failed: %v)", g.c, err, serr)
		}
		p = q
	}
	defer p.close()
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrExists) {
		return err
	}
	perr := p.persist(g.sched.snapshot(nil))
	if errors.As(err, &fe) {
		// The Get ends, but what was verified is saved if the disk
		// allows: its cause (no provider has the file now, no room on
		// the disk) may pass, and a later Get resumes.
		return err
	}
	if perr != nil {
		return fmt.Errorf("transfer %s: %w (and saving its state failed: %v)", g.c, err, perr)
	}
	n, _ := g.sched.progress()
	return fmt.Errorf("transfer %s: %w: %d of %d chunks kept in %s, get it again to resume: %w",
		g.c, ErrPaused, n, len(p.m.Chunks), dir, err)
}
