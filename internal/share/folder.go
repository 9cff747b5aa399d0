package share

// Published folders. `publish DIR` walks a folder of the share folder and
// publishes it as one collection (internal/collection): a document listing
// every file (relative path, size, executable bit, content ID) and every
// empty folder, addressed by CIDv1(raw, sha256(document)) like a file's
// manifest. Every file in it is also an ordinary published file (a record
// of the index, servable by Open under its own CID), but one published
// only through folders is "indirect": it is not listed in the catalogue
// nor announced nor provided on the DHT on its own. A folder is one
// catalogue entry, one announcement and one provider record, whatever
// the number of its files: 10,000 provider records would take the DHT
// hours to put and would be re-put every ReprovideInterval, and 10,000
// catalogue entries would fill other peers' budgets (remote.go). A
// fetcher finds a folder's providers and asks them for its files' CIDs.
//
// What a folder keeps and skips (reported, never silently):
//   - symlinks are skipped, never followed: one inside the share folder
//     would publish a file twice, one leading out of it would publish what
//     the user never put there;
//   - hidden entries (".name", as the temporary files of downloads) are
//     skipped, as `files` hides them;
//   - names internal/names refuses (controls, bidi overrides, names that
//     Windows reserves, ...), paths deeper than collection.MaxDepth, and a
//     name that differs only in case from another in the same folder are
//     skipped with a warning: the others' disks must be able to hold the
//     tree, and one odd name among 10,000 should not block the rest;
//   - devices, pipes and sockets are skipped;
//   - empty folders are kept (as folder entries); the executable bit is
//     kept, no other mode.
//
// Speed: files are hashed in parallel (GOMAXPROCS workers), each opened
// relative to its own directory (one openat, not one per path component);
// a file whose size and modification time are those recorded when its
// path was last hashed is not hashed again; and the index is written in
// one batch, synced once, for the whole folder.

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// FolderResult is what publishing a folder did, beyond its Entry.
type FolderResult struct {
	Files int   // files listed
	Dirs  int   // empty folders listed
	Size  int64 // total bytes of the files
	// Hashed counts the files hashed now; the others were unchanged
	// since they were last hashed under the same path.
	Hashed int
	// Skipped lists what was left out, and why.
	Skipped []Skipped
	// Changes compares with the version of the folder published before,
	// if there was one; its CID (Previous) is withdrawn.
	Changes  *FolderChanges
	Previous cid.Cid
}

// Skipped is one path left out of a published folder.
type Skipped struct {
	Path string // relative to the share folder
	Why  string
}

// FolderChanges lists the paths (relative to the folder) that differ
// between two versions of a folder, each list sorted.
type FolderChanges struct {
	Added, Removed, Modified []string
}

// Empty reports whether nothing changed.
func (c *FolderChanges) Empty() bool {
	return len(c.Added)+len(c.Removed)+len(c.Modified) == 0
}

// collRecord is one published folder in the index.
type collRecord struct {
	CID       string    `json:"cid"`
	Name      string    `json:"name"`
	Published time.Time `json:"published"`
	// MTimes holds the modification time (ns) of every entry of the
	// document when it was hashed, in the document's order (0 for
	// folders), so that a republish or a check hashes only what changed.
	MTimes []int64 `json:"mtimes_ns"`
	// To is who may see the folder and fetch its document and files, as
	// for a file (audience.go); absent: public.
	To Audience `json:"to,omitzero"`

	cid   cid.Cid
	doc   []byte                 // the document, verified against cid
	c     *collection.Collection // parsed doc, shared read-only
	files int
	size  int64
}

func (r *collRecord) entry() Entry {
	return Entry{Name: r.Name, Size: r.size, CID: r.cid, Published: r.Published, Collection: true, Files: r.files, Audience: r.To.normalized()}
}

// collRecordOf completes a record around a verified document.
func collRecordOf(c cid.Cid, doc []byte, col *collection.Collection, published time.Time, mtimes []int64) *collRecord {
	if len(mtimes) != len(col.Entries) {
		mtimes = make([]int64, len(col.Entries)) // unknown: rehashed at the next publish
	}
	return &collRecord{CID: c.String(), Name: col.Name, Published: published, MTimes: mtimes,
		cid: c, doc: doc, c: col, files: col.Files(), size: col.TotalSize()}
}

func collKey(c cid.Cid) datastore.Key { return datastore.NewKey(collPrefix + "/" + c.String()) }
func docKey(c cid.Cid) datastore.Key  { return datastore.NewKey(docPrefix + "/" + c.String()) }

// loadCollections reads every published folder; broken ones are skipped
// and reported.
func loadCollections(ctx context.Context, ds datastore.Datastore) (map[cid.Cid]*collRecord, []error, error) {
	res, err := ds.Query(ctx, query.Query{Prefix: collPrefix})
	if err != nil {
		return nil, nil, fmt.Errorf("query published folders: %w", err)
	}
	defer res.Close()
	out := make(map[cid.Cid]*collRecord)
	var bad []error
	for r := range res.Next() {
		if r.Error != nil {
			return nil, nil, fmt.Errorf("read published folders: %w", r.Error)
		}
		var rec collRecord
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			bad = append(bad, fmt.Errorf("index key %s: %w", r.Key, err))
			continue
		}
		c, err := cid.Decode(rec.CID)
		var doc []byte
		if err == nil {
			doc, err = ds.Get(ctx, docKey(c))
		}
		var col *collection.Collection
		if err == nil {
			col, err = collection.Verify(c, doc)
		}
		if err == nil && col.Name != rec.Name {
			err = fmt.Errorf("document names %q, record %q", col.Name, rec.Name)
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("index key %s (%q): %w", r.Key, rec.Name, err))
			continue
		}
		out[c] = collRecordOf(c, doc, col, rec.Published.UTC(), rec.MTimes)
		out[c].To = rec.To.normalized()
	}
	return out, bad, nil
}

// Collection returns the document of a folder this node publishes, for
// the fetch protocol's MANIFEST request from peer p (internal/transfer
// asks when Open does not serve the CID). A folder whose audience does
// not admit p is answered as one this node does not publish. The bytes
// are shared: callers must not modify them.
func (l *Library) Collection(c cid.Cid, p peer.ID) ([]byte, bool) {
	l.mu.Lock()
	r := l.colls[c]
	var to Audience
	var doc []byte
	if r != nil {
		to, doc = r.To, r.doc
	}
	l.mu.Unlock()
	if r == nil || !l.allows(to, p) {
		return nil, false
	}
	return doc, true
}

// scanFile is a regular file found in a folder.
type scanFile struct {
	path  string // relative to the folder
	size  int64
	mtime int64 // ns
	exec  bool
}

// folderScan is what a walk of a folder keeps and skips.
type folderScan struct {
	files   []scanFile // grouped by directory
	dirs    []string   // empty folders
	skipped []Skipped
}

// scanFolder walks the folder name of root (the share folder) without
// following symlinks. Only what a collection can hold is kept (see the
// top of this file).
func scanFolder(root *os.Root, name string) (*folderScan, error) {
	s := &folderScan{}
	var walk func(rel string) (kept bool, err error)
	walk = func(rel string) (bool, error) {
		f, err := root.Open(path.Join(name, rel))
		if err != nil {
			return false, fmt.Errorf("open folder %q: %w", path.Join(name, rel), err)
		}
		des, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return false, fmt.Errorf("read folder %q: %w", path.Join(name, rel), err)
		}
		slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		folded := make(map[string]string, len(des))
		var subdirs []string
		kept := false
		for _, de := range des {
			n := de.Name()
			p := n
			if rel != "" {
				p = rel + "/" + n
			}
			skip := func(why string) { s.skipped = append(s.skipped, Skipped{Path: name + "/" + p, Why: why}) }
			if strings.HasPrefix(n, ".") {
				skip("hidden")
				continue
			}
			if err := collection.CheckPath(p); err != nil {
				skip(err.Error())
				continue
			}
			if other, ok := folded[strings.ToLower(n)]; ok {
				skip(fmt.Sprintf("differs only in case from %q", other))
				continue
			}
			switch t := de.Type(); {
			case t&fs.ModeSymlink != 0:
				skip("symlink (not followed)")
				continue
			case t.IsDir():
				subdirs = append(subdirs, p)
			case t.IsRegular():
				fi, err := de.Info()
				if err != nil {
					skip(fmt.Sprintf("vanished while scanned (%v)", err))
					continue
				}
				s.files = append(s.files, scanFile{path: p, size: fi.Size(), mtime: fi.ModTime().UnixNano(), exec: fi.Mode()&0o111 != 0})
			default:
				skip("not a regular file")
				continue
			}
			folded[strings.ToLower(n)] = n
			kept = true
			if len(s.files)+len(s.dirs)+len(subdirs) > collection.MaxEntries {
				return false, fmt.Errorf("folder %q has more than %d entries", name, collection.MaxEntries)
			}
		}
		for _, d := range subdirs {
			k, err := walk(d)
			if err != nil {
				return false, err
			}
			if !k {
				s.dirs = append(s.dirs, d)
			}
		}
		return kept, nil
	}
	if _, err := walk(""); err != nil {
		return nil, err
	}
	return s, nil
}

// fileHash is one hashed file.
type fileHash struct {
	cid cid.Cid
	m   *manifest.Manifest
	mb  []byte
}

// hashFiles hashes the files need (indices into files) of the folder name,
// in parallel, and updates their size, mtime and mode to what was hashed.
// A file written to while it was hashed fails it all with errHashRace.
func (l *Library) hashFiles(ctx context.Context, root *os.Root, name string, files []scanFile, need []int) (map[int]fileHash, error) {
	type dirRoot struct {
		r    *os.Root
		left atomic.Int32
	}
	type job struct {
		i int
		d *dirRoot
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan job, 4*workers)
	out := make(map[int]fileHash, len(need))
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := func(d *dirRoot) {
		if d.left.Add(-1) == 0 {
			d.r.Close()
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, l.chunkSize)
			for j := range jobs {
				if ctx.Err() == nil {
					sf := &files[j.i]
					h, err := hashOne(ctx, j.d.r, path.Base(sf.path), sf, l.chunkSize, buf)
					if err != nil {
						cancel(fmt.Errorf("%q: %w", name+"/"+sf.path, err))
					} else {
						mu.Lock()
						out[j.i] = h
						mu.Unlock()
					}
				}
				done(j.d)
			}
		}()
	}
	// One root per directory, open while its files are hashed.
	func() {
		defer close(jobs)
		for start := 0; start < len(need); {
			dir := path.Dir(files[need[start]].path)
			end := start + 1
			for end < len(need) && path.Dir(files[need[end]].path) == dir {
				end++
			}
			r, err := root.OpenRoot(path.Join(name, dir))
			if err != nil {
				cancel(fmt.Errorf("open folder %q: %w", path.Join(name, dir), err))
				return
			}
			d := &dirRoot{r: r}
			d.left.Store(int32(end - start))
			for k, i := range need[start:end] {
				select {
				case jobs <- job{i, d}:
				case <-ctx.Done():
					// The workers release what was sent; release the rest.
					if d.left.Add(-int32(end-start-k)) == 0 {
						d.r.Close()
					}
					return
				}
			}
			start = end
		}
	}()
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// hashOne hashes one file, opened in its directory's root, and records
// in sf what was hashed.
func hashOne(ctx context.Context, dir *os.Root, base string, sf *scanFile, chunkSize int, buf []byte) (fileHash, error) {
	f, err := dir.Open(base)
	if err != nil {
		return fileHash{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileHash{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileHash{}, errHashRace // replaced since the scan
	}
	var m *manifest.Manifest
	if fi.Size() <= int64(chunkSize) {
		m, err = buildSmall(f, fi.Size(), chunkSize, buf)
	} else {
		m, err = manifest.Build(ctx, f, fi.Size(), chunkSize)
	}
	if err != nil {
		return fileHash{}, err
	}
	if fi2, err := f.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return fileHash{}, errHashRace
	}
	sf.size, sf.mtime, sf.exec = fi.Size(), fi.ModTime().UnixNano(), fi.Mode()&0o111 != 0
	mb := m.Marshal()
	return fileHash{cid: manifest.CIDOf(mb), m: m, mb: mb}, nil
}

// buildSmall is manifest.Build for a file of at most one chunk, without
// its goroutines and buffers: the chunk's hash is the file's.
func buildSmall(r io.Reader, size int64, chunkSize int, buf []byte) (*manifest.Manifest, error) {
	if _, err := io.ReadFull(r, buf[:size]); err != nil {
		return nil, fmt.Errorf("read: %w (file shorter than %d bytes?)", err, size)
	}
	m := &manifest.Manifest{Size: size, ChunkSize: chunkSize, FileHash: sha256.Sum256(buf[:size])}
	m.Chunks = make([]manifest.Hash, manifest.NumChunks(size, chunkSize))
	if len(m.Chunks) == 1 {
		m.Chunks[0] = m.FileHash
	}
	return m, nil
}

// publishFolder publishes the folder name of the share folder as a
// collection, to the audience aud (see PublishOptions.Audience: nil keeps
// the audience of the version published before, if any). Callers hold
// opMu.
func (l *Library) publishFolder(ctx context.Context, name string, aud *Audience) (PublishResult, error) {
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return PublishResult{}, fmt.Errorf("open share folder %s: %w", l.dir, err)
	}
	defer root.Close()
	scan, err := scanFolder(root, name)
	if err != nil {
		return PublishResult{}, err
	}
	if len(scan.files)+len(scan.dirs) == 0 {
		return PublishResult{}, fmt.Errorf("folder %q holds nothing to publish (empty, or all of its %d entries skipped: %s)",
			name, len(scan.skipped), skippedSummary(scan.skipped, 3))
	}

	// What was hashed before under the same path and has not changed
	// since keeps its CID.
	l.mu.Lock()
	var prev *collRecord
	for _, r := range l.colls {
		if r.Name == name && (prev == nil || r.Published.After(prev.Published)) {
			prev = r
		}
	}
	prevAt := make(map[string]int)
	if prev != nil {
		for i, e := range prev.c.Entries {
			prevAt[e.Path] = i
		}
	}
	// Records of files under this folder by path: a file also listed by
	// another folder, or published before under another version.
	byPath := make(map[string]*record)
	for _, r := range l.index {
		if r.Indirect && strings.HasPrefix(r.Name, name+"/") {
			byPath[r.Name] = r
		}
	}
	cids := make([]cid.Cid, len(scan.files))
	var need []int
	for i, sf := range scan.files {
		if j, ok := prevAt[sf.path]; ok {
			e := prev.c.Entries[j]
			if r := l.index[e.CID]; r != nil && !r.Changed && e.Size == sf.size && prev.MTimes[j] == sf.mtime && e.Executable == sf.exec {
				cids[i] = e.CID
				continue
			}
		}
		if r := byPath[name+"/"+sf.path]; r != nil && !r.Changed && r.Size == sf.size && r.ModTime == sf.mtime {
			cids[i] = r.cid
			continue
		}
		need = append(need, i)
	}
	l.mu.Unlock()

	hashed, err := l.hashFiles(ctx, root, name, scan.files, need)
	if err != nil {
		return PublishResult{}, fmt.Errorf("folder %q: %w", name, err)
	}
	col := &collection.Collection{Name: name, Entries: make([]collection.Entry, 0, len(scan.files)+len(scan.dirs))}
	mtimeOf := make(map[string]int64, len(scan.files))
	for i, sf := range scan.files {
		if h, ok := hashed[i]; ok {
			cids[i] = h.cid
		}
		col.Entries = append(col.Entries, collection.Entry{Path: sf.path, Size: sf.size, CID: cids[i], Executable: sf.exec})
		mtimeOf[sf.path] = sf.mtime
	}
	for _, d := range scan.dirs {
		col.Entries = append(col.Entries, collection.Entry{Path: d, Dir: true})
	}
	doc, err := col.Marshal()
	if err != nil {
		return PublishResult{}, fmt.Errorf("folder %q: %w", name, err)
	}
	c := manifest.CIDOf(doc)
	col, err = collection.Parse(doc) // sorted as in the document
	if err != nil {
		return PublishResult{}, fmt.Errorf("folder %q: %w", name, err)
	}
	mtimes := make([]int64, len(col.Entries))
	for i, e := range col.Entries {
		mtimes[i] = mtimeOf[e.Path]
	}
	now := time.Now().Round(0).UTC()
	nr := collRecordOf(c, doc, col, now, mtimes)
	res := PublishResult{Folder: &FolderResult{Files: nr.files, Dirs: len(scan.dirs), Size: nr.size, Hashed: len(need), Skipped: scan.skipped}}
	for _, s := range scan.skipped {
		l.log.Warn("left out of a published folder", "path", s.Path, "why", s.Why)
	}

	l.mu.Lock()
	already := l.colls[c]
	if already != nil {
		nr.Published = already.Published
	}
	olds := map[cid.Cid]*collRecord{}
	for oc, r := range l.colls {
		if r.Name == name && oc != c {
			olds[oc] = r
		}
	}
	// Without a new audience, the folder keeps the audience of what it
	// replaces (so an edit never widens who sees it), as a file does.
	if aud != nil {
		nr.To = *aud
	} else {
		if already != nil {
			nr.To = nr.To.union(already.To)
		}
		for _, o := range olds {
			nr.To = nr.To.union(o.To)
		}
	}
	// Who may fetch what changes if the new version is for others than a
	// version it replaces: revoked peers' downloads must stop.
	retargeted := false
	for _, o := range olds {
		retargeted = retargeted || !o.To.equal(nr.To)
	}
	// The files' records: new content gets one (indirect: published
	// through this folder only, so far); content published already keeps
	// its record.
	newRecs := map[cid.Cid]*record{}
	manifests := map[cid.Cid][]byte{}
	for i, sf := range scan.files {
		h, ok := hashed[i]
		if !ok {
			continue
		}
		if r := l.index[h.cid]; r != nil && !r.Changed || newRecs[h.cid] != nil {
			continue
		}
		newRecs[h.cid] = &record{
			CID: h.cid.String(), Name: name + "/" + sf.path, Size: sf.size, ModTime: sf.mtime,
			SHA256: h.m.FileHash[:], ChunkSize: h.m.ChunkSize, Published: now, Indirect: true,
			cid: h.cid, m: h.m,
		}
		manifests[h.cid] = h.mb
	}
	colls := make(map[cid.Cid]*collRecord, len(l.colls)+1)
	for k, r := range l.colls {
		if olds[k] == nil {
			colls[k] = r
		}
	}
	colls[c] = nr
	w := l.settleLocked(colls, newRecs, nil)
	l.mu.Unlock()

	w.manifests = manifests
	w.putColls = []*collRecord{nr}
	for oc := range olds {
		w.delColls = append(w.delColls, oc)
	}
	if err := w.commit(ctx, l.ds); err != nil {
		return PublishResult{}, err
	}
	l.mu.Lock()
	l.applyLocked(w)
	l.mu.Unlock()

	var oldEntries []Entry
	var oldCIDs []cid.Cid
	for oc, o := range olds {
		oldEntries = append(oldEntries, o.entry())
		oldCIDs = append(oldCIDs, oc)
	}
	l.provide.Dequeue(oldCIDs...)
	l.provide.Dequeue(w.del...)
	res.Entry = nr.entry()
	if already != nil && !already.To.equal(nr.To) {
		l.retarget(res.Entry, already.To)
		res.Retargeted = true
	}
	if already != nil && len(olds) == 0 {
		res.Already = true
		return res, nil
	}
	if prev != nil {
		res.Folder.Changes = diffCollections(prev.c, col)
		res.Folder.Previous = prev.cid
	}
	if nr.To.Public() {
		l.provide.Enqueue(c)
	}
	if len(oldEntries) > 0 {
		sortEntries(oldEntries)
		l.announce(proto.Announcement_UNPUBLISH, oldEntries)
		for _, o := range oldEntries {
			l.log.Info("withdrew old version of folder", "name", name, "cid", o.CID, "new", c)
		}
	}
	if already == nil {
		l.announce(proto.Announcement_PUBLISH, []Entry{res.Entry})
	}
	if retargeted && !res.Retargeted && l.onAudience != nil {
		l.onAudience()
	}
	l.watchFolder(nr)
	l.log.Info("published folder", "name", name, "cid", c, "files", nr.files, "size", nr.size, "hashed", len(need), "skipped", len(scan.skipped))
	return res, nil
}

// settleLocked works out the index change that leaves exactly the folders
// colls published: the records in add are added; indirect records no
// folder of colls lists any more are deleted; the direct records in
// undirect (being withdrawn) become indirect if a folder still lists
// them, else are deleted; and every indirect record kept names a path
// where a folder of colls has its content, so that Open reads a file
// that is still published. Callers hold mu, apply the result with
// applyLocked once it is committed.
func (l *Library) settleLocked(colls map[cid.Cid]*collRecord, add map[cid.Cid]*record, undirect map[cid.Cid]bool) indexWrite {
	type loc struct {
		path  string
		mtime int64
	}
	type spot struct {
		c     cid.Cid
		mtime int64
	}
	where := make(map[cid.Cid]loc) // content -> first path listing it
	at := make(map[string]spot)    // path -> its content and mtime
	names := make([]cid.Cid, 0, len(colls))
	for c := range colls {
		names = append(names, c)
	}
	// Deterministic choice of path: folders by name, then CID.
	slices.SortFunc(names, func(a, b cid.Cid) int {
		return cmp.Or(strings.Compare(colls[a].Name, colls[b].Name), strings.Compare(a.KeyString(), b.KeyString()))
	})
	for _, c := range names {
		r := colls[c]
		for i, e := range r.c.Entries {
			if e.Dir {
				continue
			}
			p := r.Name + "/" + e.Path
			at[p] = spot{e.CID, r.MTimes[i]}
			if _, ok := where[e.CID]; !ok {
				where[e.CID] = loc{p, r.MTimes[i]}
			}
		}
	}
	var w indexWrite
	consider := func(c cid.Cid, r *record) {
		indirect := r.Indirect || undirect[c]
		if !indirect {
			if add[c] != nil {
				w.put = append(w.put, r)
			}
			return
		}
		lc, listed := where[c]
		switch {
		case !listed:
			if add[c] == nil {
				w.del = append(w.del, c)
			}
		case !r.Indirect || !at[r.Name].c.Equals(c):
			nr := *r
			nr.Indirect, nr.Name, nr.ModTime, nr.Aliases = true, lc.path, lc.mtime, nil
			w.put = append(w.put, &nr)
		case at[r.Name].mtime != r.ModTime && !r.Changed:
			// Same bytes, touched: Open must not take it for a change.
			nr := *r
			nr.ModTime = at[r.Name].mtime
			w.put = append(w.put, &nr)
		case add[c] != nil:
			w.put = append(w.put, r)
		}
	}
	for c, r := range l.index {
		if add[c] == nil {
			consider(c, r)
		}
	}
	for c, r := range add {
		consider(c, r)
	}
	w.colls = colls
	return w
}

// applyLocked makes the index in memory what w wrote. Callers hold mu.
func (l *Library) applyLocked(w indexWrite) {
	for _, c := range w.del {
		delete(l.index, c)
	}
	for _, r := range w.put {
		l.index[r.cid] = r
	}
	if w.colls != nil {
		l.colls = w.colls
		l.recountListedLocked()
	}
}

// recountListedLocked makes inFolder, for every content a published
// folder lists, the audiences of the folders listing it: such content is
// served to a peer that any of them admits (Open), even if it is also
// published directly to another audience (the same bytes are in the
// folder). Callers hold mu.
func (l *Library) recountListedLocked() {
	l.inFolder = make(map[cid.Cid][]Audience)
	for _, r := range l.colls {
		for _, e := range r.c.Entries {
			if e.Dir {
				continue
			}
			as := l.inFolder[e.CID]
			switch {
			case len(as) > 0 && as[0].Public():
				// Everyone may have it already.
			case r.To.Public():
				l.inFolder[e.CID] = everyone
			default:
				l.inFolder[e.CID] = append(as, r.To)
			}
		}
	}
}

// everyone is inFolder's value for content a public folder lists, shared
// (never appended to): one audience, public.
var everyone = []Audience{{}}

// folderAllows reports whether a folder listing content, whose folders'
// audiences are as (inFolder), admits p. Callers do not hold mu.
func (l *Library) folderAllows(as []Audience, p peer.ID) bool {
	for _, a := range as {
		if l.allows(a, p) {
			return true
		}
	}
	return false
}

// diffCollections lists what changed from a to b, by path.
func diffCollections(a, b *collection.Collection) *FolderChanges {
	files := func(c *collection.Collection) map[string]cid.Cid {
		m := make(map[string]cid.Cid, len(c.Entries))
		for _, e := range c.Entries {
			if !e.Dir {
				m[e.Path] = e.CID
			}
		}
		return m
	}
	fa, fb := files(a), files(b)
	ch := &FolderChanges{}
	for p, c := range fb {
		if old, ok := fa[p]; !ok {
			ch.Added = append(ch.Added, p)
		} else if !old.Equals(c) {
			ch.Modified = append(ch.Modified, p)
		}
	}
	for p := range fa {
		if _, ok := fb[p]; !ok {
			ch.Removed = append(ch.Removed, p)
		}
	}
	slices.Sort(ch.Added)
	slices.Sort(ch.Removed)
	slices.Sort(ch.Modified)
	return ch
}

// expandNames replaces each argument that is not a name of the share
// folder but a shell pattern (path.Match) by the top-level names it
// matches, sorted; hidden names match only a pattern starting with ".".
func (l *Library) expandNames(args []string) ([]string, []error) {
	var out []string
	var errs []error
	var top []string
	listed := false
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[\\") {
			out = append(out, a)
			continue
		}
		if _, err := os.Lstat(l.dir + string(os.PathSeparator) + a); err == nil && CheckName(a) == nil {
			out = append(out, a) // a literal name that looks like a pattern
			continue
		}
		if _, err := path.Match(a, ""); err != nil {
			errs = append(errs, fmt.Errorf("publish %q: bad pattern: %w", a, err))
			continue
		}
		if !listed {
			des, err := os.ReadDir(l.dir)
			if err != nil {
				errs = append(errs, fmt.Errorf("list share folder %s: %w", l.dir, err))
				return out, errs
			}
			for _, de := range des {
				top = append(top, de.Name())
			}
			listed = true
		}
		n := 0
		for _, name := range top {
			if strings.HasPrefix(name, ".") && !strings.HasPrefix(a, ".") {
				continue
			}
			if ok, _ := path.Match(a, name); ok {
				out = append(out, name)
				n++
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("publish %q: %w %q", a, ErrNotFound, a))
		}
	}
	return out, errs
}

// isFolder reports whether name is a folder (not a symlink to one) in the
// share folder.
func (l *Library) isFolder(name string) bool {
	if CheckName(name) != nil {
		return false
	}
	fi, err := os.Lstat(l.dir + string(os.PathSeparator) + name)
	return err == nil && fi.IsDir()
}

// localFolder describes the folder name of the share folder for Files,
// pub being its published version, if any.
func (l *Library) localFolder(name string, pub *collRecord) (LocalFile, bool) {
	fi, err := os.Lstat(filepath.Join(l.dir, name))
	if err != nil || !fi.IsDir() {
		return LocalFile{}, false
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return LocalFile{}, false
	}
	defer root.Close()
	lf := LocalFile{Name: name, ModTime: fi.ModTime(), Folder: true}
	scan, err := scanFolder(root, name)
	if err != nil {
		l.log.Debug("files: cannot walk folder", "name", name, "err", err)
		scan = &folderScan{}
		lf.Changed = pub != nil
	}
	lf.Files = len(scan.files)
	for _, f := range scan.files {
		lf.Size += f.size
	}
	if pub != nil {
		lf.Published, lf.CID = true, pub.cid
		lf.Changed = lf.Changed || folderChanged(pub, scan)
	}
	return lf, true
}

// folderChanged reports whether scan differs from what pub recorded: a
// file added, removed, or of another size, mtime or mode; or another set
// of empty folders.
func folderChanged(pub *collRecord, scan *folderScan) bool {
	if len(scan.files)+len(scan.dirs) != len(pub.c.Entries) {
		return true
	}
	find := func(p string) (int, bool) {
		return slices.BinarySearchFunc(pub.c.Entries, p, func(e collection.Entry, p string) int { return strings.Compare(e.Path, p) })
	}
	for _, f := range scan.files {
		i, ok := find(f.path)
		if !ok {
			return true
		}
		e := pub.c.Entries[i]
		if e.Dir || e.Size != f.size || e.Executable != f.exec || pub.MTimes[i] != f.mtime {
			return true
		}
	}
	for _, d := range scan.dirs {
		if i, ok := find(d); !ok || !pub.c.Entries[i].Dir {
			return true
		}
	}
	return false
}

// folderDirs lists the directories of a published folder (relative to
// the share folder): the folder, and every folder its entries lie in.
func folderDirs(r *collRecord) []string {
	seen := map[string]bool{r.Name: true}
	out := []string{r.Name}
	for _, e := range r.c.Entries {
		d := e.Path
		if !e.Dir {
			d = path.Dir(d)
		}
		for ; d != "." && !seen[r.Name+"/"+d]; d = path.Dir(d) {
			seen[r.Name+"/"+d] = true
			out = append(out, r.Name+"/"+d)
		}
	}
	return out
}

// watchFolder watches every directory of a published folder, so that a
// file changed inside follows the user's choice (watch.go).
func (l *Library) watchFolder(r *collRecord) {
	if l.watcher == nil {
		return
	}
	for _, d := range folderDirs(r) {
		if err := l.watcher.Add(filepath.Join(l.dir, filepath.FromSlash(d))); err != nil {
			l.log.Warn("cannot watch a folder of a published folder: a file changed in it is only noticed when a peer asks for it",
				"dir", d, "err", err)
		}
	}
}

// unwatchFolders stops watching the directories of withdrawn folders,
// unless a folder still published has the same name.
func (l *Library) unwatchFolders(gone map[cid.Cid]*collRecord) {
	if l.watcher == nil {
		return
	}
	for _, r := range gone {
		if l.isPublished(r.Name) {
			continue
		}
		for _, d := range folderDirs(r) {
			l.watcher.Remove(filepath.Join(l.dir, filepath.FromSlash(d))) // gone already, or never watched: nothing to do
		}
	}
}

// publishedFolder is the published folder named name, if any.
func (l *Library) publishedFolder(name string) *collRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out *collRecord
	for _, r := range l.colls {
		if r.Name == name && (out == nil || r.Published.After(out.Published)) {
			out = r
		}
	}
	return out
}

// checkFolder looks at a published folder after a change inside (as
// checkName at a file); it reports whether to look again.
func (l *Library) checkFolder(name string) (again bool) {
	pub := l.publishedFolder(name)
	if pub == nil {
		return false
	}
	ctx := l.ctx
	withdraw := func(why string) {
		if _, err := l.Unpublish(ctx, name); err != nil && !errors.Is(err, ErrNotPublished) && ctx.Err() == nil {
			l.log.Warn("published folder changed on disk; could not withdraw it", "name", name, "err", err)
			return
		}
		l.log.Info("published folder "+why+": withdrawn", "name", name)
	}
	if !l.isFolder(name) {
		withdraw("no longer in the share folder")
		return false
	}
	if l.onChange == OnChangeWithdraw {
		root, err := os.OpenRoot(l.dir)
		if err != nil {
			return false
		}
		scan, err := scanFolder(root, name)
		root.Close()
		if err != nil || folderChanged(pub, scan) {
			withdraw("changed on disk")
		}
		return false
	}
	res, err := l.Publish(ctx, name)
	switch {
	case errors.Is(err, errHashRace):
		return true
	case err != nil:
		if ctx.Err() != nil {
			return false
		}
		l.log.Warn("published folder changed on disk; could not publish it again: withdrawing it", "name", name, "err", err)
		withdraw("changed on disk and could not be published again")
	case len(res) == 1 && !res[0].Already:
		l.log.Info("published folder changed on disk: published again", "name", name, "cid", res[0].Entry.CID)
	}
	return false
}

// skippedSummary lists the first n skipped paths with why.
func skippedSummary(sk []Skipped, n int) string {
	var b strings.Builder
	for i, s := range sk {
		if i == n {
			fmt.Fprintf(&b, ", and %d more", len(sk)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %s", s.Path, s.Why)
	}
	return b.String()
}
