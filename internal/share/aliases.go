package share

// One content under several names: the same bytes in two files of the
// share folder are published under both names. There is still one record
// per CID (index.go): hashed, stored, provided and served once, with one
// audience (publishing a second name with --to changes who may fetch the
// content under either name). The record's Name is its first name; the
// others are its Aliases, each with the modification time of its own file,
// so that Open can serve the bytes from any name whose file still matches.
//
// On the wire each name is an entry of its own (one CatalogEntry per
// (name, CID)), and the entries of one CID in one catalogue or one PUBLISH
// message are the complete list of names its publisher gives it: a
// receiver groups them (groupByCID) and replaces what it held, so
// withdrawing one name of two is a PUBLISH of the other, and only the last
// name's withdrawal is an UNPUBLISH of the CID. Those entries are never
// split over two messages. A peer running an older version keeps one name
// per CID (the last one listed).

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// maxNamesPerEntry bounds the names of one CID: what this node publishes,
// and what it keeps of another peer's claim (extra names are dropped, and
// the ones kept are charged to the budget of remote.go).
const maxNamesPerEntry = 16

// aliasCost is what a name beyond the first costs in the remote view
// besides its bytes: its string header in the Aliases slice, with the
// slice's slack.
const aliasCost = 24

// alias is another name of a record's content and its file's
// modification time when it was last found to hold that content.
type alias struct {
	Name    string `json:"name"`
	ModTime int64  `json:"mtime_ns"`
}

// Names is Name followed by Aliases.
func (e Entry) Names() []string {
	return append([]string{e.Name}, e.Aliases...)
}

// HasName reports whether n is one of e's names.
func (e Entry) HasName(n string) bool {
	return e.Name == n || slices.Contains(e.Aliases, n)
}

// Named is e seen under n, one of its names: Name n, the others Aliases
// (in their order). A name e does not have leaves it as it is.
func (e Entry) Named(n string) Entry {
	if e.Name == n || !slices.Contains(e.Aliases, n) {
		return e
	}
	others := make([]string, 0, len(e.Aliases))
	for _, a := range e.Names() {
		if a != n {
			others = append(others, a)
		}
	}
	e.Name, e.Aliases = n, others
	return e
}

// ByName lists es with one entry per name (Named), sorted by name, then
// CID: how lists read when one content has several names.
func ByName(es []Entry) []Entry {
	out := make([]Entry, 0, len(es))
	for _, e := range es {
		for _, n := range e.Names() {
			out = append(out, e.Named(n))
		}
	}
	sortEntries(out)
	return out
}

// groupByCID merges the entries of one CID (one per name, as on the wire)
// into one, in the order the CIDs first appear: the first entry gives
// everything but the other names, which become Aliases (duplicates
// dropped, at most maxNamesPerEntry names in all).
func groupByCID(es []Entry) []Entry {
	at := make(map[cid.Cid]int, len(es))
	out := es[:0:0]
	for _, e := range es {
		i, ok := at[e.CID]
		if !ok {
			at[e.CID] = len(out)
			e.Aliases = nil
			out = append(out, e)
			continue
		}
		g := &out[i]
		if len(g.Aliases)+1 < maxNamesPerEntry && !g.HasName(e.Name) {
			g.Aliases = append(g.Aliases, e.Name)
		}
	}
	return out
}

// toWireAll is e on the wire: one entry per name, Name first.
func toWireAll(e Entry) []*proto.CatalogEntry {
	out := []*proto.CatalogEntry{toWire(e)}
	for _, n := range e.Aliases {
		pe := toWire(e)
		pe.Name = n
		out = append(out, pe)
	}
	return out
}

// wireSize is the encoded size of pes in a message, generously.
func wireSize(pes []*proto.CatalogEntry) int {
	n := 0
	for _, pe := range pes {
		n += gproto.Size(pe) + 8 // field tag and length prefix
	}
	return n
}

// hasName reports whether r is published directly under n.
func (r *record) hasName(n string) bool {
	_, ok := r.mtimeOf(n)
	return ok
}

// mtimeOf is the modification time of r's file under the name n.
func (r *record) mtimeOf(n string) (int64, bool) {
	if r.Name == n {
		return r.ModTime, true
	}
	for _, a := range r.Aliases {
		if a.Name == n {
			return a.ModTime, true
		}
	}
	return 0, false
}

// names lists r's names, Name first.
func (r *record) names() []string {
	out := []string{r.Name}
	for _, a := range r.Aliases {
		out = append(out, a.Name)
	}
	return out
}

// as is r seen under its name n: Name and ModTime of that name's file.
func (r *record) as(n string) record {
	v := *r
	if mt, ok := r.mtimeOf(n); ok {
		v.Name, v.ModTime = n, mt
	}
	return v
}

// withMTime is r with the modification time of n's file set to mt. The
// Aliases slice is new: records are copied by value, and copies share it.
func (r record) withMTime(n string, mt int64) record {
	if r.Name == n {
		r.ModTime = mt
		return r
	}
	r.Aliases = slices.Clone(r.Aliases)
	for i := range r.Aliases {
		if r.Aliases[i].Name == n {
			r.Aliases[i].ModTime = mt
		}
	}
	return r
}

// withName is r published under n too.
func (r record) withName(n string, mt int64) record {
	r.Aliases = append(slices.Clone(r.Aliases), alias{n, mt})
	return r
}

// without is r no longer published under the names drop; false if none
// of its names is left. When Name goes, the first alias left takes its
// place.
func (r record) without(drop ...string) (record, bool) {
	var left []alias
	for _, a := range append([]alias{{r.Name, r.ModTime}}, r.Aliases...) {
		if !slices.Contains(drop, a.Name) {
			left = append(left, a)
		}
	}
	if len(left) == 0 {
		return r, false
	}
	r.Name, r.ModTime = left[0].Name, left[0].ModTime
	r.Aliases = nil
	if len(left) > 1 {
		r.Aliases = left[1:]
	}
	return r, true
}

// checkAliases drops the aliases of a loaded record that are not valid
// top-level names, repeat a name, or exceed maxNamesPerEntry; an indirect
// record has none. It reports what it dropped.
func (r *record) checkAliases() (dropped []string) {
	if r.Indirect {
		for _, a := range r.Aliases {
			dropped = append(dropped, a.Name)
		}
		r.Aliases = nil
		return dropped
	}
	var keep []alias
	seen := map[string]bool{r.Name: true}
	for _, a := range r.Aliases {
		if seen[a.Name] || CheckName(a.Name) != nil || len(keep)+1 >= maxNamesPerEntry {
			dropped = append(dropped, a.Name)
			continue
		}
		seen[a.Name] = true
		keep = append(keep, a)
	}
	r.Aliases = keep
	return dropped
}

// namesLocked maps every name of the share folder a record is published
// under (and the path of every indirect one) to the record as seen under
// it (as). Callers hold mu.
func (l *Library) namesLocked() map[string]record {
	out := make(map[string]record, len(l.index))
	for _, r := range l.index {
		for _, n := range r.names() {
			out[n] = r.as(n)
		}
	}
	return out
}

// addName publishes existing, published directly and served, under name
// too (its file, of modification time mt, holds the same bytes), replacing
// olds (earlier content under name). The content keeps one audience: aud,
// if given, becomes that of every name. Callers hold opMu, not mu.
func (l *Library) addName(ctx context.Context, existing *record, name string, mt int64, aud *Audience, olds []*record) (PublishResult, error) {
	l.mu.Lock()
	if n := len(existing.Aliases) + 1; n >= maxNamesPerEntry {
		l.mu.Unlock()
		return PublishResult{}, fmt.Errorf("the same content is published under %d names already (%s); at most %d",
			n, strings.Join(existing.names(), ", "), maxNamesPerEntry)
	}
	snap := existing.withName(name, mt)
	oldTo := existing.To
	retarget := aud != nil && !aud.equal(existing.To)
	if retarget {
		snap.To = *aud
	}
	l.mu.Unlock()
	if err := storeRecords(ctx, l.ds, []*record{&snap}, nil, nil); err != nil {
		return PublishResult{}, err
	}
	l.mu.Lock()
	if l.index[existing.cid] == existing {
		existing.Aliases, existing.To = snap.Aliases, snap.To
	}
	e := existing.entry()
	l.mu.Unlock()
	if retarget {
		l.retarget(e, oldTo)
	} else {
		l.announce(proto.Announcement_PUBLISH, []Entry{e})
	}
	if err := l.withdrawOld(ctx, olds); err != nil {
		return PublishResult{}, err
	}
	l.log.Info("published under another name too", "name", name, "cid", e.CID, "names", e.Names())
	return PublishResult{Entry: e.Named(name), Retargeted: retarget}, nil
}

// dropName withdraws name from the records other than except that are
// published under other names too (name now holds other content, or is
// gone); records published only under name are left to the caller.
// Callers hold opMu, not mu.
func (l *Library) dropName(ctx context.Context, name string, except cid.Cid) error {
	l.mu.Lock()
	trim := make(map[cid.Cid][]string)
	for c, r := range l.index {
		if c != except && !r.Indirect && len(r.Aliases) > 0 && r.hasName(name) {
			trim[c] = []string{name}
		}
	}
	l.mu.Unlock()
	_, err := l.trimNames(ctx, trim)
	return err
}

// splitNamedLocked sorts the names given to withdraw, by CID, into the
// records to withdraw whole (every name of theirs given, or the CID in
// sel already), added to sel, and those that keep some of their names,
// returned. Callers hold mu.
func (l *Library) splitNamedLocked(named map[cid.Cid][]string, sel map[cid.Cid]*record) map[cid.Cid][]string {
	trim := make(map[cid.Cid][]string)
	for c, ns := range named {
		r := l.index[c]
		if sel[c] != nil {
			continue
		}
		if _, left := r.without(ns...); left {
			trim[c] = ns
		} else {
			sel[c] = r
		}
	}
	return trim
}

// trimNames withdraws, for each CID of trim, the names given, which leave
// it at least one: its record keeps the others, is stored, and is
// announced again with the names it keeps (which is how peers learn that
// one name went). It returns the entries of the names withdrawn. Callers
// hold opMu, not mu.
func (l *Library) trimNames(ctx context.Context, trim map[cid.Cid][]string) ([]Entry, error) {
	if len(trim) == 0 {
		return nil, nil
	}
	type change struct {
		r    *record
		next record
		gone []string
	}
	var chs []change
	l.mu.Lock()
	for c, ns := range trim {
		r := l.index[c]
		if r == nil {
			continue
		}
		next, left := r.without(ns...)
		if !left {
			continue
		}
		chs = append(chs, change{r, next, ns})
	}
	l.mu.Unlock()
	put := make([]*record, len(chs))
	for i := range chs {
		put[i] = &chs[i].next
	}
	if err := storeRecords(ctx, l.ds, put, nil, nil); err != nil {
		return nil, fmt.Errorf("withdraw a name: %w", err)
	}
	var out, again []Entry
	l.mu.Lock()
	for _, ch := range chs {
		if l.index[ch.r.cid] == ch.r {
			ch.r.Name, ch.r.ModTime, ch.r.Aliases = ch.next.Name, ch.next.ModTime, ch.next.Aliases
		}
		e := ch.next.entry()
		again = append(again, e)
		for _, n := range ch.gone {
			g := e
			g.Name, g.Aliases = n, nil
			out = append(out, g)
		}
	}
	l.mu.Unlock()
	sortEntries(again)
	l.announce(proto.Announcement_PUBLISH, again)
	for _, e := range out {
		l.log.Info("unpublished a name; the content stays published under its others", "name", e.Name, "cid", e.CID)
	}
	sortEntries(out)
	return out, nil
}

// servingName is rec (a copy of r, the record of c, published under
// several names) seen under the first of its names whose file still
// matches what was hashed, for Open. The names found not to match are
// withdrawn at once in memory (not served under them any more), in the
// background in the index and from peers (the content stays announced
// under the names left). If none matches, rec is returned as it is: Open
// finds it changed.
func (l *Library) servingName(c cid.Cid, r *record, rec record) record {
	var stale []string
	found := ""
	for _, n := range rec.names() {
		mt, _ := rec.mtimeOf(n)
		if fi, err := statShared(l.dir, n); err == nil && fi.Size() == rec.Size && fi.ModTime().UnixNano() == mt {
			found = n
			break
		}
		stale = append(stale, n)
	}
	if found == "" || len(stale) == 0 {
		return rec
	}
	next, _ := rec.without(stale...)
	l.mu.Lock()
	if l.index[c] != r || r.Changed {
		l.mu.Unlock()
		return next
	}
	r.Name, r.ModTime, r.Aliases = next.Name, next.ModTime, next.Aliases
	l.mu.Unlock()
	l.log.Warn("published file changed on disk; the same content stays published under its other names",
		"changed", stale, "names", next.names(), "cid", c)
	l.tasks.Go(func() {
		l.opMu.Lock()
		defer l.opMu.Unlock()
		l.mu.Lock()
		still := l.index[c] == r
		snap := *r
		l.mu.Unlock()
		if !still {
			return
		}
		if err := storeRecords(l.ctx, l.ds, []*record{&snap}, nil, nil); err != nil {
			l.log.Warn("could not record a withdrawn name in the index", "cid", c, "err", err)
		}
		l.announce(proto.Announcement_PUBLISH, []Entry{snap.entry()})
	})
	return next
}
