package transfer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
	"github.com/p2pshare/p2pshare/internal/collection"
)

// Downloading a collection (a published folder, internal/collection).
//
// Get learns that a CID names a collection when the answer to its
// MANIFEST request is a document rather than a manifest (collectionFound),
// or finds the document kept by an interrupted Get of it. From then on the
// Get fetches the collection's files, by their own CIDs, from the
// collection's providers:
//
//   - files of at most smallMax bytes are pipelined, many at a time, over
//     one kept fetch session per provider stream (collsmall.go): for each
//     file a MANIFEST and a CHUNKS request for its only chunk are sent
//     without waiting, and the answers are verified (manifest against the
//     file's CID, chunk against the manifest) and written straight into
//     place in the staging folder;
//   - larger files go through an ordinary Get each (the multi-source chunk
//     scheduler, chunk-level resume), saved into the staging folder;
//   - a file this node already has (a published file, Source.Open, or one
//     a collection download completed, the completed log) is copied and
//     verified on the way (its manifest rebuilt and compared with the CID)
//     instead of fetched; a CID that appears under several paths is
//     fetched once and copied.
//
// The tree is assembled in a hidden staging folder beside the target
// (".p2pshare-<cid>.partial") and renamed into place, without replacing
// anything, once every selected file is there: no half tree ever stands
// where the complete one should.
//
// On-disk state, DownloadDir/.partial/<collection cid>/:
//
//	collection  the document (verified again when read)
//	target      where the tree goes: the staging folder, the parent folder,
//	            the name, and whether that name is exact (-o) or may be
//	            numbered (JSON)
//	done        one line per file in place in the staging folder:
//	            "<entry index> <chunk size>"
//
// A line is appended to done only after the file's data is on disk: the
// marks are committed in batches (marks), each after a sync of the
// staging folder's file system, so after a crash every marked file is
// complete; an unmarked file in the staging folder is fetched again. A
// large file interrupted mid-way resumes from its own partial download.
const (
	collDocName    = "collection"
	collTargetName = "target"
	collDoneName   = "done"
	stagePrefix    = ".p2pshare-"
	stageSuffix    = ".partial"
	// smallMax: files up to this size are fetched by the pipelined
	// fetcher; larger ones by a Get each.
	smallMax = 1 << 20
)

// ErrNoMatch: a GetOptions.Only pattern selects nothing in the collection.
var ErrNoMatch = errors.New("pattern matches nothing in the folder")

// collTarget is the target file of a collection download.
type collTarget struct {
	Stage  string   `json:"stage"`  // the staging folder
	Parent string   `json:"parent"` // the folder the tree goes into
	Name   string   `json:"name"`   // its name there
	Exact  bool     `json:"exact"`  // -o: exactly Parent/Name, never numbered
	Only   []string `json:"only,omitempty"`
}

// citem is one distinct file (CID) still to get, and the entries (paths)
// that hold it.
type citem struct {
	c       cid.Cid
	size    int64
	entries []int
	// refused: providers that answered they do not serve it, and their
	// answer (guarded by the queue's mu).
	refused map[peer.ID]*refusedError
}

// collGet is one running collection download.
type collGet struct {
	g    *getter
	s    *Service
	c    cid.Cid
	coll *collection.Collection
	dir  string // the state folder
	tgt  collTarget
	sel  []bool // selected entries

	marks *markLog
	mkdir dirCache

	// progress
	files, filesDone, copied, resumed atomic.Int64
	total, doneBytes, fetchedBytes    atomic.Int64
	bigMu                             sync.Mutex
	bigDone                           map[string]int64 // bytes of the large files being fetched, by CID key
	active                            sync.Map         // peer.ID -> *atomic.Int32: streams fetching now
}

// isCollection reports whether dir holds the state of a collection
// download (rather than a file's).
func isCollection(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, collDocName))
	return err == nil
}

// resumeCollection returns the kept document of an interrupted download
// of the collection c, if there is one.
func (s *Service) resumeCollection(c cid.Cid) (*collectionFound, bool) {
	dir := partialDir(s.cfg.DownloadDir, c)
	b, err := os.ReadFile(filepath.Join(dir, collDocName))
	if err != nil {
		return nil, false
	}
	coll, err := collection.Verify(c, b)
	if err != nil {
		s.log.Warn("discarding an unreadable collection download", "dir", dir, "err", err)
		removeCollectionState(dir)
		return nil, false
	}
	return &collectionFound{doc: b, coll: coll}, true
}

// removeCollectionState removes a collection download's state folder and
// its staging folder.
func removeCollectionState(dir string) error {
	if b, err := os.ReadFile(filepath.Join(dir, collTargetName)); err == nil {
		var t collTarget
		if json.Unmarshal(b, &t) == nil && isStageName(filepath.Base(t.Stage)) {
			if err := os.RemoveAll(t.Stage); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(dir)
}

func isStageName(n string) bool {
	return strings.HasPrefix(n, stagePrefix) && strings.HasSuffix(n, stageSuffix)
}

// runCollection downloads the collection cf names; g is registered under
// its CID (so Cancel and Transfers see it).
func (g *getter) runCollection(cf *collectionFound, resumed bool) (*Result, error) {
	s := g.s
	cg := &collGet{g: g, s: s, c: g.c, coll: cf.coll, dir: partialDir(s.cfg.DownloadDir, g.c),
		bigDone: make(map[string]int64)}
	if err := g.opt.Expect.checkCollection(cf.coll); err != nil {
		return nil, fmt.Errorf("transfer %s: %w", g.c, err)
	}
	sel, err := selectEntries(cf.coll, g.opt.Only)
	if err != nil {
		return nil, fmt.Errorf("transfer %s: %w", g.c, err)
	}
	cg.sel = sel
	if !resumed && g.dedup() {
		if res, ok := s.alreadyFolder(g.c, cf.coll, sel, g.opt.Only); ok {
			res.Duration = time.Since(g.startAt)
			return res, nil
		}
	}
	if err := cg.open(cf.doc, resumed); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.coll = cg
	if g.opt.Name == "" {
		g.name = SanitizeName(cf.coll.Name, g.c)
	}
	g.mu.Unlock()

	stopProgress := cg.startProgress()
	res, err := cg.run(cf.from)
	stopProgress()
	if err != nil {
		return nil, cg.unfinished(err)
	}
	return res, nil
}

// open creates the state and the staging folder of a new download, or
// reopens those of an interrupted one.
func (cg *collGet) open(doc []byte, resumed bool) error {
	s, opt := cg.s, cg.g.opt
	if resumed {
		b, err := os.ReadFile(filepath.Join(cg.dir, collTargetName))
		if err == nil {
			err = json.Unmarshal(b, &cg.tgt)
		}
		if err != nil || !isStageName(filepath.Base(cg.tgt.Stage)) {
			s.log.Warn("collection download without a usable target; starting over", "dir", cg.dir, "err", err)
			if err := removeCollectionState(cg.dir); err != nil {
				return fmt.Errorf("transfer %s: remove bad state: %w", cg.c, err)
			}
			resumed = false
		}
	}
	if !resumed {
		t := collTarget{Parent: s.cfg.DownloadDir, Name: SanitizeName(opt.Name, cg.c), Only: opt.Only}
		if opt.Name == "" {
			t.Name = SanitizeName(cg.coll.Name, cg.c)
		}
		switch {
		case opt.Output != "":
			t.Parent, t.Name, t.Exact = filepath.Dir(opt.Output), filepath.Base(opt.Output), true
		case opt.Into != "":
			t.Parent = opt.Into
		}
		t.Stage = filepath.Join(t.Parent, stagePrefix+cg.c.String()+stageSuffix)
		cg.tgt = t
		if err := os.MkdirAll(cg.dir, 0o700); err != nil {
			return fmt.Errorf("transfer %s: %w", cg.c, err)
		}
		b, _ := json.Marshal(t)
		// The target first: a state folder with a document has a target.
		if err := atomicfile.Write(filepath.Join(cg.dir, collTargetName), b, 0o600); err != nil {
			return fmt.Errorf("transfer %s: save state: %w", cg.c, err)
		}
		if err := atomicfile.Write(filepath.Join(cg.dir, collDocName), doc, 0o600); err != nil {
			os.RemoveAll(cg.dir)
			return fmt.Errorf("transfer %s: save state: %w", cg.c, err)
		}
	}
	// A staging folder that vanished (or never was made) starts empty:
	// whatever done marks are then stale.
	fresh := false
	if _, err := os.Lstat(cg.tgt.Stage); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(cg.tgt.Stage, 0o755); err != nil {
			return fmt.Errorf("transfer %s: create staging folder: %w", cg.c, err)
		}
		fresh = true
	}
	ml, err := openMarks(filepath.Join(cg.dir, collDoneName), cg.tgt.Stage, len(cg.coll.Entries), fresh)
	if err != nil {
		return fmt.Errorf("transfer %s: %w", cg.c, err)
	}
	cg.marks = ml
	cg.mkdir.root = cg.tgt.Stage
	return nil
}

// unfinished ends a collection download that returns err: its marks are
// saved (paused), or everything is removed (cancelled).
func (cg *collGet) unfinished(err error) error {
	merr := cg.marks.close()
	if errors.Is(context.Cause(cg.g.ctx), ErrCanceled) {
		removeCollectionState(cg.dir)
		return fmt.Errorf("transfer %s: %w", cg.c, ErrCanceled)
	}
	var fe *fatalError
	if errors.As(err, &fe) || errors.Is(err, ErrExists) {
		return err
	}
	if merr != nil {
		return fmt.Errorf("transfer %s: %w (and saving its state failed: %v)", cg.c, err, merr)
	}
	return fmt.Errorf("transfer %s: %w: %d of %d files kept in %s, get it again to resume: %w",
		cg.c, ErrPaused, cg.filesDone.Load(), cg.files.Load(), cg.tgt.Stage, err)
}

// run gets every selected file not yet done, then puts the tree in place.
func (cg *collGet) run(from peer.ID) (*Result, error) {
	ctx := cg.g.ctx
	// What is left: selected files not marked, one item per CID.
	byCID := make(map[string]*citem)
	var items []*citem
	var dirs []string
	var zero []int
	done := cg.marks.doneSet()
	for i, e := range cg.coll.Entries {
		if !cg.sel[i] {
			continue
		}
		if e.Dir {
			dirs = append(dirs, e.Path)
			continue
		}
		cg.files.Add(1)
		cg.total.Add(e.Size)
		if done[i] {
			cg.filesDone.Add(1)
			cg.resumed.Add(1)
			cg.doneBytes.Add(e.Size)
			continue
		}
		if e.Size == 0 {
			zero = append(zero, i)
			continue
		}
		k := e.CID.KeyString()
		it := byCID[k]
		if it == nil {
			it = &citem{c: e.CID, size: e.Size}
			byCID[k] = it
			items = append(items, it)
		}
		it.entries = append(it.entries, i)
	}
	for _, d := range dirs {
		if err := cg.mkdir.all(d); err != nil {
			return nil, &fatalError{fmt.Errorf("transfer %s: create folder %s: %w", cg.c, d, err)}
		}
	}
	// An empty file needs nothing from anyone: the verified document
	// says it is empty.
	for _, i := range zero {
		if err := cg.writeEntry(i, nil); err != nil {
			return nil, err
		}
		cg.fileDone(i, 0, 0)
	}
	items, err := cg.copyLocal(ctx, items)
	if err != nil {
		return nil, err
	}
	if len(items) > 0 {
		if err := cg.fetch(ctx, from, items); err != nil {
			return nil, err
		}
	}
	if err := cg.marks.close(); err != nil {
		return nil, &fatalError{fmt.Errorf("transfer %s: save state: %w", cg.c, err)}
	}
	return cg.finish()
}

// fileDone records entry i as in place in the staging folder (its mark is
// committed with the next batch), chunkSize being its manifest's.
func (cg *collGet) fileDone(i int, chunkSize int, fetched int64) {
	cg.marks.add(i, chunkSize)
	cg.filesDone.Add(1)
	cg.doneBytes.Add(cg.coll.Entries[i].Size)
	cg.fetchedBytes.Add(fetched)
}

// stagePath is where entry path p is assembled.
func (cg *collGet) stagePath(p string) string {
	return filepath.Join(cg.tgt.Stage, filepath.FromSlash(p))
}

func entryMode(e collection.Entry) os.FileMode {
	if e.Executable {
		return 0o755
	}
	return 0o644
}

// writeEntry writes entry i's verified content b into the staging folder.
// The staging folder is the download's own: an unmarked file there is a
// leftover of an interrupted Get and is replaced.
func (cg *collGet) writeEntry(i int, b []byte) error {
	e := cg.coll.Entries[i]
	if err := cg.mkdir.parent(e.Path); err != nil {
		return &fatalError{fmt.Errorf("transfer %s: create folder for %s: %w", cg.c, e.Path, err)}
	}
	p := cg.stagePath(e.Path)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, entryMode(e))
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil && e.Executable {
		err = os.Chmod(p, 0o755) // whatever an old leftover's mode was
	}
	if err != nil {
		return &fatalError{fmt.Errorf("transfer %s: write %s: %w", cg.c, e.Path, err)}
	}
	return nil
}

// finish renames the staging folder into place, without replacing
// anything: exactly the target (-o), or the first free of "NAME",
// "NAME (1)", ... It records the files in the completed log.
func (cg *collGet) finish() (*Result, error) {
	t := cg.tgt
	var final string
	var err error
	for n := 0; n < maxNameTries; n++ {
		name := t.Name
		if n > 0 {
			if t.Exact {
				break
			}
			name = fmt.Sprintf("%s (%d)", t.Name, n)
		}
		final = filepath.Join(t.Parent, name)
		if err = renameNoReplace(t.Stage, final); err == nil || !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExists, filepath.Join(t.Parent, t.Name))
		}
		return nil, &fatalError{fmt.Errorf("transfer %s: put the folder in place: %w", cg.c, err)}
	}
	if err := syncDir(t.Parent); err != nil {
		cg.g.log().Warn("folder in place but its parent could not be synced", "path", final, "err", err)
	}
	cg.recordCompleted(final)
	if err := os.RemoveAll(cg.dir); err != nil {
		cg.g.log().Warn("remove collection state", "err", err)
	}
	g := cg.g
	res := &Result{
		Path: final, Size: cg.total.Load(), CID: cg.c, Duration: time.Since(g.startAt),
		FetchedBytes: cg.fetchedBytes.Load(), Collection: true,
		Files: int(cg.files.Load()), Copied: int(cg.copied.Load()), FilesResumed: int(cg.resumed.Load()),
	}
	g.log().Info("folder download complete", "path", final, "files", res.Files, "copied", res.Copied,
		"resumed", res.FilesResumed, "bytes", res.Size, "duration", res.Duration)
	return res, nil
}

// dirCache creates the folders of the staging tree, each once.
type dirCache struct {
	root string
	mu   sync.Mutex
	made map[string]bool
}

// all creates folder p (relative, "/"-separated) and its parents.
func (d *dirCache) all(p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.made[p] {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(d.root, filepath.FromSlash(p)), 0o755); err != nil {
		return err
	}
	if d.made == nil {
		d.made = make(map[string]bool)
	}
	d.made[p] = true
	return nil
}

// parent creates the folder file p is in.
func (d *dirCache) parent(p string) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	return d.all(dir)
}

// selectEntries returns which entries of c the patterns select (all if
// there are none): an entry is selected if a pattern matches its path or
// the path of one of its parent folders, by path.Match (so "*" does not
// cross a "/"); a pattern ending in "/" matches folders only ("docs/" is
// the folder docs and everything under it). Every pattern must select
// something.
func selectEntries(c *collection.Collection, only []string) ([]bool, error) {
	sel := make([]bool, len(c.Entries))
	if len(only) == 0 {
		for i := range sel {
			sel[i] = true
		}
		return sel, nil
	}
	for _, pat := range only {
		dirOnly := strings.HasSuffix(pat, "/")
		p := strings.TrimSuffix(pat, "/")
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return nil, fmt.Errorf("bad pattern %q: %v", pat, path.ErrBadPattern)
		}
		hit := false
		for i, e := range c.Entries {
			for q, isDir := e.Path, e.Dir; ; {
				if ok, _ := path.Match(p, q); ok && (isDir || !dirOnly) {
					sel[i], hit = true, true
					break
				}
				j := strings.LastIndexByte(q, '/')
				if j < 0 {
					break
				}
				q, isDir = q[:j], true
			}
		}
		if !hit {
			return nil, fmt.Errorf("%w: %q", ErrNoMatch, pat)
		}
	}
	return sel, nil
}

// markLog is the done file of a collection download: marks are added as
// files are written and committed in batches by a goroutine, each after
// the staging folder's file system is synced (syncTree), so a committed
// mark always names a file whose data is on disk.
type markLog struct {
	f     *os.File
	stage string
	done  []bool // marks read when opened

	mu      sync.Mutex
	chunks  []int  // chunk size per marked entry (under mu)
	pending []byte // lines not yet committed
	err     error  // the first commit error
	kick    chan struct{}
	quit    chan struct{}
	stopped chan struct{}
	closed  bool
}

// markInterval is how often marks are committed while files arrive.
const markInterval = 250 * time.Millisecond

func openMarks(name, stage string, n int, truncate bool) (*markLog, error) {
	flag := os.O_RDWR | os.O_CREATE | os.O_APPEND
	if truncate {
		flag |= os.O_TRUNC
	}
	f, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	ml := &markLog{f: f, stage: stage,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	ml.done, ml.chunks = readMarks(f, n)
	go ml.loop()
	return ml, nil
}

// readMarks reads a done file of a collection of n entries: which are
// marked, and their chunk sizes.
func readMarks(r io.Reader, n int) (done []bool, chunks []int) {
	done, chunks = make([]bool, n), make([]int, n)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var i, cs int
		// A line torn by a crash (no newline yet) fails to parse or
		// names a file whose data was synced before it: either way safe.
		if _, err := fmt.Sscanf(sc.Text(), "%d %d", &i, &cs); err == nil && i >= 0 && i < n {
			done[i], chunks[i] = true, cs
		}
	}
	return done, chunks
}

// pausedCollection describes the interrupted download of collection c
// whose state is in dir, from its files (nothing is changed): files and
// bytes marked done, plus the verified chunks of its large files' partial
// downloads, whose CIDs it adds to members. False if the state is
// unreadable (the next Get of c discards it).
func (s *Service) pausedCollection(dir string, c cid.Cid, members map[string]bool) (Info, bool) {
	b, err := os.ReadFile(filepath.Join(dir, collDocName))
	if err != nil {
		return Info{}, false
	}
	coll, err := collection.Verify(c, b)
	if err != nil {
		return Info{}, false
	}
	var t collTarget
	if b, err := os.ReadFile(filepath.Join(dir, collTargetName)); err != nil || json.Unmarshal(b, &t) != nil {
		return Info{}, false
	}
	sel, err := selectEntries(coll, t.Only)
	if err != nil {
		return Info{}, false
	}
	var done []bool
	if f, err := os.Open(filepath.Join(dir, collDoneName)); err == nil {
		done, _ = readMarks(f, len(coll.Entries))
		f.Close()
	} else {
		done = make([]bool, len(coll.Entries))
	}
	in := Info{CID: c, Name: SanitizeName(t.Name, c), State: StatePaused}
	seen := make(map[string]bool)
	for i, e := range coll.Entries {
		if !sel[i] || e.Dir {
			continue
		}
		in.Files++
		in.Total += e.Size
		switch {
		case done[i]:
			in.FilesDone++
			in.Done += e.Size
		case e.Size > smallMax && !seen[e.CID.KeyString()]:
			seen[e.CID.KeyString()] = true
			members[e.CID.KeyString()] = true
			if st, m, err := readState(partialDir(s.cfg.DownloadDir, e.CID), e.CID); err == nil {
				in.Done += verifiedBytes(st, m)
			}
		}
	}
	return in, true
}

// removeMemberPartials removes the partial downloads of the large files
// of the interrupted download of collection c whose state is in dir (a
// paused download being cancelled), except those a Get is running.
func (s *Service) removeMemberPartials(dir string, c cid.Cid) {
	b, err := os.ReadFile(filepath.Join(dir, collDocName))
	if err != nil {
		return
	}
	coll, err := collection.Verify(c, b)
	if err != nil {
		return
	}
	for _, e := range coll.Entries {
		if e.Dir || e.Size <= smallMax {
			continue
		}
		s.mu.Lock()
		busy := s.gets[e.CID.KeyString()] != nil
		s.mu.Unlock()
		if !busy {
			os.RemoveAll(partialDir(s.cfg.DownloadDir, e.CID))
		}
	}
}

func (ml *markLog) doneSet() []bool { return ml.done }

// chunkSize is the chunk size marked with entry i (0: unknown).
func (ml *markLog) chunkSize(i int) int {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.chunks[i]
}

// add queues the mark of entry i.
func (ml *markLog) add(i, chunkSize int) {
	ml.mu.Lock()
	ml.pending = fmt.Appendf(ml.pending, "%d %d\n", i, chunkSize)
	ml.chunks[i] = chunkSize
	big := len(ml.pending) > 64<<10
	ml.mu.Unlock()
	if big {
		select {
		case ml.kick <- struct{}{}:
		default:
		}
	}
}

func (ml *markLog) loop() {
	defer close(ml.stopped)
	t := time.NewTicker(markInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ml.kick:
		case <-ml.quit:
			ml.commit()
			return
		}
		ml.commit()
	}
}

// commit syncs the staging tree, then appends and fsyncs the pending marks.
func (ml *markLog) commit() {
	ml.mu.Lock()
	b := ml.pending
	ml.pending = nil
	ml.mu.Unlock()
	if len(b) == 0 {
		return
	}
	err := syncTree(ml.stage)
	if err == nil {
		if _, err = ml.f.Write(b); err == nil {
			err = ml.f.Sync()
		}
	}
	if err != nil {
		ml.mu.Lock()
		if ml.err == nil {
			ml.err = err
		}
		ml.mu.Unlock()
	}
}

// close commits what is pending and closes the file; it returns the
// first commit error. It may be called more than once.
func (ml *markLog) close() error {
	ml.mu.Lock()
	if ml.closed {
		err := ml.err
		ml.mu.Unlock()
		return err
	}
	ml.closed = true
	ml.mu.Unlock()
	close(ml.quit)
	<-ml.stopped
	ml.f.Close()
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.err
}

// recordCompleted appends the files of the tree now at final to the
// completed log (those whose chunk size is known), then the folder.
func (cg *collGet) recordCompleted(final string) {
	var b []byte
	for i, e := range cg.coll.Entries {
		if !cg.sel[i] || e.Dir || e.Size == 0 {
			continue
		}
		cs := cg.marks.chunkSize(i)
		if cs == 0 {
			continue
		}
		p := filepath.Join(final, filepath.FromSlash(e.Path))
		var mtime int64
		if fi, err := os.Stat(p); err == nil {
			mtime = fi.ModTime().UnixNano()
		}
		line, _ := json.Marshal(completedRec{CID: e.CID.String(), Size: e.Size, ChunkSize: cs, Path: p, Mtime: mtime})
		b = append(append(b, line...), '\n')
	}
	// Then the folder itself, after its files: a reader that finds it
	// finds them.
	folder := completedRec{CID: cg.c.String(), Size: cg.total.Load(), Path: final, Folder: true,
		Only: cg.tgt.Only, Mtime: time.Now().UnixNano()}
	line, _ := json.Marshal(folder)
	b = append(append(b, line...), '\n')
	if err := cg.s.appendCompleted(b); err != nil {
		cg.g.log().Warn("record completed files", "err", err)
	}
}
