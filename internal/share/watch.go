package share

// Watching the share folder: a published file edited, replaced or removed
// after publishing no longer matches its CID, so fetchers of the old CID
// would wait for bytes that no longer exist while every list still shows
// it. The Library watches the folder (fsnotify: inotify on Linux, kqueue
// on macOS and the BSDs, ReadDirectoryChangesW on Windows) and, once a
// published file has been quiet for watchQuiet, looks at it: if its size
// or modification time differ from what was hashed, it republishes it
// (the new CID announced, the old one withdrawn) or withdraws it, as the
// user chose (Config.OnChange). A file that is gone is withdrawn either
// way. Edits made while the node was not running are found by a scan at
// start. Open keeps its own check, for what the watcher cannot see
// (watching failed, or a symlink's target changed).
//
// A published folder is watched in every one of its folders (inotify does
// not watch a tree); an event anywhere under it makes the folder the name
// looked at: it is published again (only files whose size or mtime changed
// are hashed; the answer is "already published" if nothing did, and the
// new version's folders are watched in turn) or withdrawn, as chosen.

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// OnChange is what the Library does when a published file changes on disk.
type OnChange string

const (
	// OnChangeRepublish hashes the file again, publishes the new content
	// and withdraws the old (the default).
	OnChangeRepublish OnChange = "republish"
	// OnChangeWithdraw withdraws the file.
	OnChangeWithdraw OnChange = "withdraw"
	// OnChangeIgnore does not watch the folder: a changed file is only
	// noticed when a peer asks for it (then withdrawn, not served). For
	// embedders and tests that change files on purpose.
	OnChangeIgnore OnChange = "ignore"
)

// ParseOnChange reads a user's choice: republish or withdraw. The error
// does not repeat s (the flag package quotes it).
func ParseOnChange(s string) (OnChange, error) {
	switch o := OnChange(s); o {
	case OnChangeRepublish, OnChangeWithdraw:
		return o, nil
	}
	return "", errors.New("want republish (publish the new content, withdraw the old) or withdraw")
}

// watchQuiet: a file being written gives many events; it is looked at once
// none came for this long.
const watchQuiet = time.Second

// startWatch watches the share folder, unless the user chose
// OnChangeIgnore. Failing to watch (e.g. the system's limit on inotify
// instances is reached) is logged, not fatal: Open still catches changes.
func (l *Library) startWatch() {
	if l.onChange == OnChangeIgnore {
		return
	}
	fw, err := fsnotify.NewWatcher()
	if err == nil {
		if err = fw.Add(l.dir); err != nil {
			fw.Close()
		}
	}
	if err != nil {
		l.log.Warn("cannot watch the share folder: a published file edited later is only noticed when a peer asks for it",
			"dir", l.dir, "err", err)
		return
	}
	l.watcher = fw
	l.mu.Lock()
	colls := slices.Collect(maps.Values(l.colls))
	l.mu.Unlock()
	for _, r := range colls {
		l.watchFolder(r)
	}
	l.tasks.Go(func() { l.watchLoop(fw) })
}

// watchLoop looks at published files after a change, once quiet.
func (l *Library) watchLoop(fw *fsnotify.Watcher) {
	l.checkNames(l.publishedNames())  // edits made while we were not running
	pending := map[string]time.Time{} // name -> last event
	timer := time.NewTimer(watchQuiet)
	defer timer.Stop()
	var due <-chan time.Time
	schedule := func() {
		if len(pending) == 0 {
			due = nil
			return
		}
		var first time.Time
		for _, t := range pending {
			if first.IsZero() || t.Before(first) {
				first = t
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(first.Add(watchQuiet)), 0))
		due = timer.C
	}
	for {
		select {
		case <-l.ctx.Done():
			return
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			name, ok := l.watchedName(ev.Name)
			if !ok {
				continue
			}
			pending[name] = time.Now()
			schedule()
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			l.log.Warn("watching the share folder", "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) { // events lost: look at everything
				for _, n := range l.publishedNames() {
					pending[n] = time.Now()
				}
				schedule()
			}
		case <-due:
			now := time.Now()
			var quiet []string
			for n, t := range pending {
				if now.Sub(t) >= watchQuiet {
					quiet = append(quiet, n)
					delete(pending, n)
				}
			}
			for _, n := range l.checkNames(quiet) {
				pending[n] = time.Now() // changed again while hashed
			}
			schedule()
		}
	}
}

// watchedName maps the path of an event to the published name to look
// at: the file or folder of the share folder it is, or the published
// folder it lies in.
func (l *Library) watchedName(p string) (string, bool) {
	rel, err := filepath.Rel(l.dir, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	top, _, nested := strings.Cut(filepath.ToSlash(rel), "/")
	if nested {
		return top, l.publishedFolder(top) != nil
	}
	return top, l.isPublished(top)
}

// isPublished reports whether name is the name of a published entry: a
// file published directly, or a folder.
func (l *Library) isPublished(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.index {
		if !r.Indirect && r.hasName(name) {
			return true
		}
	}
	for _, r := range l.colls {
		if r.Name == name {
			return true
		}
	}
	return false
}

// publishedNames lists the names of the published entries (files
// published directly and folders).
func (l *Library) publishedNames() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, e := range l.listedLocked(false) {
		for _, n := range e.Names() {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// checkNames applies the user's choice to those of names whose file no
// longer matches what was published, and returns the names to look at
// again later (written to while being hashed).
func (l *Library) checkNames(names []string) (again []string) {
	for _, name := range names {
		if l.ctx.Err() != nil {
			return nil
		}
		if l.checkName(name) {
			again = append(again, name)
		}
	}
	return again
}

// checkName looks at one published name; it reports whether to look again.
func (l *Library) checkName(name string) (again bool) {
	if l.publishedFolder(name) != nil {
		return l.checkFolder(name)
	}
	l.mu.Lock()
	var recs []record
	for _, r := range l.index {
		if !r.Indirect && r.hasName(name) {
			recs = append(recs, r.as(name))
		}
	}
	l.mu.Unlock()
	if len(recs) == 0 {
		return false
	}
	fi, err := statShared(l.dir, name)
	gone := err != nil
	if !gone && len(recs) == 1 && !recs[0].Changed &&
		recs[0].Size == fi.Size() && recs[0].ModTime == fi.ModTime().UnixNano() {
		return false // unchanged (an event that changed nothing, e.g. a read)
	}
	ctx := l.ctx
	if gone || l.onChange == OnChangeWithdraw {
		why := "changed on disk"
		if gone {
			why = fmt.Sprintf("no longer in the share folder (%v)", err)
		}
		if _, err := l.Unpublish(ctx, name); err != nil && !errors.Is(err, ErrNotPublished) && ctx.Err() == nil {
			l.log.Warn("published file changed on disk; could not withdraw it", "name", name, "err", err)
			return false
		}
		l.log.Info("published file "+why+": withdrawn", "name", name)
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
		// It cannot be served as it was, nor published as it is now: tell
		// the others it is gone.
		l.log.Warn("published file changed on disk; could not publish it again: withdrawing it", "name", name, "err", err)
		if _, err := l.Unpublish(ctx, name); err != nil && !errors.Is(err, ErrNotPublished) {
			l.log.Warn("could not withdraw the changed file", "name", name, "err", err)
		}
	case len(res) == 1:
		l.log.Info("published file changed on disk: published again", "name", name, "cid", res[0].Entry.CID)
	}
	return false
}
