// Package collection defines a published folder: a document that lists
// every file (by relative path, size, executable bit and content ID) and
// every empty folder under it. The document is addressed like a file's
// manifest, CIDv1(raw, sha2-256(document bytes)), and travels the same way
// (the fetch protocol's MANIFEST request), so a collection CID fits
// wherever a file CID does (tickets, the DHT, the catalogue); the first
// bytes tell the two apart (Is).
//
// The encoding is canonical (entries sorted, protobuf deterministic, no
// unknown fields), so one folder has one CID whoever publishes it. Parse
// checks everything a fetcher relies on before a path reaches the disk:
// every component passes internal/names, no "..", no absolute path, no
// duplicate, no two paths that differ only in case, no file that is also a
// folder, and bounded depth, count and size. The package does no I/O.
package collection

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/names"
)

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative collection.proto"

// Layout: magic "p2pc", version (1), three zero bytes, then the Document
// message (deterministic protobuf).
const (
	Version   = 1
	headerLen = 8
	// MaxSize bounds a document, checked before it is parsed (and by a
	// fetcher before it reads one). A folder of 250,000 files with short
	// paths takes about 14 MiB.
	MaxSize = 24 << 20
	// MaxEntries bounds the number of files and empty folders. A fetcher
	// decodes the whole document (about 575 bytes of heap an entry, the
	// paths besides), and any provider of a CID it asks for can make it
	// take the largest document allowed: 250,000 entries keep that near
	// 160 MiB, where 2^20 cost 600 MiB.
	MaxEntries = 250_000
	// MaxDepth bounds the number of components of a path.
	MaxDepth = 64
	// MaxPathLen bounds a path in bytes.
	MaxPathLen = 4096
)

var magic = [4]byte{'p', '2', 'p', 'c'}

// ErrMalformed is wrapped by every error of Parse about the document itself.
var ErrMalformed = errors.New("collection: malformed")

// Entry is one file or empty folder of a collection.
type Entry struct {
	Path       string // relative, "/"-separated
	Size       int64
	CID        cid.Cid // undefined for a folder
	Executable bool
	Dir        bool // an empty folder
}

// Collection is a published folder.
type Collection struct {
	Name    string
	Entries []Entry // sorted by Path
}

// Is reports whether b starts like a collection document (rather than a
// file's manifest). It says nothing about the rest.
func Is(b []byte) bool { return len(b) >= len(magic) && bytes.Equal(b[:len(magic)], magic[:]) }

// Files is the number of files (not folders) in c.
func (c *Collection) Files() int {
	n := 0
	for _, e := range c.Entries {
		if !e.Dir {
			n++
		}
	}
	return n
}

// TotalSize is the sum of the sizes of c's files.
func (c *Collection) TotalSize() int64 {
	var n int64
	for _, e := range c.Entries {
		n += e.Size
	}
	return n
}

// Marshal returns c's canonical document, after checking it as Parse
// would: entries are sorted by path first.
func (c *Collection) Marshal() ([]byte, error) {
	doc := &Document{Name: c.Name, Entries: make([]*DocEntry, 0, len(c.Entries))}
	es := slices.Clone(c.Entries)
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	for _, e := range es {
		pe := &DocEntry{Path: e.Path, Size: uint64(e.Size), Executable: e.Executable, Dir: e.Dir}
		if e.CID.Defined() {
			pe.Cid = e.CID.Bytes()
		}
		doc.Entries = append(doc.Entries, pe)
	}
	body, err := gproto.MarshalOptions{Deterministic: true}.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("collection: encode: %w", err)
	}
	b := make([]byte, headerLen, headerLen+len(body))
	copy(b, magic[:])
	b[4] = Version
	b = append(b, body...)
	if _, err := Parse(b); err != nil {
		return nil, err
	}
	return b, nil
}

// CID is the content ID of c's document.
func (c *Collection) CID() (cid.Cid, error) {
	b, err := c.Marshal()
	if err != nil {
		return cid.Undef, err
	}
	return manifest.CIDOf(b), nil
}

// Verify checks document bytes b against content ID id and parses them.
func Verify(id cid.Cid, b []byte) (*Collection, error) {
	if err := manifest.CheckCID(id); err != nil {
		return nil, err
	}
	if !manifest.CIDOf(b).Equals(id) {
		return nil, manifest.ErrCIDMismatch
	}
	return Parse(b)
}

// Parse decodes a document and checks every rule in the package comment.
func Parse(b []byte) (*Collection, error) {
	if len(b) < headerLen || len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if !Is(b) {
		return nil, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if b[4] != Version || b[5]|b[6]|b[7] != 0 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[4])
	}
	body := b[headerLen:]
	var doc Document
	if err := (gproto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(doc.ProtoReflect().GetUnknown()) != 0 {
		return nil, fmt.Errorf("%w: unknown fields", ErrMalformed)
	}
	if len(doc.Entries) > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, at most %d", ErrMalformed, len(doc.Entries), MaxEntries)
	}
	if err := names.Check(doc.Name); err != nil {
		return nil, fmt.Errorf("%w: folder name: %v", ErrMalformed, err)
	}
	c := &Collection{Name: doc.Name, Entries: make([]Entry, 0, len(doc.Entries))}
	v := newValidator(len(doc.Entries))
	for i, pe := range doc.Entries {
		if len(pe.ProtoReflect().GetUnknown()) != 0 {
			return nil, fmt.Errorf("%w: entry %d: unknown fields", ErrMalformed, i)
		}
		if i > 0 && pe.Path <= doc.Entries[i-1].Path {
			return nil, fmt.Errorf("%w: entries not sorted or duplicated at %q", ErrMalformed, pe.Path)
		}
		e, err := entryOf(pe)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if err := v.add(e); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		c.Entries = append(c.Entries, e)
	}
	if err := v.finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Canonical: the bytes are exactly what Marshal would write, so one
	// folder cannot have two CIDs.
	again, err := gproto.MarshalOptions{Deterministic: true}.Marshal(&doc)
	if err != nil || !bytes.Equal(again, body) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return c, nil
}

func entryOf(pe *DocEntry) (Entry, error) {
	e := Entry{Path: pe.Path, Size: int64(pe.Size), Executable: pe.Executable, Dir: pe.Dir}
	if err := CheckPath(pe.Path); err != nil {
		return e, err
	}
	if pe.Dir {
		if pe.Size != 0 || len(pe.Cid) != 0 || pe.Executable {
			return e, fmt.Errorf("folder %q has a size, content ID or mode", pe.Path)
		}
		return e, nil
	}
	if pe.Size > uint64(manifest.MaxChunks)*uint64(manifest.MaxChunkSize) {
		return e, fmt.Errorf("file %q: size %d too large", pe.Path, pe.Size)
	}
	id, err := cid.Cast(pe.Cid)
	if err != nil {
		return e, fmt.Errorf("file %q: content ID: %v", pe.Path, err)
	}
	if err := manifest.CheckCID(id); err != nil {
		return e, fmt.Errorf("file %q: %v", pe.Path, err)
	}
	e.CID = id
	return e, nil
}

// CheckPath reports whether p is acceptable as a path inside a
// collection: relative, "/"-separated, at most MaxDepth components and
// MaxPathLen bytes, every component a valid name (internal/names: so no
// "", ".", "..", backslash, control or invisible character, or name that
// Windows reserves).
func CheckPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("path longer than %d bytes", MaxPathLen)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("absolute path %q", p)
	}
	parts := strings.Split(p, "/")
	if len(parts) > MaxDepth {
		return fmt.Errorf("path %q deeper than %d", p, MaxDepth)
	}
	for _, part := range parts {
		if err := names.Check(part); err != nil {
			return fmt.Errorf("path %q: %w", p, err)
		}
	}
	return nil
}

// validator checks the rules that span entries: no file is also a folder
// (a prefix of another path), no empty folder has contents, no two paths
// (or their parent folders) differ only in case.
type validator struct {
	files  map[string]bool   // file paths
	dirs   map[string]bool   // folders implied by a path
	empty  []string          // empty-folder entries
	folded map[string]string // lower case → the spelling seen
}

func newValidator(n int) *validator {
	return &validator{files: make(map[string]bool, n), dirs: make(map[string]bool), folded: make(map[string]string, n)}
}

func (v *validator) fold(p string) error {
	k := strings.ToLower(p)
	if seen, ok := v.folded[k]; ok && seen != p {
		return fmt.Errorf("%q and %q differ only in case", seen, p)
	}
	v.folded[k] = p
	return nil
}

func (v *validator) add(e Entry) error {
	if v.dirs[e.Path] && !e.Dir {
		return fmt.Errorf("%q is both a file and a folder", e.Path)
	}
	if err := v.fold(e.Path); err != nil {
		return err
	}
	for i := strings.LastIndexByte(e.Path, '/'); i > 0; i = strings.LastIndexByte(e.Path[:i], '/') {
		parent := e.Path[:i]
		if v.files[parent] {
			return fmt.Errorf("%q is both a file and a folder", parent)
		}
		if v.dirs[parent] {
			break // its own parents were added with it
		}
		if err := v.fold(parent); err != nil {
			return err
		}
		v.dirs[parent] = true
	}
	if e.Dir {
		v.empty = append(v.empty, e.Path)
	} else {
		v.files[e.Path] = true
	}
	return nil
}

func (v *validator) finish() error {
	for _, d := range v.empty {
		if v.dirs[d] {
			return fmt.Errorf("empty folder %q has contents", d)
		}
	}
	return nil
}
