package transfer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
)

// work downloads from one provider until nothing is left for it, on a
// kept session if there is one. A kept session that fails before its first
// response (the provider closed it meanwhile) is replaced by a new one.
func (g *getter) work(ctx context.Context, ai peer.AddrInfo) error {
	s := g.s
	cn, err := s.connect(ctx, ai, g.c)
	if err != nil {
		return fmt.Errorf("open fetch stream: %w", err)
	}
	err = g.fetchFrom(ctx, cn)
	var fe *fatalError
	if err != nil && cn.reused && !cn.answered && ctx.Err() == nil && !errors.Is(err, errBadData) && !errors.As(err, &fe) {
		g.log().Debug("kept fetch session failed; opening a new one", "peer", ai.ID, "err", err)
		if cn, err = s.dial(ctx, ai, g.c); err != nil {
			return fmt.Errorf("open fetch stream: %w", err)
		}
		err = g.fetchFrom(ctx, cn)
	}
	return err
}

// fetchFrom downloads from one provider over cn until nothing is left for
// it, fetching the manifest first if nobody has yet. Then cn is kept for
// reuse if it ended in order, reset otherwise.
func (g *getter) fetchFrom(ctx context.Context, cn *conn) error {
	g.swarm.streamUp()
	err := g.ensureManifest(ctx, cn)
	if err == nil {
		w := g.newWorker(cn)
		err = w.close(w.run(ctx))
	}
	g.swarm.streamDown()
	if cf := (*collectionFound)(nil); err != nil && !errors.As(err, &cf) {
		cn.reset()
	} else {
		g.s.keep(cn)
	}
	return err
}

// worker fetches chunks from one provider over one stream. It keeps up to
// Config.Window requests in flight, reads each answer off the network and
// hands the chunks to its sink goroutine, which verifies and writes them:
// reading a chunk overlaps verifying and writing the previous ones. A few
// chunk buffers go round between them (sinkBuffers).
type worker struct {
	g  *getter
	cn *conn
	sc *scheduler
	p  *partial

	free       chan *[]byte // chunk buffers not in use
	toSink     chan sinkJob
	sinkResult chan error  // what the sink ended with, once toSink is closed
	sinkFailed atomic.Bool // the sink refused a chunk: stop reading
	sent       []*request  // requests sent and not yet read, oldest first
}

// sinkJob is a chunk read from the network (buf holds it) for the sink to
// verify and write, or a request to release once its chunks are stored.
type sinkJob struct {
	i       int
	buf     *[]byte
	release *request
}

// sinkBytes is about how much of the chunks read a worker holds for its
// sink (at least two chunks). With two 1 MiB buffers, reader and sink ran
// in lock step: each waited for the other about half of the time
// (a write stalled by a concurrent fsync, a scheduling delay on a shared
// machine), and the provider waited on the stream's window meanwhile; four
// absorb such stalls (cmd/p2pbench/findings.md).
const sinkBytes = 4 << 20

// maxSinkBuffers bounds the buffers of a worker whatever the chunk size
// (1 KiB chunks would otherwise make 4,096).
const maxSinkBuffers = 64

// sinkBuffers is the number of chunk buffers of a worker for chunks of
// chunkSize bytes.
func sinkBuffers(chunkSize int) int {
	return max(2, min(maxSinkBuffers, sinkBytes/max(chunkSize, 1)))
}

// errSinkFailed stops a worker whose sink refused a chunk; the sink's own
// error is what the worker reports.
var errSinkFailed = errors.New("chunk refused")

// newWorker starts a worker, and its sink, on cn; the manifest is known.
func (g *getter) newWorker(cn *conn) *worker {
	g.mu.Lock()
	n := sinkBuffers(g.part.m.ChunkSize)
	w := &worker{g: g, cn: cn, sc: g.sched, p: g.part,
		free: make(chan *[]byte, n), toSink: make(chan sinkJob, n), sinkResult: make(chan error, 1)}
	g.mu.Unlock()
	for range n {
		w.free <- g.s.getBuf(w.p.m.ChunkSize)
	}
	go w.sink()
	return w
}

// run asks the scheduler for chunk ranges, sends them as requests and
// reads the answers until nothing is left for this provider (nil) or the
// stream fails.
func (w *worker) run(ctx context.Context) error {
	sc, cn := w.sc, w.cn
	for {
		changed := sc.wait()
		for len(w.sent) < w.g.s.cfg.Window {
			r := sc.next(cn.peer, len(w.sent) == 0)
			if r == nil {
				break
			}
			if err := cn.begin(); err != nil {
				sc.release(r)
				if len(w.sent) == 0 && sc.complete() {
					return nil
				}
				return err
			}
			if err := cn.requestChunks(r.first, r.count); err != nil {
				sc.release(r)
				return fmt.Errorf("send request: %w", err)
			}
			w.sent = append(w.sent, r)
		}
		if len(w.sent) == 0 {
			if sc.complete() {
				return nil
			}
			// Wait for chunks given back by another provider.
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				if sc.complete() {
					return nil
				}
				return ctx.Err()
			}
		}
		r := w.sent[0]
		if err := w.receive(r); err != nil {
			return err
		}
		w.sent = w.sent[1:]
		w.toSink <- sinkJob{release: r}
	}
}

// close ends the worker, whose run returned err, in this order: the sink
// stores what it was given and stops (its error, bad data or a disk
// error, explains whatever the worker saw, so it replaces err); the
// requests not read go back to the scheduler; the chunk buffers, all
// back in free once the sink has stopped, go back to the pool.
func (w *worker) close(err error) error {
	close(w.toSink)
	if serr := <-w.sinkResult; serr != nil {
		err = serr
	}
	for _, r := range w.sent {
		w.sc.release(r)
	}
	for range cap(w.free) {
		w.g.s.putBuf(<-w.free)
	}
	return err
}

// sink verifies and writes the chunks the worker reads, and releases each
// request once its chunks are stored. After a chunk it refused it stores
// nothing more and sets sinkFailed, so that the worker stops.
func (w *worker) sink() {
	var err error
	for j := range w.toSink {
		if j.release != nil {
			w.sc.release(j.release)
			continue
		}
		if err == nil {
			if err = w.store(j.i, (*j.buf)[:w.p.m.ChunkLen(j.i)]); err != nil {
				w.sinkFailed.Store(true)
			}
		}
		w.free <- j.buf
	}
	w.sinkResult <- err
}

// receive reads the answer to r and hands each chunk to the sink.
func (w *worker) receive(r *request) error {
	m, cn := w.p.m, w.cn
	var want uint64
	for i := r.first; i < r.first+r.count; i++ {
		want += uint64(m.ChunkLen(i))
	}
	sr, err := cn.response(uint64(r.first), want)
	if err != nil {
		return err
	}
	for i := r.first; i < r.first+r.count; i++ {
		buf := <-w.free
		if w.sinkFailed.Load() {
			w.free <- buf
			return errSinkFailed
		}
		if err := cn.readFull(sr, (*buf)[:m.ChunkLen(i)]); err != nil {
			w.free <- buf
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		if i == r.first+r.count-1 {
			// The end of the sealed stream is read before the last chunk
			// is handed on: once it is stored (and the download perhaps
			// complete), nothing of this request is left on the wire.
			if err := cn.finish(sr); err != nil {
				w.free <- buf
				return err
			}
			cn.done()
		}
		w.toSink <- sinkJob{i: i, buf: buf}
	}
	return nil
}

// store verifies chunk i and, unless another provider stored it first,
// writes it to the partial file and marks it done. The chunk's hash,
// listed in the manifest that the CID vouches for, is the whole check:
// hashing the file again as a whole would only repeat it (see finish).
func (w *worker) store(i int, b []byte) error {
	g := w.g
	if !w.p.m.VerifyChunk(i, b) {
		return fmt.Errorf("%w: chunk %d does not match the manifest", errBadData, i)
	}
	if w.sc.isDone(i) {
		return nil // an endgame duplicate that lost
	}
	if err := w.p.writeChunk(i, b); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: write partial data: %w", g.c, err)}
	}
	if w.sc.markDone(i) {
		g.fetched.Add(1)
		g.fetchedBytes.Add(int64(len(b)))
		g.swarm.credit(w.cn.peer)
	}
	return nil
}
