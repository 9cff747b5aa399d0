package transfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// The fetching of a collection's files (see collget.go).
const (
	// streamsPerProvider: fetch sessions per provider for small files
	// (the server accepts maxServerStreamsPerPeer).
	streamsPerProvider = 2
	// smallWindow: small files in flight per session (two requests each).
	smallWindow = 64
	// bigParallel: large files fetched at once (each from every provider).
	bigParallel = 2
	// smallWriters: goroutines that write the verified small files into
	// the staging folder. Creating a file (the file system allocating its
	// inode) is most of what a small file costs the fetching node; the
	// sessions hand their verified files over and go on reading, and the
	// files are created on every core at once.
	smallWriters = 4
)

// itemQueue is the small files still to fetch, shared by the sessions of
// every provider. An item is pending, taken by one session, or done.
type itemQueue struct {
	mu       sync.Mutex
	pending  []*citem
	inflight int
	late     []*citem // found to have more than one chunk: for the large-file path
	progress int      // items done (for the round's "did anything move")
	changed  chan struct{}
}

func newItemQueue(items []*citem) *itemQueue {
	return &itemQueue{pending: items, changed: make(chan struct{})}
}

// broadcastLocked wakes the sessions waiting for a change.
func (q *itemQueue) broadcastLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// take returns the next pending item p has not refused, or nil and a
// channel closed at the next change (nil if nothing can change: the
// session is done).
func (q *itemQueue) take(p peer.ID) (*citem, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, it := range q.pending {
		if it.refused[p] == nil {
			// Mostly the first: slicing it off keeps a take O(1) (a
			// folder of 100,000 files would otherwise move 40 GB).
			if i == 0 {
				q.pending[0] = nil
				q.pending = q.pending[1:]
			} else {
				q.pending = slices.Delete(q.pending, i, i+1)
			}
			q.inflight++
			return it, nil
		}
	}
	if q.inflight == 0 {
		return nil, nil
	}
	return nil, q.changed
}

// putBack returns taken items to the queue.
func (q *itemQueue) putBack(its []*citem) {
	if len(its) == 0 {
		return
	}
	q.mu.Lock()
	q.pending = append(q.pending, its...)
	q.inflight -= len(its)
	q.broadcastLocked()
	q.mu.Unlock()
}

// refuse returns it to the queue for the other providers: p does not
// serve it, and answered re.
func (q *itemQueue) refuse(it *citem, p peer.ID, re *refusedError) {
	q.mu.Lock()
	if it.refused == nil {
		it.refused = make(map[peer.ID]*refusedError)
	}
	it.refused[p] = re
	q.mu.Unlock()
	q.putBack([]*citem{it})
}

// finish ends a taken item: done, or (toBig) to be fetched as a large file.
func (q *itemQueue) finish(it *citem, toBig bool) {
	q.mu.Lock()
	q.inflight--
	if toBig {
		q.late = append(q.late, it)
	} else {
		q.progress++
	}
	q.broadcastLocked()
	q.mu.Unlock()
}

// state returns the pending items and the count of items done.
func (q *itemQueue) state() (pending []*citem, done int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending, q.progress
}

func (q *itemQueue) hasLate() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.late) > 0
}

// takeLate returns (and forgets) the items moved to the large-file path.
func (q *itemQueue) takeLate() []*citem {
	q.mu.Lock()
	defer q.mu.Unlock()
	late := q.late
	q.late = nil
	return late
}

// cprov is a provider of the collection.
type cprov struct {
	ai  peer.AddrInfo
	bad bool // sent bad data: never again for this collection
}

// fetch gets items (none done, none held locally) from the collection's
// providers, in rounds: each round runs streamsPerProvider sessions of
// pipelined small files on every usable provider and the large files
// (Get each, bigParallel at once), until they end; between rounds,
// providers are searched for again (the Finder, with backoff when a round
// moved nothing).
func (cg *collGet) fetch(ctx context.Context, from peer.ID, items []*citem) error {
	var small, big []*citem
	for _, it := range items {
		if it.size > smallMax {
			big = append(big, it)
		} else {
			small = append(small, it)
		}
	}
	q := newItemQueue(small)
	provs := make(map[peer.ID]*cprov)
	var order []peer.ID
	add := func(ai peer.AddrInfo) {
		if ai.ID == cg.s.cfg.Host.ID() || (len(cg.g.opt.From) > 0 && !containsPeer(cg.g.opt.From, ai.ID)) {
			return
		}
		if p := provs[ai.ID]; p != nil {
			if len(ai.Addrs) > 0 {
				p.ai = ai
			}
			return
		}
		provs[ai.ID] = &cprov{ai: ai}
		order = append(order, ai.ID)
	}
	// The providers the search for the document found, the one that
	// sent it first.
	if from != "" {
		add(peer.AddrInfo{ID: from})
	}
	cg.g.swarm.mu.Lock()
	for _, ps := range cg.g.swarm.provs {
		if ps.status != pBad {
			add(ps.ai)
		} else if p := provs[ps.ai.ID]; p != nil {
			p.bad = true
		}
	}
	cg.g.swarm.mu.Unlock()

	backoff := cg.s.cfg.RetryInterval
	searched := false
	for {
		pending, doneBefore := q.state()
		big = append(big, q.takeLate()...)
		if len(pending) == 0 && len(big) == 0 {
			return nil
		}
		var usable []peer.AddrInfo
		for _, id := range order {
			if !provs[id].bad {
				usable = append(usable, provs[id].ai)
			}
		}
		if len(usable) == 0 || !searched {
			for ai := range cg.search(ctx) {
				add(ai)
			}
			searched = true
			usable = usable[:0]
			for _, id := range order {
				if !provs[id].bad {
					usable = append(usable, provs[id].ai)
				}
			}
		}
		if len(usable) == 0 {
			if err := sleepCtx(ctx, backoff); err != nil {
				return fmt.Errorf("%w: %w", ErrNoProviders, context.Cause(ctx))
			}
			backoff = min(backoff*2, maxRetry)
			searched = false
			continue
		}
		if err := cg.round(ctx, usable, q, big, provs); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		before := len(big)
		big = slices.DeleteFunc(big, cg.bigFinished)
		bigDone := before - len(big)
		pending, doneAfter := q.state()
		if doneAfter > doneBefore || bigDone > 0 || q.hasLate() {
			backoff = cg.s.cfg.RetryInterval
			continue
		}
		// Nothing moved: every usable provider refused what is left, or
		// they are all lost for now.
		if it := refusedByAll(pending, usable); it != nil && len(big) == 0 {
			return &fatalError{cg.refusedErr(it, usable)}
		}
		cg.g.swarm.waiting.Store(true)
		if err := sleepCtx(ctx, backoff); err != nil {
			return context.Cause(ctx)
		}
		backoff = min(backoff*2, maxRetry)
		searched = false
	}
}

func containsPeer(ps []peer.ID, p peer.ID) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// refusedByAll returns an item that every provider in usable refused.
// Callers hold no lock: it runs between rounds, when no session runs.
func refusedByAll(pending []*citem, usable []peer.AddrInfo) *citem {
	for _, it := range pending {
		all := true
		for _, ai := range usable {
			if it.refused[ai.ID] == nil {
				all = false
				break
			}
		}
		if all {
			return it
		}
	}
	return nil
}

// refusedErr is the end of a download that no provider in usable serves
// it for (refusedByAll): with each one's answer, as a file's Get ends
// (swarm.allRefused), so that a folder whose audience no longer admits
// this node ends with the NOT_SERVED refusal a file does.
func (cg *collGet) refusedErr(it *citem, usable []peer.AddrInfo) error {
	var errs []error
	for _, ai := range usable {
		errs = append(errs, fmt.Errorf("peer %s: %w", ai.ID, it.refused[ai.ID]))
	}
	e := cg.coll.Entries[it.entries[0]]
	return fmt.Errorf("transfer %s: no provider serves %s (%s): %w", cg.c, e.Path, it.c, errors.Join(errs...))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// search asks for the collection's providers: the hints, the peers of
// GetOptions.From, and the Finder.
func (cg *collGet) search(ctx context.Context) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		send := func(ai peer.AddrInfo) bool {
			select {
			case out <- ai:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, ai := range cg.g.opt.Hints {
			if !send(ai) {
				return
			}
		}
		for _, id := range cg.g.opt.From {
			if !send(peer.AddrInfo{ID: id}) {
				return
			}
		}
		if cg.s.cfg.Finder == nil {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for ai := range cg.s.cfg.Finder.FindProviders(sctx, cg.c) {
			if !send(ai) {
				return
			}
		}
	}()
	return out
}

// round runs the sessions of one round until they end.
func (cg *collGet) round(ctx context.Context, usable []peer.AddrInfo, q *itemQueue, big []*citem, provs map[peer.ID]*cprov) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fatal error
	fail := func(err error) {
		mu.Lock()
		if fatal == nil {
			fatal = err
		}
		mu.Unlock()
		cancel(err)
	}
	pending, _ := q.state()
	if len(pending) > 0 {
		cg.g.swarm.waiting.Store(false)
		w := cg.startWriters(q, fail)
		var sessions sync.WaitGroup
		for _, ai := range usable {
			for range streamsPerProvider {
				sessions.Go(func() {
					err := cg.smallSession(rctx, ai, q, w)
					var fe *fatalError
					switch {
					case err == nil:
					case errors.As(err, &fe):
						fail(fe)
					case errors.Is(err, errBadData) && rctx.Err() == nil:
						mu.Lock()
						provs[ai.ID].bad = true
						mu.Unlock()
						cg.g.log().Warn("provider sent bad data; dropped for this folder", "peer", ai.ID, "err", err)
					default:
						cg.g.log().Info("provider lost", "peer", ai.ID, "err", err)
					}
				})
			}
		}
		// The writers end after the sessions, having written every file
		// handed to them (verified: worth keeping even if the round is
		// being stopped).
		wg.Go(func() {
			sessions.Wait()
			w.close()
		})
	}
	if len(big) > 0 {
		// In order, bigParallel at once.
		next := make(chan int)
		for range min(bigParallel, len(big)) {
			wg.Go(func() {
				for i := range next {
					err := cg.getBig(rctx, big[i], usable)
					var fe *fatalError
					if err != nil && (errors.As(err, &fe) || (!errors.Is(err, ErrPaused) && rctx.Err() == nil)) {
						fail(&fatalError{err})
					}
				}
			})
		}
		wg.Go(func() {
			defer close(next)
			for i := range big {
				select {
				case next <- i:
				case <-rctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return fatal
}

// bigFinished reports whether every entry of it is marked.
func (cg *collGet) bigFinished(it *citem) bool {
	for _, i := range it.entries {
		if cg.marks.chunkSize(i) == 0 {
			return false
		}
	}
	return true
}

// getBig fetches a large file with an ordinary Get into the staging
// folder (its own partial download resumes it), then copies it to the
// other paths that hold the same CID.
func (cg *collGet) getBig(ctx context.Context, it *citem, provs []peer.AddrInfo) error {
	first := cg.coll.Entries[it.entries[0]]
	if err := cg.mkdir.parent(first.Path); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: create folder for %s: %w", cg.c, first.Path, err)}
	}
	dst := cg.stagePath(first.Path)
	os.Remove(dst) // a leftover of an interrupted Get: not marked, so not trusted
	key := it.c.KeyString()
	res, err := cg.s.Get(ctx, it.c, GetOptions{
		Name: path.Base(first.Path), Output: dst, Hints: provs, From: cg.g.opt.From, fileOnly: true,
		Progress: func(p Progress) {
			cg.bigMu.Lock()
			cg.bigDone[key] = p.Done
			cg.bigMu.Unlock()
		},
	})
	cg.bigMu.Lock()
	delete(cg.bigDone, key)
	cg.bigMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", first.Path, err)
	}
	if res.Size != it.size {
		os.Remove(dst)
		return &fatalError{fmt.Errorf("transfer %s: %w: %s is %d bytes, the folder says %d", cg.c, ErrCorrupt, first.Path, res.Size, it.size)}
	}
	if first.Executable {
		if err := os.Chmod(dst, 0o755); err != nil {
			return &fatalError{fmt.Errorf("transfer %s: %s: %w", cg.c, first.Path, err)}
		}
	}
	cg.fileDone(it.entries[0], res.ChunkSize, res.FetchedBytes)
	for _, i := range it.entries[1:] {
		if err := cg.copyStaged(dst, i); err != nil {
			return err
		}
		cg.fileDone(i, res.ChunkSize, 0)
	}
	return nil
}

// copyStaged copies the staged file src (verified) to entry i.
func (cg *collGet) copyStaged(src string, i int) error {
	e := cg.coll.Entries[i]
	if err := cg.mkdir.parent(e.Path); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: create folder for %s: %w", cg.c, e.Path, err)}
	}
	in, err := os.Open(src)
	if err == nil {
		defer in.Close()
		var out *os.File
		if out, err = os.OpenFile(cg.stagePath(e.Path), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, entryMode(e)); err == nil {
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		return &fatalError{fmt.Errorf("transfer %s: copy to %s: %w", cg.c, e.Path, err)}
	}
	return nil
}

// smallSession fetches small files from one provider over one session
// (a kept one if there is one; one that fails before its first answer is
// replaced by a new one, as in work).
func (cg *collGet) smallSession(ctx context.Context, ai peer.AddrInfo, q *itemQueue, w *fileWriters) error {
	cn, err := cg.s.connect(ctx, ai, cg.c)
	if err != nil {
		return fmt.Errorf("open fetch stream: %w", err)
	}
	n := cg.activeCount(ai.ID)
	n.Add(1)
	defer n.Add(-1)
	err = cg.pipeline(ctx, cn, q, w)
	var fe *fatalError
	if err != nil && cn.reused && !cn.answered && ctx.Err() == nil && !errors.Is(err, errBadData) && !errors.As(err, &fe) {
		if cn, err = cg.s.dial(ctx, ai, cg.c); err != nil {
			return fmt.Errorf("open fetch stream: %w", err)
		}
		err = cg.pipeline(ctx, cn, q, w)
	}
	return err
}

func (cg *collGet) activeCount(p peer.ID) *atomic.Int32 {
	v, _ := cg.active.LoadOrStore(p, new(atomic.Int32))
	return v.(*atomic.Int32)
}

// pipeline keeps up to smallWindow files in flight on cn: for each, a
// MANIFEST and a CHUNKS request for chunk 0, written in batches (one
// flush for many requests), answered in order by the server. It returns
// nil when nothing is left for this provider; the session is then kept.
func (cg *collGet) pipeline(ctx context.Context, cn *conn, q *itemQueue, w *fileWriters) (err error) {
	var sent []*citem
	defer func() {
		q.putBack(sent)
		if err != nil {
			cn.reset()
		} else {
			cg.s.keep(cn)
		}
	}()
	bw := bufio.NewWriterSize(cn.st, 16<<10)
	for {
		var wait <-chan struct{}
		if len(sent) <= smallWindow/2 {
			for len(sent) < smallWindow {
				it, ch := q.take(cn.peer)
				if it == nil {
					wait = ch
					break
				}
				if err := cn.begin(); err != nil {
					q.putBack([]*citem{it})
					return err
				}
				sent = append(sent, it)
				cb := it.c.Bytes()
				proto.WriteMsg(bw, &proto.FetchRequest{Kind: proto.FetchRequest_MANIFEST, Cid: cb})
				proto.WriteMsg(bw, &proto.FetchRequest{Kind: proto.FetchRequest_CHUNKS, Cid: cb, FirstChunk: 0, Count: 1})
			}
			if bw.Buffered() > 0 {
				cn.st.SetWriteDeadline(time.Now().Add(ioTimeout))
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("send requests: %w", err)
				}
			}
		}
		if len(sent) == 0 {
			if wait == nil {
				return nil
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		it := sent[0]
		if err = cg.receiveSmall(cn, it, q, w); err != nil {
			return err
		}
		sent = sent[1:]
		cn.done()
	}
}

// receiveSmall reads the two answers for it (manifest, chunk 0), verifies
// them and hands the file to the writers w (which write every path that
// holds it). A refusal gives it back for other providers; a manifest of
// more than one chunk sends it to the large-file path.
func (cg *collGet) receiveSmall(cn *conn, it *citem, q *itemQueue, w *fileWriters) error {
	var m *manifest.Manifest
	var refused *refusedError
	resp, err := cn.readResponse()
	if err != nil {
		return err
	}
	if resp.GetStatus() != proto.FetchResponse_OK {
		refused = &refusedError{resp.GetStatus(), resp.GetMessage()}
	} else {
		// The largest manifest a file of this size can have.
		maxLen := uint64(manifest.HeaderLen + manifest.NumChunks(it.size, manifest.MinChunkSize)*sha256.Size)
		if l := resp.GetLength(); l > maxLen || l < manifest.HeaderLen {
			return fmt.Errorf("%w: manifest of %d bytes for a file of %d", errBadData, l, it.size)
		}
		sr, err := cn.openSealed(it.c, 0)
		if err != nil {
			return err
		}
		mb := make([]byte, resp.GetLength())
		if err := cn.readFull(sr, mb); err != nil {
			return err
		}
		if err := cn.finish(sr); err != nil {
			return err
		}
		if m, err = manifest.Verify(it.c, mb); err != nil {
			return fmt.Errorf("%w: %w", errBadData, err)
		}
		if m.Size != it.size {
			// Verified: the folder's document itself is wrong.
			return &fatalError{fmt.Errorf("transfer %s: %w: %s is %d bytes, the folder says %d",
				cg.c, ErrCorrupt, cg.coll.Entries[it.entries[0]].Path, m.Size, it.size)}
		}
	}
	resp, err = cn.readResponse()
	if err != nil {
		return err
	}
	if resp.GetStatus() != proto.FetchResponse_OK || m == nil {
		if resp.GetStatus() == proto.FetchResponse_OK {
			// Served the chunk though not the manifest (published in
			// between): drop it.
			if resp.GetLength() > uint64(it.size) {
				return fmt.Errorf("%w: chunk of %d bytes for a file of %d", errBadData, resp.GetLength(), it.size)
			}
			sr, err := cn.openSealed(it.c, 0)
			if err != nil {
				return err
			}
			if err := cn.discard(sr, int64(resp.GetLength())); err != nil {
				return err
			}
			if err := cn.finish(sr); err != nil {
				return err
			}
		}
		if refused == nil {
			refused = &refusedError{resp.GetStatus(), resp.GetMessage()}
		}
	}
	if refused != nil {
		q.refuse(it, cn.peer, refused)
		return nil
	}
	want := m.ChunkLen(0)
	if resp.GetLength() != uint64(want) {
		return fmt.Errorf("%w: announced %d bytes, want %d", errBadData, resp.GetLength(), want)
	}
	sr, err := cn.openSealed(it.c, 0)
	if err != nil {
		return err
	}
	data := make([]byte, want) // the writers' until written
	if err := cn.readFull(sr, data); err != nil {
		return err
	}
	if err := cn.finish(sr); err != nil {
		return err
	}
	if !m.VerifyChunk(0, data) {
		return fmt.Errorf("%w: %s: chunk 0 does not match the manifest", errBadData, it.c)
	}
	if len(m.Chunks) > 1 {
		q.finish(it, true)
		return nil
	}
	if m.FileHash != m.Chunks[0] {
		return &fatalError{fmt.Errorf("transfer %s: %s: %w", cg.c, it.c, ErrCorrupt)}
	}
	w.jobs <- fileWrite{it: it, data: data, chunkSize: m.ChunkSize}
	return nil
}

// fileWrite is a verified small file for the writers.
type fileWrite struct {
	it        *citem
	data      []byte
	chunkSize int
}

// fileWriters write verified small files (every path that holds each)
// into the staging folder, smallWriters at once.
type fileWriters struct {
	jobs chan fileWrite
	wg   sync.WaitGroup
}

// startWriters starts the writers of a round: each file written is done
// in q (and marked); one that cannot be written is given back to q and
// ends the download (fail).
func (cg *collGet) startWriters(q *itemQueue, fail func(error)) *fileWriters {
	w := &fileWriters{jobs: make(chan fileWrite, 2*smallWriters)}
	for range smallWriters {
		w.wg.Go(func() {
			for fw := range w.jobs {
				if err := cg.writeItem(fw.it, fw.data, fw.chunkSize); err != nil {
					q.putBack([]*citem{fw.it})
					fail(err)
					continue
				}
				q.finish(fw.it, false)
			}
		})
	}
	return w
}

// close waits until every file handed over is written.
func (w *fileWriters) close() {
	close(w.jobs)
	w.wg.Wait()
}

// writeItem writes the verified content b of it to every path that holds
// it, and marks each.
func (cg *collGet) writeItem(it *citem, b []byte, chunkSize int) error {
	for k, i := range it.entries {
		if err := cg.writeEntry(i, b); err != nil {
			return err
		}
		fetched := int64(0)
		if k == 0 {
			fetched = int64(len(b))
		}
		cg.fileDone(i, chunkSize, fetched)
	}
	return nil
}

// readResponse reads one FetchResponse.
func (cn *conn) readResponse() (*proto.FetchResponse, error) {
	cn.st.SetReadDeadline(time.Now().Add(ioTimeout))
	var resp proto.FetchResponse
	if err := cn.r.ReadMsg(&resp); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	cn.answered = true
	return &resp, nil
}

// openSealed opens the sealed stream that follows an OK answer, which must
// name c and first chunk start.
func (cn *conn) openSealed(c cid.Cid, start uint64) (*bbsaes.Reader, error) {
	sr, err := cn.sess.NewReader(cn.r)
	if err != nil {
		return nil, sealErr(err)
	}
	if h := sr.Header(); !bytes.Equal(h.CID, c.Bytes()) || h.StartChunk != start {
		return nil, fmt.Errorf("%w: sealed stream header names another CID or chunk", errBadData)
	}
	return sr, nil
}
