package repl

import (
	"bytes"
	"strings"
	"testing"

	"github.com/p2pshare/p2pshare/internal/share"
)

func TestEntryNameMarksFolders(t *testing.T) {
	for _, tt := range []struct {
		name   string
		folder bool
		files  int
		want   string
	}{
		{"a.txt", false, 0, "a.txt"},
		{"photos", true, 1234, "photos/ (1,234 files)"},
		{"one", true, 1, "one/ (1 file)"},
		{"big", true, 1234567, "big/ (1,234,567 files)"},
		{"none", true, 0, "none/ (0 files)"},
	} {
		if got := entryName(tt.name, tt.folder, tt.files); got != tt.want {
			t.Errorf("entryName(%q, %v, %d) = %q, want %q", tt.name, tt.folder, tt.files, got, tt.want)
		}
	}
	if got := groupDigits(-1234); got != "-1,234" {
		t.Errorf("groupDigits(-1234) = %q", got)
	}
}

// Publishing a folder again says what changed, naming a few paths and
// counting the rest, with names escaped for the terminal.
func TestPrintFolderResult(t *testing.T) {
	var out bytes.Buffer
	c := &call{out: &out}
	c.printFolderResult(&share.FolderResult{
		Files:   3,
		Skipped: []share.Skipped{{Path: "d/link", Why: "symlink (not followed)"}, {Path: "d/bad\x1b[2Jname", Why: "contains a control character"}},
		Changes: &share.FolderChanges{
			Added:    []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7"},
			Removed:  []string{"gone"},
			Modified: nil,
		},
	})
	got := out.String()
	for _, want := range []string{
		"left out 2: d/link (symlink (not followed)), d/bad\\u001b[2Jname",
		"7 added (a1, a2, a3, a4, a5, … 2 more), 1 removed (gone); that version is withdrawn",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "modified") || strings.Contains(got, "\x1b") {
		t.Errorf("output %q", got)
	}
}

// available lists each name of a content published under several as a
// row of its own, sorted among the others.
func TestRemotesByName(t *testing.T) {
	list := []shareRemote{
		{Entry: share.Entry{Name: "b.txt", Aliases: []string{"z.txt", "a.txt"}}},
		{Entry: share.Entry{Name: "m.txt"}},
	}
	var got []string
	for _, r := range remotesByName(list) {
		got = append(got, r.Name+" "+strings.Join(r.Aliases, ","))
	}
	want := []string{"a.txt b.txt,z.txt", "b.txt z.txt,a.txt", "m.txt ", "z.txt b.txt,a.txt"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("rows %q, want %q", got, want)
	}
}
