package collection

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

func fileCID(s string) cid.Cid { return manifest.CIDOf([]byte(s)) }

func sample() *Collection {
	return &Collection{Name: "photos", Entries: []Entry{
		{Path: "b/ünïcode ✓.txt", Size: 3, CID: fileCID("u")},
		{Path: "a.jpg", Size: 10, CID: fileCID("a")},
		{Path: "empty", Dir: true},
		{Path: "b/c/zero", Size: 0, CID: fileCID("")},
		{Path: "run.sh", Size: 5, CID: fileCID("r"), Executable: true},
	}}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	c := sample()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !Is(b) {
		t.Fatal("Is(document) = false")
	}
	if Is((&manifest.Manifest{ChunkSize: manifest.DefaultChunkSize}).Marshal()) {
		t.Fatal("Is(file manifest) = true")
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != c.Name || len(got.Entries) != len(c.Entries) {
		t.Fatalf("got %+v", got)
	}
	for i := 1; i < len(got.Entries); i++ {
		if got.Entries[i-1].Path >= got.Entries[i].Path {
			t.Fatalf("entries not sorted: %q before %q", got.Entries[i-1].Path, got.Entries[i].Path)
		}
	}
	if got.Files() != 4 || got.TotalSize() != 18 {
		t.Fatalf("Files %d TotalSize %d, want 4 and 18", got.Files(), got.TotalSize())
	}
	again, err := got.Marshal()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-marshal differs (%v)", err)
	}
	id, err := c.CID()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(id, b); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	b2 := bytes.Clone(b)
	b2[len(b2)-1] ^= 1
	if _, err := Verify(id, b2); !errors.Is(err, manifest.ErrCIDMismatch) {
		t.Fatalf("Verify of changed bytes: %v, want ErrCIDMismatch", err)
	}
	// Order of the input does not change the CID.
	c.Entries[0], c.Entries[4] = c.Entries[4], c.Entries[0]
	if id2, _ := c.CID(); !id2.Equals(id) {
		t.Fatal("CID depends on entry order")
	}
}

func TestRefusals(t *testing.T) {
	f := func(p string) Entry { return Entry{Path: p, Size: 1, CID: fileCID(p)} }
	cases := map[string][]Entry{
		"dotdot":            {f("a/../b")},
		"dot":               {f("./a")},
		"absolute":          {f("/etc/passwd")},
		"trailing slash":    {f("a/")},
		"empty component":   {f("a//b")},
		"backslash":         {f(`a\b`)},
		"control":           {f("a/\x1b[2Jb")},
		"windows reserved":  {f("a/CON")},
		"empty path":        {f("")},
		"duplicate":         {f("a"), f("a")},
		"case":              {f("Readme"), f("README")},
		"case of a folder":  {f("Dir/a"), f("dir/b")},
		"file and folder":   {f("a"), f("a/b")},
		"folder and file":   {f("a/b/c"), f("a/b")},
		"non-empty folder":  {{Path: "d", Dir: true}, f("d/x")},
		"folder with cid":   {{Path: "d", Dir: true, CID: fileCID("d")}},
		"file without cid":  {{Path: "x", Size: 1}},
		"too deep":          {f(strings.Repeat("d/", MaxDepth) + "x")},
		"bad cid":           {{Path: "x", Size: 1, CID: cid.NewCidV0(fileCID("x").Hash())}},
		"invisible char":    {f("a\u202eb")},
		"trailing dot name": {f("a./b")},
	}
	for name, es := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := (&Collection{Name: "c", Entries: es}).Marshal()
			if err == nil {
				t.Fatalf("Marshal accepted %+v", es)
			}
		})
	}
	if _, err := (&Collection{Name: "a/b", Entries: []Entry{f("x")}}).Marshal(); err == nil {
		t.Fatal("a folder name with a separator was accepted")
	}
}

// TestParseRefusesNonCanonical: the same content in another encoding
// would be another CID for one folder.
func TestParseRefusesNonCanonical(t *testing.T) {
	b, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"unknown field": append(bytes.Clone(b), 0x18, 0x01), // field 3, varint 1
		"bad version":   append(append([]byte{}, b[:4]...), append([]byte{2}, b[5:]...)...),
		"bad magic":     append([]byte("p2pm"), b[4:]...),
		"truncated":     b[:len(b)-3],
		"short":         b[:5],
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}

func TestManyEntries(t *testing.T) {
	c := &Collection{Name: "many"}
	for i := range 100_000 {
		p := fmt.Sprintf("d%03d/f%06d", i%100, i)
		c.Entries = append(c.Entries, Entry{Path: p, Size: 4096, CID: fileCID(p)})
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil || got.Files() != 100_000 {
		t.Fatalf("Parse: %v, %d files", err, got.Files())
	}
	t.Logf("100,000 files: %d bytes", len(b))
}

func FuzzParse(f *testing.F) {
	b, err := sample().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:headerLen])
	f.Add([]byte("p2pc\x01\x00\x00\x00\x0a\x01x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same bytes, and every path
		// is safe to join under a folder.
		again, err := c.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted document does not round-trip: %v", err)
		}
		for _, e := range c.Entries {
			if err := CheckPath(e.Path); err != nil || strings.Contains(e.Path, "..") && strings.Contains("/"+e.Path+"/", "/../") {
				t.Fatalf("accepted path %q: %v", e.Path, err)
			}
		}
	})
}

// One entry over MaxEntries is refused, before the entries are built.
func TestTooManyEntries(t *testing.T) {
	d := &Document{Name: "big", Entries: make([]*DocEntry, MaxEntries+1)}
	id := fileCID("x").Bytes()
	for i := range d.Entries {
		d.Entries[i] = &DocEntry{Path: fmt.Sprintf("f%07d", i), Size: 1, Cid: id}
	}
	body, err := gproto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte{'p', '2', 'p', 'c', Version, 0, 0, 0}, body...)
	if _, err := Parse(b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "entries") {
		t.Fatalf("Parse of %d entries: %v, want a refusal for the count", MaxEntries+1, err)
	}
}
