package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// errRefetch: finish found marked chunks damaged on disk and unmarked
// them; run downloads them again (once: checkTrusted runs once a Get).
var errRefetch = errors.New("chunks damaged on disk")

// finish moves the file into place once every chunk is verified. A file
// held in memory (one chunk at most, see getter.fast) and one assembled in
// a data file take the same way; only the partial's methods differ.
//
// The file is not hashed again as a whole: the CID is the hash of the
// manifest, the manifest lists every chunk's SHA-256, and every chunk this
// Get fetched was checked against it (worker.store) before it was written,
// so the file is the one the CID names. (That second full pass was a
// third of the fetcher's CPU, see cmd/p2pbench/findings.md.) The
// whole-file SHA-256 reported is the manifest's, vouched for by the CID
// like the rest of it. What a whole-file hash also caught, chunks a
// resumed download trusted from its bitmap that were damaged on disk
// since, checkTrusted verifies chunk by chunk.
func (g *getter) finish() (*Result, error) {
	p := g.part
	if err := p.sync(); err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: sync: %w", g.c, err)}
	}
	if err := g.checkTrusted(p); err != nil {
		return nil, err
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

// checkTrusted verifies again, from the data file, the chunks a resumed
// download took as verified from its bitmap (getter.trusted): one may have
// been damaged on disk since. It unmarks the damaged ones and returns
// errRefetch, so that they are fetched again, or nil if every one still
// verifies. Chunks this Get fetched were verified in memory before they
// were written and are not read back.
func (g *getter) checkTrusted(p *partial) error {
	trusted := g.trusted
	g.trusted = nil // checked once; what is fetched again is verified as it arrives
	if !slices.Contains(trusted, true) {
		return nil
	}
	done := g.sched.snapshot(nil)
	bad, err := p.recheck(done, trusted)
	if err != nil {
		return &fatalError{fmt.Errorf("transfer %s: re-verify partial data: %w", g.c, err)}
	}
	if bad == 0 {
		return nil
	}
	if err := p.persist(done); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: %w", g.c, err)}
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
// same) or ErrExists is returned as it is.
func (g *getter) unfinished(err error) error {
	dir := partialDir(g.s.cfg.DownloadDir, g.c)
	g.mu.Lock()
	p := g.part
	g.mu.Unlock()
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
		if errors.As(err, &fe) {
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
	if errors.Is(err, ErrExists) {
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
