package manifest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Build hashes the size bytes readable from r into a manifest.
//
// The file is read once, sequentially. Each chunk buffer goes to two
// consumers at the same time: the whole-file hasher, which must see chunks
// in order, and a pool of chunk hashers; so on a 2-core machine both SHA-256
// passes run in parallel and the cost is close to a single pass.
func Build(ctx context.Context, r io.Reader, size int64, chunkSize int) (*Manifest, error) {
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("manifest: chunk size %d out of range", chunkSize)
	}
	if size < 0 {
		return nil, fmt.Errorf("manifest: negative size")
	}
	n := NumChunks(size, chunkSize)
	if n > MaxChunks {
		return nil, fmt.Errorf("manifest: file of %d bytes has more than %d chunks", size, MaxChunks)
	}
	m := &Manifest{Size: size, ChunkSize: chunkSize, Chunks: make([]Hash, n)}
	if n == 0 {
		m.FileHash = sha256.Sum256(nil)
		return m, nil
	}

	workers := max(runtime.GOMAXPROCS(0)-1, 1)
	nbufs := min(2*workers+2, n)
	type job struct {
		i    int
		data []byte
		refs *atomic.Int32
		buf  []byte
	}
	free := make(chan []byte, nbufs)
	for range nbufs {
		free <- make([]byte, chunkSize)
	}
	release := func(j job) {
		if j.refs.Add(-1) == 0 {
			free <- j.buf
		}
	}
	ordered := make(chan job, nbufs)
	chunks := make(chan job, nbufs)
	var readErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	go func() {
		defer close(ordered)
		defer close(chunks)
		remaining := size
		for i := 0; i < n; i++ {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				readErr = ctx.Err()
				return
			}
			l := min(int64(chunkSize), remaining)
			if _, err := io.ReadFull(r, buf[:l]); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				readErr = fmt.Errorf("manifest: read chunk %d: %w (file shorter than %d bytes?)", i, err, size)
				return
			}
			remaining -= l
			refs := new(atomic.Int32)
			refs.Store(2)
			j := job{i: i, data: buf[:l], refs: refs, buf: buf}
			ordered <- j
			chunks <- j
		}
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range chunks {
				m.Chunks[j.i] = sha256.Sum256(j.data)
				release(j)
			}
		}()
	}
	whole := sha256.New()
	for j := range ordered {
		whole.Write(j.data)
		release(j)
	}
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	copy(m.FileHash[:], whole.Sum(nil))
	return m, nil
}
