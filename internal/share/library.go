package share

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// errHashRace: the file was written to while it was hashed.
var errHashRace = errors.New("file changed while it was being hashed; try again")

// LocalFile is a regular file or a folder in the share folder.
type LocalFile struct {
	Name      string
	Size      int64
	ModTime   time.Time
	Published bool
	CID       cid.Cid // cid.Undef if not published
	// Changed: published, but the file on disk no longer matches what was
	// hashed (size or modification time differ); publish it again. For a
	// folder: a file was added, removed or changed since.
	Changed bool
	// Folder: a folder (Size is the total of its Files files, counted as
	// publishing it would); Published and CID are of it as a collection.
	Folder bool
	Files  int
}

// PublishResult is the outcome of publishing one name.
type PublishResult struct {
	Entry Entry
	// Already: the same content (same CID) was already published; nothing
	// changed but, if Retargeted, its audience. Entry is the existing
	// entry (its name may differ).
	Already bool
	// Folder is set when a folder was published (Entry.Collection).
	Folder *FolderResult
	// Retargeted: the entry was published already and got a new audience.
	Retargeted bool
}

// checkAudience refuses an audience that names no one properly.
func (l *Library) checkAudience(a Audience) error {
	for _, p := range a.Peers {
		if _, err := peer.IDFromBytes([]byte(p)); err != nil {
			return fmt.Errorf("audience: bad peer ID %q: %w", p, err)
		}
	}
	for _, g := range a.Groups {
		if strings.TrimSpace(g) == "" || len(g) > proto.MaxNameLen {
			return fmt.Errorf("audience: bad group name %q", g)
		}
	}
	if len(a.Groups) == 0 && len(a.Peers) == 1 && a.Peers[0] == l.net.ID() {
		return errors.New("audience: only this node itself; give other peers or groups, or publish to everyone")
	}
	return nil
}

// Library is what this node publishes: the share folder, the published
// index (kept in the datastore), Open for the fetch server, the catalog
// server, the announcements of what it publishes and withdraws, and the
// DHT provider records of its CIDs (provideQueue).
type Library struct {
	net       Network
	ds        datastore.Batching
	log       *slog.Logger
	dir       string
	chunkSize int
	topic     Topic // nil: no announcements
	provide   *provideQueue
	onChange  OnChange          // what to do when a published file changes (watch.go)
	watcher   *fsnotify.Watcher // nil: not watching
	// audience tells group members (nil: none); onAudience is
	// Config.OnAudienceChange.
	audience   AudienceResolver
	onAudience func()

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	tasks  tasks // announcement repeats, withdrawals of changed files

	// opMu serialises changes of the index (publish, unpublish, marking a
	// file changed) so that datastore and memory agree.
	opMu     sync.Mutex
	mu       sync.Mutex // guards index, told and annClock
	index    map[cid.Cid]*record
	colls    map[cid.Cid]*collRecord // published folders
	annClock int64                   // time of our last announcement
	// told is, per restricted entry served, the peers that were sent its
	// PUBLISH (or, after a restart, that its audience admitted at load):
	// those a withdrawal or a revocation must reach (audience.go).
	told map[cid.Cid]map[peer.ID]bool
	// inFolder is, per content the published folders list, the
	// audiences of those folders (recountListedLocked).
	inFolder map[cid.Cid][]Audience
}

// newLibrary opens the share folder and the published index, serves the
// catalog, and provides the published CIDs in the background. Close
// stops everything it started.
func newLibrary(ctx context.Context, cfg Config, log *slog.Logger, topic Topic) (*Library, error) {
	dir, err := filepath.Abs(cfg.ShareDir)
	if err != nil {
		return nil, fmt.Errorf("share folder %s: %w", cfg.ShareDir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create share folder: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("share folder %s: not a directory (%v)", dir, err)
	}
	index, bad, err := loadIndex(ctx, cfg.Datastore)
	if err != nil {
		return nil, err
	}
	colls, badColls, err := loadCollections(ctx, cfg.Datastore)
	if err != nil {
		return nil, err
	}
	for _, e := range append(bad, badColls...) {
		log.Warn("skipping broken published index record", "err", e)
	}
	l := &Library{
		net:        cfg.Network,
		ds:         cfg.Datastore,
		log:        log,
		dir:        dir,
		chunkSize:  cfg.ChunkSize,
		topic:      topic,
		index:      index,
		colls:      colls,
		onChange:   cmp.Or(cfg.OnChange, OnChangeRepublish),
		audience:   cfg.Audience,
		onAudience: cfg.OnAudienceChange,
		told:       make(map[cid.Cid]map[peer.ID]bool),
	}
	for c, r := range index {
		if !r.To.Public() && !r.Changed && !r.Indirect {
			l.told[c] = l.allowedSet(r.To)
		}
	}
	for c, r := range colls {
		if !r.To.Public() {
			l.told[c] = l.allowedSet(r.To)
		}
	}
	l.recountListedLocked()
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	var routing provider
	if cfg.Routing != nil {
		routing = cfg.Routing
	}
	l.provide = newProvideQueue(routing, cfg.ReprovideInterval, log, l.provided, l.provides)
	l.net.SetStreamHandler(proto.CatalogID, l.handleCatalog)
	l.startWatch()
	return l, nil
}

// Close stops serving the catalog, watching the share folder, announcing
// and providing. The datastore is left open (the caller owns it).
func (l *Library) Close() error {
	l.net.RemoveStreamHandler(proto.CatalogID)
	l.cancel()
	var err error
	if l.watcher != nil {
		if err = l.watcher.Close(); err != nil {
			err = fmt.Errorf("stop watching the share folder: %w", err)
		}
	}
	l.provide.Close()
	l.tasks.Wait()
	return err
}

// provided lists the CIDs to provide on the DHT: the files published
// directly to everyone and served (not changed on disk), and the folders
// published to everyone.
// Files published only through folders are not provided on their own
// (see folder.go), nor is a restricted entry: a provider record tells
// anyone who has what.
func (l *Library) provided() []cid.Cid {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []cid.Cid
	for c, r := range l.index {
		if !r.Changed && !r.Indirect && r.To.Public() {
			out = append(out, c)
		}
	}
	for c, r := range l.colls {
		if r.To.Public() {
			out = append(out, c)
		}
	}
	return out
}

// provides reports whether c is one of provided.
func (l *Library) provides(c cid.Cid) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.index[c]
	if cr := l.colls[c]; cr != nil {
		return cr.To.Public()
	}
	return r != nil && !r.Changed && !r.Indirect && r.To.Public()
}

// listedLocked is what Published returns, and the catalogue before its
// filter by audience: the files published directly and the folders.
// Callers hold mu.
func (l *Library) listedLocked(servedOnly bool) []Entry {
	out := make([]Entry, 0, len(l.index)+len(l.colls))
	for _, r := range l.index {
		if !r.Indirect && !(servedOnly && r.Changed) {
			out = append(out, r.entry())
		}
	}
	for _, r := range l.colls {
		out = append(out, r.entry())
	}
	return out
}

// publishedEntry is this node's entry for c, if it publishes c (even
// changed on disk).
func (l *Library) publishedEntry(c cid.Cid) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.colls[c]; r != nil {
		return r.entry(), true
	}
	r := l.index[c]
	if r == nil {
		return Entry{}, false
	}
	e := r.entry()
	e.Name = path.Base(e.Name) // a file of a folder: its own name
	return e, true
}

// ShareDir is the absolute path of the share folder.
func (l *Library) ShareDir() string { return l.dir }

// Files lists the regular files and the folders directly in the share
// folder. Hidden files (temp files start with "."), names CheckName
// refuses and symlinks leading out of the folder are left out, and so are
// symlinks to folders (publish does not follow them). A folder is walked
// to count its files as publishing it would.
func (l *Library) Files() ([]LocalFile, error) {
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list share folder %s: %w", l.dir, err)
	}
	l.mu.Lock()
	recs := l.namesLocked()
	folders := make(map[string]*collRecord)
	for _, r := range l.colls {
		if o := folders[r.Name]; o == nil || r.Published.After(o.Published) {
			folders[r.Name] = r
		}
	}
	l.mu.Unlock()

	var out []LocalFile
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || CheckName(name) != nil {
			continue
		}
		if de.IsDir() {
			if lf, ok := l.localFolder(name, folders[name]); ok {
				out = append(out, lf)
			}
			continue
		}
		fi, err := statShared(l.dir, name) // follows symlinks only inside the folder
		if err != nil || fi.IsDir() {
			continue
		}
		lf := LocalFile{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
		if r, ok := recs[name]; ok {
			lf.Published = true
			lf.CID = r.cid
			lf.Changed = r.Changed || r.Size != fi.Size() || r.ModTime != fi.ModTime().UnixNano()
		}
		out = append(out, lf)
	}
	slices.SortFunc(out, func(a, b LocalFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Publish hashes the named files of the share folder, records them in the
// index, provides their CIDs on the DHT (in the background: a provide
// failure never fails a publish; it is retried) and announces them.
// Publishing a name whose content changed since its last publish withdraws
// the old CID. A folder is published as one collection (folder.go). A name
// that does not exist but is a shell pattern (path.Match: *, ?, [...]) is
// replaced by the top-level names it matches. Every name is tried; the
// results of those that succeeded are returned together with an error
// joining the failures.
func (l *Library) Publish(ctx context.Context, names ...string) ([]PublishResult, error) {
	return l.PublishWith(ctx, PublishOptions{}, names...)
}

// PublishWith is Publish with options: an audience (see PublishOptions).
// Restricted entries are announced only to the peers of their audience,
// directly, and not provided on the DHT; an entry already published whose
// audience changes is withdrawn from the peers no longer allowed and
// announced to those newly allowed.
func (l *Library) PublishWith(ctx context.Context, opt PublishOptions, names ...string) ([]PublishResult, error) {
	if opt.Audience != nil {
		a := opt.Audience.normalized()
		if err := l.checkAudience(a); err != nil {
			return nil, err
		}
		opt.Audience = &a
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	var out []PublishResult
	names, errs := l.expandNames(names)
	for _, name := range names {
		var res PublishResult
		var err error
		if l.isFolder(name) {
			res, err = l.publishFolder(ctx, name, opt.Audience)
		} else {
			res, err = l.publishOne(ctx, name, opt.Audience)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("publish %q: %w", name, err))
			continue
		}
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}

func (l *Library) publishOne(ctx context.Context, name string, aud *Audience) (PublishResult, error) {
	if err := CheckName(name); err != nil { // a top-level name: "a/b" is not one
		return PublishResult{}, err
	}
	f, fi, err := openShared(l.dir, name)
	if err != nil {
		return PublishResult{}, err
	}
	defer f.Close()
	m, err := manifest.Build(ctx, f, fi.Size(), l.chunkSize)
	if err != nil {
		return PublishResult{}, err
	}
	if fi2, err := f.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return PublishResult{}, errHashRace
	}
	mb := m.Marshal()
	c := manifest.CIDOf(mb)
	if err := l.dropName(ctx, name, c); err != nil { // other content published under it and other names
		return PublishResult{}, err
	}

	l.mu.Lock()
	existing := l.index[c]
	var olds []*record
	for oc, r := range l.index {
		if r.Name == name && oc != c {
			olds = append(olds, r)
		}
	}
	if existing != nil && !existing.Changed && existing.Indirect {
		// Published so far only as a file of a folder: now directly too,
		// under this name.
		l.mu.Unlock()
		rec := *existing
		rec.Indirect, rec.Name, rec.ModTime, rec.Published = false, name, fi.ModTime().UnixNano(), time.Now().Round(0).UTC()
		if aud != nil {
			rec.To = *aud
		}
		return l.putDirect(ctx, &rec, nil, olds)
	}
	if existing != nil && !existing.Changed && !existing.hasName(name) {
		// The same content is published already under another name:
		// published under this one too (aliases.go).
		l.mu.Unlock()
		return l.addName(ctx, existing, name, fi.ModTime().UnixNano(), aud, olds)
	}
	if existing != nil && !existing.Changed {
		// The same content is published already. If this name held
		// other content before, that is withdrawn; if the file is the
		// published one, touched (same bytes, new mtime), its record
		// follows, or Open would refuse to serve it; a new audience
		// replaces the old one.
		mt, _ := existing.mtimeOf(name)
		touched := mt != fi.ModTime().UnixNano()
		retarget := aud != nil && !aud.equal(existing.To)
		oldTo := existing.To
		var snap record
		if touched || retarget {
			snap = *existing
		}
		l.mu.Unlock()
		if touched || retarget {
			snap = snap.withMTime(name, fi.ModTime().UnixNano())
			if retarget {
				snap.To = *aud
			}
			if err := storeRecords(ctx, l.ds, []*record{&snap}, nil, nil); err != nil {
				return PublishResult{}, err
			}
			l.mu.Lock()
			if l.index[c] == existing {
				existing.ModTime, existing.Aliases, existing.To = snap.ModTime, snap.Aliases, snap.To
			}
			l.mu.Unlock()
		}
		if retarget {
			l.retarget(existing.entry(), oldTo)
		}
		if err := l.withdrawOld(ctx, olds); err != nil {
			return PublishResult{}, err
		}
		l.mu.Lock()
		e := existing.entry().Named(name)
		l.mu.Unlock()
		return PublishResult{Entry: e, Already: true, Retargeted: retarget}, nil
	}
	// Without a new audience, a new version keeps the audience of what it
	// replaces: the same content changed on disk, or this name's old
	// content.
	var to Audience
	if aud != nil {
		to = *aud
	} else {
		if existing != nil {
			to = to.union(existing.To)
		}
		for _, o := range olds {
			to = to.union(o.To)
		}
	}
	l.mu.Unlock()

	rec := &record{
		CID:       c.String(),
		Name:      name,
		Size:      fi.Size(),
		ModTime:   fi.ModTime().UnixNano(),
		SHA256:    m.FileHash[:],
		ChunkSize: m.ChunkSize,
		Published: time.Now().Round(0).UTC(),
		To:        to,
		cid:       c,
		m:         m,
	}
	return l.putDirect(ctx, rec, mb, olds)
}

// withdrawOld withdraws olds, earlier content under a name now published
// with other content, and announces it.
func (l *Library) withdrawOld(ctx context.Context, olds []*record) error {
	if len(olds) == 0 {
		return nil
	}
	sel := make(map[cid.Cid]*record, len(olds))
	for _, o := range olds {
		sel[o.cid] = o
	}
	_, err := l.withdraw(ctx, sel, nil, proto.Announcement_UNPUBLISH)
	return err
}

// putDirect records rec (with its manifest bytes mb, unless its manifest
// is stored already) as published directly, replacing olds (earlier
// content under the same name: withdrawn, unless a folder still lists
// them), provides and announces it. Callers hold opMu.
func (l *Library) putDirect(ctx context.Context, rec *record, mb []byte, olds []*record) (PublishResult, error) {
	c, name := rec.cid, rec.Name
	undirect := make(map[cid.Cid]bool, len(olds))
	for _, o := range olds {
		undirect[o.cid] = true
	}
	l.mu.Lock()
	w := l.settleLocked(l.colls, map[cid.Cid]*record{c: rec}, undirect)
	l.mu.Unlock()
	if mb != nil {
		w.manifests = map[cid.Cid][]byte{c: mb}
	}
	if err := w.commit(ctx, l.ds); err != nil {
		return PublishResult{}, err
	}
	l.mu.Lock()
	l.applyLocked(w)
	l.mu.Unlock()
	var del []cid.Cid
	for _, o := range olds {
		del = append(del, o.cid)
	}
	l.provide.Dequeue(del...)
	if rec.To.Public() {
		l.provide.Enqueue(c)
	}
	if len(olds) > 0 {
		var oldEntries []Entry
		for _, o := range olds {
			oldEntries = append(oldEntries, o.entry())
			l.log.Info("withdrew old version", "name", name, "cid", o.cid, "new", c)
		}
		l.announce(proto.Announcement_UNPUBLISH, oldEntries)
	}
	e := rec.entry()
	l.announce(proto.Announcement_PUBLISH, []Entry{e})
	l.log.Info("published", "name", name, "cid", c, "size", rec.Size)
	return PublishResult{Entry: e}, nil
}

// Published lists this node's published entries (files published
// directly and folders, not the files published only through folders),
// sorted by name, including any whose file changed on disk
// (LocalFile.Changed): those stay listed until published again or
// withdrawn, but are not served.
func (l *Library) Published() []Entry {
	l.mu.Lock()
	out := l.listedLocked(false)
	l.mu.Unlock()
	sortEntries(out)
	return out
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.CID.String(), b.CID.String()))
	})
}

// Unpublish withdraws published entries given by name or CID: removed from
// the index, no longer re-provided (DHT records cannot be withdrawn; they
// expire), withdrawal announced. A folder is withdrawn with the files
// published only through it; a file that a published folder still lists
// stays served as a file of that folder. If any argument is not published
// (a file published only through a folder is not, on its own), nothing
// is withdrawn and the error (wrapping ErrNotPublished) names it.
func (l *Library) Unpublish(ctx context.Context, namesOrCIDs ...string) ([]Entry, error) {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	sel := make(map[cid.Cid]*record)
	selColls := make(map[cid.Cid]*collRecord)
	named := make(map[cid.Cid][]string) // names of content published under several
	var errs []error
	for _, arg := range namesOrCIDs {
		if c, err := cid.Decode(arg); err == nil {
			if r, ok := l.index[c]; ok && !r.Indirect {
				sel[c] = r
				continue
			}
			if r, ok := l.colls[c]; ok {
				selColls[c] = r
				continue
			}
		}
		found := false
		for c, r := range l.index {
			if !r.Indirect && r.hasName(arg) {
				named[c] = append(named[c], arg)
				found = true
			}
		}
		for c, r := range l.colls {
			if r.Name == strings.TrimSuffix(arg, "/") {
				selColls[c] = r
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("unpublish %q: %w (no published name or CID matches)", arg, ErrNotPublished))
		}
	}
	trim := l.splitNamedLocked(named, sel)
	l.mu.Unlock()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	names, err := l.trimNames(ctx, trim)
	if err != nil {
		return nil, err
	}
	out, err := l.withdraw(ctx, sel, selColls, proto.Announcement_UNPUBLISH)
	out = append(out, names...)
	sortEntries(out)
	return out, err
}

// UnpublishAll withdraws every published entry.
func (l *Library) UnpublishAll(ctx context.Context) ([]Entry, error) {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	sel := make(map[cid.Cid]*record, len(l.index))
	for c, r := range l.index {
		if !r.Indirect {
			sel[c] = r
		}
	}
	selColls := maps.Clone(l.colls)
	l.mu.Unlock()
	return l.withdraw(ctx, sel, selColls, proto.Announcement_UNPUBLISH_ALL)
}

// withdraw removes the files published directly sel and the folders
// selColls from the index (with the files published only through those
// folders) and announces it. Callers hold opMu.
func (l *Library) withdraw(ctx context.Context, sel map[cid.Cid]*record, selColls map[cid.Cid]*collRecord, kind proto.Announcement_Kind) ([]Entry, error) {
	if len(sel)+len(selColls) == 0 && kind != proto.Announcement_UNPUBLISH_ALL {
		return nil, nil
	}
	var gone []cid.Cid
	var out []Entry
	undirect := make(map[cid.Cid]bool, len(sel))
	for c, r := range sel {
		gone = append(gone, c)
		undirect[c] = true
		out = append(out, r.entry())
	}
	l.mu.Lock()
	colls := make(map[cid.Cid]*collRecord, len(l.colls))
	for c, r := range l.colls {
		if selColls[c] == nil {
			colls[c] = r
		}
	}
	w := l.settleLocked(colls, nil, undirect)
	l.mu.Unlock()
	for c, r := range selColls {
		gone = append(gone, c)
		w.delColls = append(w.delColls, c)
		out = append(out, r.entry())
	}
	if err := w.commit(ctx, l.ds); err != nil {
		return nil, fmt.Errorf("unpublish: %w", err)
	}
	l.mu.Lock()
	l.applyLocked(w)
	l.mu.Unlock()
	l.provide.Dequeue(gone...)
	l.unwatchFolders(selColls)
	sortEntries(out)
	if kind == proto.Announcement_UNPUBLISH_ALL {
		l.announce(kind, nil)
	} else {
		l.announce(kind, out)
	}
	for _, e := range out {
		l.log.Info("unpublished", "name", e.Name, "cid", e.CID, "folder", e.Collection)
	}
	return out, nil
}

// Open returns the manifest of a published CID and the file, opened for
// reading, for the fetch protocol and peer p, its authenticated fetcher;
// the caller closes the file. It fails with ErrNotPublished for CIDs this
// node does not publish, and, with the same error, for an entry whose
// audience does not admit p (so a refusal does not tell that the CID
// exists, not even that it changed on disk); with
// ErrChanged when the file's size or modification time differ from when it
// was hashed: the entry is then marked changed, withdrawn from peers and no
// longer served under its old CID.
//
// The manifest was verified when the file was published (or when the index
// was loaded) and is kept in memory: Open reads nothing but the file's
// metadata. The manifest is shared; callers must not modify it.
func (l *Library) Open(c cid.Cid, p peer.ID) (*manifest.Manifest, *os.File, error) {
	l.mu.Lock()
	r, ok := l.index[c]
	var rec record
	if ok {
		rec = *r
	}
	folders := l.inFolder[c]
	l.mu.Unlock()
	// Served to p if a folder listing it admits p, or if it is published
	// directly (an indirect record's To is stale: the audience it had when
	// it was last published directly) to an audience that admits p.
	if !ok || !(l.folderAllows(folders, p) || !rec.Indirect && l.allows(rec.To, p)) {
		return nil, nil, fmt.Errorf("open %s: %w", c, ErrNotPublished)
	}
	if rec.Changed {
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, ErrChanged)
	}
	if len(rec.Aliases) > 0 { // any name whose file still matches serves it
		rec = l.servingName(c, r, rec)
	}
	f, fi, err := openShared(l.dir, rec.Name)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadName) {
			l.markChanged(c, r, "file is gone or no longer a regular file in the share folder")
			return nil, nil, fmt.Errorf("open %s (%q): %w: %v", c, rec.Name, ErrChanged, err)
		}
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, err)
	}
	if fi.Size() != rec.Size || fi.ModTime().UnixNano() != rec.ModTime {
		f.Close()
		l.markChanged(c, r, fmt.Sprintf("size %d -> %d, mtime %s -> %s", rec.Size, fi.Size(),
			time.Unix(0, rec.ModTime).Format(time.RFC3339Nano), fi.ModTime().Format(time.RFC3339Nano)))
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, ErrChanged)
	}
	if rec.m == nil { // a Changed record loaded without its manifest: never served
		f.Close()
		return nil, nil, fmt.Errorf("open %s (%q): %w", c, rec.Name, ErrChanged)
	}
	return rec.m, f, nil
}

// markChanged marks r (at c) as changed at once in memory, so it is not
// served again; persisting and announcing the withdrawal happen in the
// background because Open must not wait for a publish holding opMu.
func (l *Library) markChanged(c cid.Cid, r *record, why string) {
	l.mu.Lock()
	if l.index[c] != r || r.Changed {
		l.mu.Unlock()
		return
	}
	r.Changed = true
	snapshot := *r
	l.mu.Unlock()
	l.log.Warn("published file changed on disk; no longer served under its old CID; publish it again",
		"name", snapshot.Name, "cid", c, "change", why)
	l.provide.Dequeue(c)
	l.tasks.Go(func() {
		l.opMu.Lock()
		defer l.opMu.Unlock()
		l.mu.Lock()
		still := l.index[c] == r
		l.mu.Unlock()
		if !still {
			return
		}
		if err := storeRecords(l.ctx, l.ds, []*record{&snapshot}, nil, nil); err != nil {
			l.log.Warn("could not record changed file in the index", "name", snapshot.Name, "cid", c, "err", err)
		}
		if !snapshot.Indirect { // a folder's file was never announced alone
			l.announce(proto.Announcement_UNPUBLISH, []Entry{snapshot.entry()})
		}
	})
}
