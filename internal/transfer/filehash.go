package transfer

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// hashWindowBytes bounds the verified chunks a fileHasher keeps in memory
// while it waits for an earlier chunk (out-of-order arrival from several
// providers); a chunk further ahead is hashed from the data file instead.
const hashWindowBytes = 16 << 20

// fileHasher computes the whole-file SHA-256 of a download in chunk order
// from the verified chunk buffers while they are still in memory, so the
// file is not read back from disk at the end. Chunks that arrive ahead of
// the next one to hash are copied into a bounded reorder window; a chunk
// that falls beyond the window, or was already on disk when the download
// started (resume), is read back from the data file when its turn comes.
//
// Hashing runs outside the lock in whichever goroutine holds the turn
// (busy); the others only deposit their chunk and go on.
type fileHasher struct {
	s    *Service
	m    *manifest.Manifest
	data io.ReaderAt
	win  int // chunks kept ahead of next, at most

	mu      sync.Mutex
	idle    sync.Cond // signalled when busy clears
	h       hash.Hash
	next    int // chunks [0, next) are hashed
	busy    bool
	stopped bool            // advance only by finish from now on
	slots   map[int]*[]byte // copies of chunks next < i < next+win
	onDisk  []bool          // chunks to hash from the data file
	err     error           // a read of the data file failed
}

// newFileHasher starts the whole-file hash of m's file; onDisk marks the
// chunks already verified in data (it is copied).
func newFileHasher(s *Service, m *manifest.Manifest, data io.ReaderAt, onDisk []bool, win int) *fileHasher {
	if win <= 0 {
		win = max(2, hashWindowBytes/m.ChunkSize)
	}
	fh := &fileHasher{s: s, m: m, data: data, win: win, h: sha256.New(),
		slots: make(map[int]*[]byte), onDisk: append([]bool(nil), onDisk...)}
	if len(fh.onDisk) != len(m.Chunks) {
		fh.onDisk = make([]bool, len(m.Chunks))
	}
	fh.idle.L = &fh.mu
	return fh
}

// add gives the hasher chunk i, verified and written to the data file; b
// is only read before add returns. Each chunk is added once.
func (fh *fileHasher) add(i int, b []byte) {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	switch {
	case i < fh.next || fh.slots[i] != nil || fh.onDisk[i]:
		return // already there (cannot happen: each chunk is stored once)
	case i == fh.next && !fh.busy && !fh.stopped:
		fh.busy = true
		fh.mu.Unlock()
		fh.h.Write(b)
		fh.mu.Lock()
		fh.next++
		fh.advanceLocked()
	case i-fh.next < fh.win:
		buf := fh.s.getBuf(len(b))
		copy(*buf, b)
		fh.slots[i] = buf
		// Only i == next can be waiting for: the turn holder (busy)
		// or finish picks it up.
	default:
		fh.onDisk[i] = true
	}
}

// kick hashes whatever is ready (the chunks on disk at the start of a
// resumed download) unless another goroutine holds the turn.
func (fh *fileHasher) kick() {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if fh.busy || fh.stopped {
		return
	}
	fh.busy = true
	fh.advanceLocked()
}

// advanceLocked hashes chunks from next on while they are in the window or
// on disk, then gives up the turn. Called with mu held and busy set; mu is
// released while hashing and reading.
func (fh *fileHasher) advanceLocked() {
	defer func() {
		fh.busy = false
		fh.idle.Broadcast()
	}()
	n := len(fh.m.Chunks)
	for fh.next < n && !fh.stopped && fh.err == nil {
		i := fh.next
		if b := fh.slots[i]; b != nil {
			delete(fh.slots, i)
			fh.mu.Unlock()
			fh.h.Write(*b)
			fh.s.putBuf(b)
			fh.mu.Lock()
		} else if fh.onDisk[i] {
			fh.mu.Unlock()
			err := fh.readChunk(i)
			fh.mu.Lock()
			if err != nil {
				fh.err = err
				return
			}
		} else {
			return
		}
		fh.next++
	}
}

// readChunk hashes chunk i from the data file.
func (fh *fileHasher) readChunk(i int) error {
	buf := fh.s.getBuf(fh.m.ChunkLen(i))
	defer fh.s.putBuf(buf)
	if _, err := fh.data.ReadAt(*buf, fh.m.ChunkOffset(i)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	fh.h.Write(*buf)
	return nil
}

// stop makes the hasher stop at the next chunk, waits for the goroutine
// holding the turn and frees the window. Only sum may follow.
func (fh *fileHasher) stop() {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	fh.stopped = true
	for fh.busy {
		fh.idle.Wait()
	}
}

// sum completes the hash once every chunk is verified on disk: what is not
// hashed yet is taken from the window or read from the data file. Call it
// after stop, when no add can come.
func (fh *fileHasher) sum() ([32]byte, error) {
	fh.stop()
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if fh.err != nil {
		return [32]byte{}, fmt.Errorf("read back: %w", fh.err)
	}
	for ; fh.next < len(fh.m.Chunks); fh.next++ {
		i := fh.next
		if b := fh.slots[i]; b != nil {
			delete(fh.slots, i)
			fh.h.Write(*b)
			fh.s.putBuf(b)
			continue
		}
		if err := fh.readChunk(i); err != nil {
			fh.err = err
			return [32]byte{}, fmt.Errorf("read back: %w", err)
		}
	}
	return [32]byte(fh.h.Sum(nil)), nil
}

// release returns the window's buffers to the pool (a download that
// stops unfinished).
func (fh *fileHasher) release() {
	fh.stop()
	fh.mu.Lock()
	defer fh.mu.Unlock()
	for i, b := range fh.slots {
		delete(fh.slots, i)
		fh.s.putBuf(b)
	}
}
