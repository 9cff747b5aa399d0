package transfer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// copyLocal copies, instead of fetching, the items this node already has:
// a file it publishes (Source.Open) or one a collection download completed
// (the completed log). The copy is verified on the way: its manifest is
// rebuilt with the source's chunk size and must have the item's CID. It
// returns the items still to fetch.
func (cg *collGet) copyLocal(ctx context.Context, items []*citem) ([]*citem, error) {
	var comp map[string][]completedRec
	left := items[:0:0]
	for _, it := range items {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		ok, err := cg.copyPublished(ctx, it)
		if err != nil {
			return nil, err
		}
		if !ok {
			if comp == nil {
				comp = cg.s.readCompleted()
			}
			for _, r := range comp[it.c.KeyString()] {
				if r.Folder || r.Size != it.size {
					continue
				}
				f, err := os.Open(r.Path)
				if err != nil {
					continue
				}
				ok, err = cg.copyFrom(ctx, f, it, r.ChunkSize)
				f.Close()
				if err != nil {
					return nil, err
				}
				if ok {
					break
				}
			}
		}
		if !ok {
			left = append(left, it)
		}
	}
	return left, nil
}

// copyPublished copies it from the file this node publishes under its CID.
func (cg *collGet) copyPublished(ctx context.Context, it *citem) (bool, error) {
	src := cg.s.cfg.Source
	if src == nil {
		return false, nil
	}
	m, f, err := src.Open(it.c, cg.s.cfg.Host.ID()) // this node itself: any audience
	if err != nil {
		return false, nil
	}
	defer f.Close()
	if m.Size != it.size {
		return false, nil
	}
	return cg.copyFrom(ctx, f, it, m.ChunkSize)
}

// copyFrom copies it from f, whose manifest (if f holds it) has chunks of
// chunkSize: into the first path that holds it, verified (false if f does
// not hold it, and nothing is kept), then to the others.
func (cg *collGet) copyFrom(ctx context.Context, f *os.File, it *citem, chunkSize int) (bool, error) {
	if chunkSize < manifest.MinChunkSize || chunkSize > manifest.MaxChunkSize {
		return false, nil
	}
	first := cg.coll.Entries[it.entries[0]]
	dst := cg.stagePath(first.Path)
	if it.size <= int64(chunkSize) {
		// One chunk: read it, check it, write it.
		b := make([]byte, it.size)
		if _, err := f.ReadAt(b, 0); err != nil {
			return false, nil
		}
		sum := sha256.Sum256(b)
		m := &manifest.Manifest{Size: it.size, ChunkSize: chunkSize, FileHash: sum, Chunks: []manifest.Hash{sum}}
		if !m.CID().Equals(it.c) {
			return false, nil
		}
		for _, i := range it.entries {
			if err := cg.writeEntry(i, b); err != nil {
				return false, err
			}
			cg.fileDone(i, chunkSize, 0)
			cg.copied.Add(1)
		}
		return true, nil
	}
	if err := cg.mkdir.parent(first.Path); err != nil {
		return false, &fatalError{fmt.Errorf("transfer %s: create folder for %s: %w", cg.c, first.Path, err)}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, entryMode(first))
	if err != nil {
		return false, &fatalError{fmt.Errorf("transfer %s: write %s: %w", cg.c, first.Path, err)}
	}
	m, err := manifest.Build(ctx, io.TeeReader(io.NewSectionReader(f, 0, it.size), out), it.size, chunkSize)
	if cerr := out.Close(); err == nil && cerr != nil {
		os.Remove(dst)
		return false, &fatalError{fmt.Errorf("transfer %s: write %s: %w", cg.c, first.Path, cerr)}
	}
	if err != nil || !m.CID().Equals(it.c) {
		os.Remove(dst)
		if ctx.Err() != nil {
			return false, context.Cause(ctx)
		}
		return false, nil
	}
	if first.Executable {
		os.Chmod(dst, 0o755)
	}
	cg.fileDone(it.entries[0], chunkSize, 0)
	cg.copied.Add(1)
	for _, i := range it.entries[1:] {
		if err := cg.copyStaged(dst, i); err != nil {
			return false, err
		}
		cg.fileDone(i, chunkSize, 0)
		cg.copied.Add(1)
	}
	return true, nil
}

// startProgress starts the goroutine that reports the collection's
// progress (GetOptions.Progress): bytes of the files in place plus those
// of the large files being fetched, files done of the selected files.
func (cg *collGet) startProgress() (stop func()) { return runProgress(cg.report) }

// report takes one progress sample of the collection and passes it on.
func (cg *collGet) report(rm *rateMeter, _ bool) {
	p := cg.snapshot()
	p.Rate = rm.add(time.Now(), p.Done)
	if p.Rate > 0 && p.Total > p.Done {
		p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second))
	}
	cg.g.mu.Lock()
	cg.g.rate = p.Rate
	cg.g.mu.Unlock()
	if cg.g.opt.Progress != nil {
		cg.g.opt.Progress(p)
	}
}

// snapshot is the collection's progress now (without the rate).
func (cg *collGet) snapshot() Progress {
	done := cg.doneBytes.Load()
	cg.bigMu.Lock()
	for _, n := range cg.bigDone {
		done += n
	}
	cg.bigMu.Unlock()
	provs := 0
	cg.active.Range(func(_, v any) bool {
		if v.(interface{ Load() int32 }).Load() > 0 {
			provs++
		}
		return true
	})
	cg.g.mu.Lock()
	name := cg.g.name
	cg.g.mu.Unlock()
	return Progress{CID: cg.c, Name: name, Total: cg.total.Load(), Done: done, Providers: provs,
		Files: int(cg.files.Load()), FilesDone: int(cg.filesDone.Load())}
}

// rateMeter measures a transfer rate over the last rateWindow.
type rateMeter struct{ samples []sample }

// add records that done bytes were reached at now and returns the rate.
func (r *rateMeter) add(now time.Time, done int64) float64 {
	r.samples = append(r.samples, sample{now, done})
	for len(r.samples) > 1 && now.Sub(r.samples[0].t) > rateWindow {
		r.samples = r.samples[1:]
	}
	if s0 := r.samples[0]; now.Sub(s0.t) > 0 {
		return float64(done-s0.bytes) / now.Sub(s0.t).Seconds()
	}
	return 0
}

// providers lists the peers a session is fetching from now.
func (cg *collGet) providers() []peer.ID {
	var ps []peer.ID
	cg.active.Range(func(k, v any) bool {
		if v.(interface{ Load() int32 }).Load() > 0 {
			ps = append(ps, k.(peer.ID))
		}
		return true
	})
	slices.Sort(ps)
	return ps
}
