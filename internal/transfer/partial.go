package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
	"github.com/p2pshare/p2pshare/internal/manifest"
)

// On disk, a download in progress is DownloadDir/.partial/<cid>/:
//
//	data   the file being assembled, pre-sized, chunks written at their offsets
//	state  name and manifest (stateFile below), written once, when the
//	       download starts (again only if a resumed Get names it otherwise)
//	done   a bitmap of verified chunks (bit i%8 of byte i/8 is chunk i),
//	       updated in place: a save writes only the bytes that changed
//
// So what a save writes is proportional to the chunks verified since the
// last one, not to the manifest (which a provider chooses: up to 64 MiB).
//
// Invariant: a chunk marked in done is verified and was fsynced in data
// before its mark was written (persist fsyncs data first, then writes the
// changed bytes of done and fsyncs it). A write torn by a crash leaves
// each block of done old or new, and either marks only fsynced chunks, so
// after a crash the worst case is verified chunks that done does not mark
// yet: open re-verifies the unmarked chunks from data instead of fetching
// them again. A done file that is missing or not of its size marks
// nothing (every chunk is re-verified from data). The chunks marked when a
// download is reopened are verified again from data when it finishes
// (getter.checkTrusted), so a marked chunk damaged in place, or a mark
// that survived though recheck unmarked its chunk, is fetched again.
//
// state is replaced atomically (temp file, fsync, rename, fsync dir); it
// is written after data and done exist, so a partial without state is
// one whose creation did not finish. A state of format 1 (name, manifest
// and bitmap in one file, rewritten whole on every save) is read and
// converted.
const (
	partialDirName = ".partial"
	dataName       = "data"
	stateName      = "state"
	doneName       = "done"
	stateMagic     = "p2pt"
	stateVersion   = 2
	stateVersion1  = 1 // the bitmap inside the state file
)

// partial is one download's on-disk state.
type partial struct {
	dir    string
	c      cid.Cid
	m      *manifest.Manifest
	mbytes []byte // the manifest's bytes; kept only for a download in memory (spill)
	name   string
	data   *os.File
	// bitmap is the done file; disk is what it holds, next is the bitmap
	// being saved (both under mu).
	bitmap     *os.File
	disk, next []byte
	mu         sync.Mutex // serialises persist
	resumed    int        // chunks found verified on disk when opened
	// inMem: a download of at most one chunk held in memory (mem, written
	// under mu) instead of a data file; no dir, no state, nothing on disk
	// until getter.finish places it (see getter.fast).
	inMem bool
	mem   []byte
}

// newMemPartial starts a download of a file of at most one chunk in
// memory.
func newMemPartial(c cid.Cid, m *manifest.Manifest, mbytes []byte, name string) *partial {
	return &partial{c: c, m: m, mbytes: mbytes, name: name, inMem: true, mem: make([]byte, m.Size)}
}

// dataReader is what verifyChunks reads chunks back from.
func (p *partial) dataReader() io.ReaderAt {
	if p.inMem {
		return bytes.NewReader(p.mem)
	}
	return p.data
}

// sync fsyncs the data file (nothing to do in memory).
func (p *partial) sync() error {
	if p.inMem {
		return nil
	}
	return p.data.Sync()
}

// setFinalMode gives the data file, once verified, the mode of a finished
// file: 0644 (it is 0600 while assembled; a file held in memory is
// written with 0644 when it is placed).
func (p *partial) setFinalMode() error {
	if p.inMem {
		return nil
	}
	return p.data.Chmod(0o644)
}

// writeChunk stores verified chunk i.
func (p *partial) writeChunk(i int, b []byte) error {
	if p.inMem {
		p.mu.Lock()
		copy(p.mem[p.m.ChunkOffset(i):], b)
		p.mu.Unlock()
		return nil
	}
	_, err := p.data.WriteAt(b, p.m.ChunkOffset(i))
	return err
}

// spill writes an in-memory download to a partial download on disk in dir,
// with done marking its verified chunks, so that an interrupted download
// is kept (paused) like any other.
func (p *partial) spill(dir string, done []bool) (*partial, error) {
	q, err := createPartial(dir, p.c, p.m, p.mbytes, p.name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, d := range done {
		if !d {
			continue
		}
		off := p.m.ChunkOffset(i)
		if _, err := q.data.WriteAt(p.mem[off:off+int64(p.m.ChunkLen(i))], off); err != nil {
			q.remove()
			return nil, err
		}
	}
	if err := q.persist(done); err != nil {
		q.remove()
		return nil, err
	}
	return q, nil
}

func partialDir(downloadDir string, c cid.Cid) string {
	return filepath.Join(downloadDir, partialDirName, c.String())
}

// stateFile is the decoded content of a state file, with the done
// bitmap read beside it.
type stateFile struct {
	name   string
	mbytes []byte
	done   []bool
	// rewrite: the state is of format 1 and must be converted;
	// rewriteDone: the done file is missing or not of its size (so it
	// marks nothing) and must be written whole.
	rewrite, rewriteDone bool
}

// encodeState is the state file of a download: format 2, name and
// manifest, then the SHA-256 of everything before.
func encodeState(name string, mbytes []byte) []byte {
	var b bytes.Buffer
	b.Grow(8 + 2 + len(name) + 4 + len(mbytes) + sha256.Size)
	b.WriteString(stateMagic)
	b.Write([]byte{stateVersion, 0, 0, 0})
	binary.Write(&b, binary.BigEndian, uint16(len(name)))
	b.WriteString(name)
	binary.Write(&b, binary.BigEndian, uint32(len(mbytes)))
	b.Write(mbytes)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

var errBadState = errors.New("bad partial download state")

// decodeState decodes a state file of format 2 (st.done is nil: the
// bitmap is in the done file) or 1 (st.done is its bitmap).
func decodeState(c cid.Cid, b []byte) (*stateFile, *manifest.Manifest, error) {
	if len(b) < 8+2+4+sha256.Size {
		return nil, nil, errBadState
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return nil, nil, fmt.Errorf("%w: checksum", errBadState)
	}
	version := body[4]
	if string(body[:4]) != stateMagic || (version != stateVersion && version != stateVersion1) {
		return nil, nil, fmt.Errorf("%w: unknown format", errBadState)
	}
	body = body[8:]
	nl := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	if len(body) < nl+4 {
		return nil, nil, errBadState
	}
	st := &stateFile{name: string(body[:nl])}
	body = body[nl:]
	ml := int(binary.BigEndian.Uint32(body))
	body = body[4:]
	if len(body) < ml {
		return nil, nil, errBadState
	}
	st.mbytes = body[:ml]
	body = body[ml:]
	m, err := manifest.Verify(c, st.mbytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadState, err)
	}
	n := len(m.Chunks)
	if version == stateVersion {
		if len(body) != 0 {
			return nil, nil, fmt.Errorf("%w: trailing bytes", errBadState)
		}
		return st, m, nil
	}
	if len(body) != bitmapLen(n) {
		return nil, nil, fmt.Errorf("%w: bitmap length", errBadState)
	}
	st.done = decodeBitmap(body, n)
	st.rewrite = true
	return st, m, nil
}

func bitmapLen(n int) int { return (n + 7) / 8 }

func decodeBitmap(bm []byte, n int) []bool {
	done := make([]bool, n)
	for i := range done {
		done[i] = bm[i/8]&(1<<(i%8)) != 0
	}
	return done
}

// encodeBitmap writes done as a bitmap into bm (bitmapLen(len(done)) bytes).
func encodeBitmap(bm []byte, done []bool) {
	clear(bm)
	for i, d := range done {
		if d {
			bm[i/8] |= 1 << (i % 8)
		}
	}
}

// readState reads a partial download's state file and its done bitmap.
func readState(dir string, c cid.Cid) (*stateFile, *manifest.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateName))
	if err != nil {
		return nil, nil, err
	}
	st, m, err := decodeState(c, b)
	if err != nil || st.done != nil {
		return st, m, err
	}
	n := len(m.Chunks)
	bm, err := os.ReadFile(filepath.Join(dir, doneName))
	if err != nil || len(bm) != bitmapLen(n) {
		// Marks nothing: the chunks are re-verified from the data file.
		st.done, st.rewriteDone = make([]bool, n), true
		return st, m, nil
	}
	st.done = decodeBitmap(bm, n)
	return st, m, nil
}

// createPartial starts a new partial download with a verified manifest:
// the data file (pre-sized, sparse), an empty done bitmap, then the state.
func createPartial(dir string, c cid.Cid, m *manifest.Manifest, mbytes []byte, name string) (*partial, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, dataName), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(m.Size); err != nil {
		f.Close()
		return nil, err
	}
	p := &partial{dir: dir, c: c, m: m, name: name, data: f}
	if err := p.openDone(true); err != nil {
		f.Close()
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, stateName), encodeState(name, mbytes), 0o600); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// openDone opens the done bitmap file, making it all zeros if fresh is
// set (or it is not of its size), and loads what it holds.
func (p *partial) openDone(fresh bool) error {
	n := bitmapLen(len(p.m.Chunks))
	flag := os.O_RDWR | os.O_CREATE
	if fresh {
		flag |= os.O_TRUNC
	}
	f, err := os.OpenFile(filepath.Join(p.dir, doneName), flag, 0o600)
	if err != nil {
		return err
	}
	p.disk, p.next = make([]byte, n), make([]byte, n)
	if !fresh {
		if _, err := io.ReadFull(f, p.disk); err != nil {
			clear(p.disk)
			fresh = true
		} else if fi, err := f.Stat(); err != nil || fi.Size() != int64(n) {
			clear(p.disk)
			fresh = true
		}
	}
	if fresh {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return err
		}
		if err := f.Truncate(int64(n)); err != nil {
			f.Close()
			return err
		}
	}
	p.bitmap = f
	return nil
}

// openPartial reopens a partial download. Chunks the state marks are
// trusted (they were fsynced before being marked); the others are
// re-verified from the data file, so a verified chunk whose mark was lost
// in a crash is not fetched again. It returns the done bitmap. A data file
// that is missing or not of the file's size is errBadState: the caller
// starts over. (A marked chunk damaged in place is caught when the
// download finishes, see getter.checkTrusted.)
func openPartial(dir string, c cid.Cid) (*partial, []bool, error) {
	st, m, err := readState(dir, c)
	if err != nil {
		return nil, nil, err
	}
	// The state vouches for chunks in this very file: a data file that is
	// gone (a new one would be all zeros) or not of the file's size (it
	// was truncated or replaced) makes the whole partial bad.
	f, err := os.OpenFile(filepath.Join(dir, dataName), os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: data file: %w", errBadState, noNotExist(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if fi.Size() != m.Size {
		f.Close()
		return nil, nil, fmt.Errorf("%w: data file holds %d bytes, want %d", errBadState, fi.Size(), m.Size)
	}
	p := &partial{dir: dir, c: c, m: m, name: st.name, data: f}
	if err := p.openDone(st.rewrite || st.rewriteDone); err != nil {
		f.Close()
		return nil, nil, err
	}
	if st.rewrite {
		// Format 1: the bitmap moves to the done file (written below).
		if err := atomicfile.Write(filepath.Join(dir, stateName), encodeState(st.name, st.mbytes), 0o600); err != nil {
			p.close()
			return nil, nil, err
		}
	}
	done := st.done
	if err := p.reverify(done); err != nil {
		p.close()
		return nil, nil, err
	}
	for _, d := range done {
		if d {
			p.resumed++
		}
	}
	if err := p.persist(done); err != nil {
		p.close()
		return nil, nil, err
	}
	return p, done, nil
}

// rename records a new name for the download (a resumed Get named it
// otherwise): the state is rewritten, manifest included, once.
func (p *partial) rename(name string) error {
	if p.inMem || name == p.name {
		p.name = name
		return nil
	}
	path := filepath.Join(p.dir, stateName)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	st, _, err := decodeState(p.c, b)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, encodeState(name, st.mbytes), 0o600); err != nil {
		return err
	}
	p.name = name
	return nil
}

// noNotExist hides fs.ErrNotExist in err's chain (as text), so that a
// missing data file is not mistaken for a missing partial download.
func noNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New(err.Error())
	}
	return err
}

// reverify hashes the unmarked chunks of the data file, in parallel, and
// marks those that verify. Chunks that are holes in a sparse file are
// skipped without reading where the system can tell.
func (p *partial) reverify(done []bool) error {
	return p.verifyChunks(func(yield func(int)) {
		for i, d := range done {
			if !d && !isHole(p.data, p.m.ChunkOffset(i), int64(p.m.ChunkLen(i))) {
				yield(i)
			}
		}
	}, func(i int, ok bool) {
		if ok {
			done[i] = true // distinct indexes: no race
		}
	})
}

// recheck hashes again the chunks of the data file that are marked in
// done and in which, and unmarks those that no longer verify (damaged on
// disk after they were marked). It returns how many it unmarked.
func (p *partial) recheck(done, which []bool) (int, error) {
	var mu sync.Mutex
	bad := 0
	err := p.verifyChunks(func(yield func(int)) {
		for i, d := range done {
			if d && which[i] {
				yield(i)
			}
		}
	}, func(i int, ok bool) {
		if !ok {
			mu.Lock()
			done[i] = false
			bad++
			mu.Unlock()
		}
	})
	return bad, err
}

// verifyChunks reads and verifies the chunks todo yields, in parallel, and
// calls result for each chunk it could read (from several goroutines,
// never twice for one chunk). It returns the first read error.
func (p *partial) verifyChunks(todo func(yield func(int)), result func(i int, ok bool)) error {
	ch := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	data := p.dataReader()
	for range max(runtime.GOMAXPROCS(0), 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, p.m.ChunkSize)
			for i := range ch {
				b := buf[:p.m.ChunkLen(i)]
				if _, err := data.ReadAt(b, p.m.ChunkOffset(i)); err != nil && !errors.Is(err, io.EOF) {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				result(i, p.m.VerifyChunk(i, b))
			}
		}()
	}
	todo(func(i int) { ch <- i })
	close(ch)
	wg.Wait()
	return firstErr
}

// persist records done as the verified chunks: data is fsynced first, so
// every chunk the new bitmap marks is on disk, then the bytes of the done
// file that change are written in place and fsynced. done must only mark
// chunks whose WriteAt has returned. Nothing is written if no mark
// changed.
func (p *partial) persist(done []bool) error {
	if p.inMem {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	encodeBitmap(p.next, done)
	runs := changedRuns(p.disk, p.next)
	if len(runs) == 0 {
		return nil
	}
	if err := p.data.Sync(); err != nil {
		return fmt.Errorf("sync partial data: %w", err)
	}
	dropCache(p.data)
	for _, r := range runs {
		if _, err := p.bitmap.WriteAt(p.next[r[0]:r[1]], int64(r[0])); err != nil {
			return fmt.Errorf("save verified chunks: %w", err)
		}
	}
	if err := p.bitmap.Sync(); err != nil {
		return fmt.Errorf("save verified chunks: %w", err)
	}
	for _, r := range runs {
		copy(p.disk[r[0]:r[1]], p.next[r[0]:r[1]])
	}
	return nil
}

// runGap is how many unchanged bytes between two changed ones are
// written anyway, to make one write of two.
const runGap = 64

// changedRuns returns the byte ranges [a, b) where next differs from
// old, merging ranges less than runGap apart.
func changedRuns(old, next []byte) [][2]int {
	var runs [][2]int
	for i := 0; i < len(next); i++ {
		if old[i] == next[i] {
			continue
		}
		if k := len(runs) - 1; k >= 0 && i-runs[k][1] < runGap {
			runs[k][1] = i + 1
		} else {
			runs = append(runs, [2]int{i, i + 1})
		}
	}
	return runs
}

func (p *partial) close() error {
	if p.inMem {
		return nil
	}
	if p.bitmap != nil {
		p.bitmap.Close()
	}
	return p.data.Close()
}

// remove deletes the partial download.
func (p *partial) remove() error {
	if p.inMem {
		return nil
	}
	p.close()
	return os.RemoveAll(p.dir)
}
