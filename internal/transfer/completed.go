package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
)

// The completed log: what downloads completed, and where they put it, in
// the partial folder (DownloadDir/.partial/completed), one JSON object a
// line. It serves two ends:
//
//   - a folder download copies a file this node already has instead of
//     fetching it (colllocal.go): the files of completed folder downloads
//     and completed single files are listed with their chunk size, with
//     which a copy is verified on the way;
//   - a Get of a CID already downloaded says where it is instead of making
//     another copy (alreadyFile, alreadyFolder), unless GetOptions.Again.
//
// The log is bounded: when it grows past completedMax bytes it is
// rewritten with the records whose path still exists, the newest first
// kept, down to half of that.
const (
	completedName = "completed"
	completedMax  = 8 << 20
	// rehashMax: a file already downloaded of at most this size is hashed
	// again before Get says it is there (a fraction of a second); a
	// larger one is trusted on its size and modification time, which are
	// what the download left, as publish trusts them (hashing gigabytes
	// would make "get" of a file already here take minutes).
	rehashMax = 64 << 20
)

// completedRec is one download completed: a file (its CID, size, chunk
// size and modification time once in place) or a folder (Folder: its
// collection's CID, the size of the files selected, the patterns that
// selected them, and when it was put in place).
type completedRec struct {
	CID       string   `json:"cid"`
	Size      int64    `json:"size"`
	ChunkSize int      `json:"chunk,omitempty"`
	Path      string   `json:"path"`
	Mtime     int64    `json:"mtime,omitempty"`  // Unix nanoseconds
	SHA256    string   `json:"sha256,omitempty"` // hex, of a single file
	Folder    bool     `json:"folder,omitempty"`
	Only      []string `json:"only,omitempty"`
}

func (s *Service) completedPath() string {
	return filepath.Join(s.cfg.DownloadDir, partialDirName, completedName)
}

// appendCompleted appends lines (complete JSON lines) to the completed
// log, compacting it first if it would grow past completedMax.
func (s *Service) appendCompleted(lines []byte) error {
	s.completedMu.Lock()
	defer s.completedMu.Unlock()
	name := s.completedPath()
	if fi, err := os.Stat(name); err == nil && fi.Size()+int64(len(lines)) > completedMax {
		if err := compactCompleted(name); err != nil {
			return fmt.Errorf("compact the completed log: %w", err)
		}
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(lines)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// compactCompleted rewrites the completed log with the newest record of
// each path that still exists, newest first kept, at most completedMax/2
// bytes.
func compactCompleted(name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	lines := bytes.Split(b, []byte("\n"))
	seen := make(map[string]bool)
	var keep [][]byte
	size := 0
	for i := len(lines) - 1; i >= 0; i-- {
		var r completedRec
		if json.Unmarshal(lines[i], &r) != nil || seen[r.Path] {
			continue
		}
		seen[r.Path] = true
		if _, err := os.Lstat(r.Path); err != nil {
			continue
		}
		if size+len(lines[i])+1 > completedMax/2 {
			break
		}
		size += len(lines[i]) + 1
		keep = append(keep, lines[i])
	}
	slices.Reverse(keep)
	var out []byte
	for _, l := range keep {
		out = append(append(out, l...), '\n')
	}
	return atomicfile.Write(name, out, 0o600)
}

// readCompleted reads the completed log: the records by CID key, oldest
// first.
func (s *Service) readCompleted() map[string][]completedRec {
	s.completedMu.Lock()
	defer s.completedMu.Unlock()
	out := make(map[string][]completedRec)
	f, err := os.Open(s.completedPath())
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r completedRec
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		c, err := cid.Decode(r.CID)
		if err != nil {
			continue
		}
		k := c.KeyString()
		out[k] = append(out[k], r)
	}
	return out
}

// recordFile appends a single file's completed download to the log.
func (s *Service) recordFile(c cid.Cid, res *Result) {
	rec := completedRec{CID: c.String(), Size: res.Size, ChunkSize: res.ChunkSize, Path: res.Path, SHA256: hex.EncodeToString(res.SHA256[:])}
	if fi, err := os.Stat(res.Path); err == nil {
		rec.Mtime = fi.ModTime().UnixNano()
	}
	line, _ := json.Marshal(rec)
	if err := s.appendCompleted(append(line, '\n')); err != nil {
		s.log.Warn("record completed download", "cid", c.String(), "err", err)
	}
}

// Verified says how a download found already here was checked.
const (
	VerifiedHash  = "content hashed again"
	VerifiedMtime = "size and modification time unchanged since the download"
)

// alreadyFile looks for a completed download of the file c that is still
// where it was put and still the same (see rehashMax): the newest such.
func (s *Service) alreadyFile(ctx context.Context, c cid.Cid) (*Result, bool) {
	recs := s.readCompleted()[c.KeyString()]
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.Folder || r.Mtime == 0 {
			continue // a folder, or a file in a folder (whose tree may have moved on)
		}
		fi, err := os.Stat(r.Path)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != r.Size || fi.ModTime().UnixNano() != r.Mtime {
			continue
		}
		res := &Result{Path: r.Path, Size: r.Size, CID: c, ChunkSize: r.ChunkSize, Already: true, Verified: VerifiedMtime}
		if sum, err := hex.DecodeString(r.SHA256); err == nil && len(sum) == len(res.SHA256) {
			copy(res.SHA256[:], sum)
		}
		if r.Size <= rehashMax {
			m, ok := sameContent(ctx, r.Path, c, r.Size, r.ChunkSize)
			if !ok {
				continue
			}
			res.SHA256, res.Verified = m.FileHash, VerifiedHash
		}
		return res, true
	}
	return nil, false
}

// sameContent reports whether the file at p is c (size bytes in chunks of
// chunkSize), and returns its manifest if so.
func sameContent(ctx context.Context, p string, c cid.Cid, size int64, chunkSize int) (*manifest.Manifest, bool) {
	if chunkSize < manifest.MinChunkSize || chunkSize > manifest.MaxChunkSize {
		return nil, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	m, err := manifest.Build(ctx, io.NewSectionReader(f, 0, size), size, chunkSize)
	if err != nil || !m.CID().Equals(c) {
		return nil, false
	}
	return m, true
}

// alreadyFolder looks for a completed download of the collection c,
// with the same selection (only), that is still where it was put and
// still the same: every selected file and empty folder there, each file
// of its size and executable bit, none modified since the download was
// put in place. Files are not hashed again: a folder may hold gigabytes,
// and its files' modification times, set by the download, say whether
// anything was written since, as publish trusts them.
func (s *Service) alreadyFolder(c cid.Cid, coll *collection.Collection, sel []bool, only []string) (*Result, bool) {
	recs := s.readCompleted()[c.KeyString()]
	a := slices.Clone(only)
	slices.Sort(a)
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		b := slices.Clone(r.Only)
		slices.Sort(b)
		if !r.Folder || !slices.Equal(a, b) {
			continue
		}
		if res, ok := sameTree(r, coll, sel); ok {
			res.CID = c
			return res, true
		}
	}
	return nil, false
}

// sameTree checks the tree recorded by r against the selected entries of
// coll (see alreadyFolder).
func sameTree(r completedRec, coll *collection.Collection, sel []bool) (*Result, bool) {
	done := time.Unix(0, r.Mtime)
	res := &Result{Path: r.Path, Collection: true, Already: true, Verified: VerifiedMtime}
	for i, e := range coll.Entries {
		if !sel[i] {
			continue
		}
		fi, err := os.Lstat(filepath.Join(r.Path, filepath.FromSlash(e.Path)))
		if err != nil {
			return nil, false
		}
		if e.Dir {
			if !fi.IsDir() {
				return nil, false
			}
			continue
		}
		if !fi.Mode().IsRegular() || fi.Size() != e.Size || (fi.Mode()&0o100 != 0) != e.Executable || fi.ModTime().After(done) {
			return nil, false
		}
		res.Files++
		res.Size += e.Size
	}
	return res, r.Size == res.Size
}
