package transfer

import (
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"time"
)

// persistInterval batches bitmap updates: the state file is rewritten at
// most this often while chunks arrive, so after a crash at most this much
// is unmarked (and re-verified from the data file on resume, not fetched).
const persistInterval = 200 * time.Millisecond

// startBackground starts, once the manifest is known, the goroutines that
// persist the verified-chunk bitmap and hash the file's verified prefix in
// order (so the whole-file check at the end has little left to read). The
// returned func stops them and waits.
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
		wg.Add(2)
		go func() {
			defer wg.Done()
			g.persistLoop(p, sc, quit)
		}()
		go func() {
			defer wg.Done()
			g.hashLoop(p, sc, quit)
		}()
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

// hashLoop feeds the verified prefix of the file to the whole-file hash.
func (g *getter) hashLoop(p *partial, sc *scheduler, quit <-chan struct{}) {
	if g.hasher == nil {
		g.hasher = sha256.New()
	}
	buf := g.s.getBuf(p.m.ChunkSize)
	defer g.s.putBuf(buf)
	n := len(p.m.Chunks)
	for g.hashed < n {
		changed := sc.wait()
		for g.hashed < n && sc.isDone(g.hashed) {
			if err := g.hashChunk(p, *buf); err != nil {
				return // finish reads it again and reports the error
			}
		}
		if g.hashed == n {
			return
		}
		select {
		case <-changed:
		case <-quit:
			return
		}
	}
}

func (g *getter) hashChunk(p *partial, buf []byte) error {
	i := g.hashed
	b := buf[:p.m.ChunkLen(i)]
	if _, err := p.data.ReadAt(b, p.m.ChunkOffset(i)); err != nil && err != io.EOF {
		return err
	}
	g.hasher.Write(b)
	g.hashed++
	return nil
}

// fileHash completes the whole-file hash (after the background hasher
// stopped) and returns it.
func (g *getter) fileHash(p *partial) ([32]byte, error) {
	if g.hasher == nil {
		g.hasher = sha256.New()
	}
	buf := g.s.getBuf(p.m.ChunkSize)
	defer g.s.putBuf(buf)
	for g.hashed < len(p.m.Chunks) {
		if err := g.hashChunk(p, *buf); err != nil {
			return [32]byte{}, fmt.Errorf("read back: %w", err)
		}
	}
	return [32]byte(g.hasher.Sum(nil)), nil
}
