package share

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// CheckName reports whether name is acceptable as a shared file name: a
// base name only (no path separators, not "", "." or "..", not absolute),
// valid UTF-8 without control characters (names from other peers end up on
// a terminal and, for downloads, on disk), at most proto.MaxNameLen bytes.
// Errors wrap ErrBadName.
func CheckName(name string) error {
	why := ""
	switch {
	case name == "":
		why = "empty"
	case name == "." || name == "..":
		why = "not a file name"
	case len(name) > proto.MaxNameLen:
		why = fmt.Sprintf("longer than %d bytes", proto.MaxNameLen)
	case filepath.IsAbs(name) || strings.HasPrefix(name, "/"):
		why = "absolute path"
	case strings.ContainsAny(name, `/\`):
		why = "contains a path separator"
	case strings.ContainsRune(name, 0):
		why = "contains NUL"
	case !utf8.ValidString(name):
		why = "not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		why = "contains a control character"
	case filepath.Base(name) != name || filepath.VolumeName(name) != "":
		why = "not a base name"
	}
	if why != "" {
		return fmt.Errorf("%w %q: %s", ErrBadName, name, why)
	}
	return nil
}

// openShared opens name inside dir for reading. Symlinks are followed only
// while they stay inside dir (os.Root refuses any escape, including through
// "..", absolute targets and races with a concurrent rename), and only
// regular files are accepted.
func openShared(dir, name string) (*os.File, fs.FileInfo, error) {
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open share folder %s: %w", dir, err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%q: %w in share folder %s", name, ErrNotFound, dir)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
			return nil, nil, fmt.Errorf("%w %q: symlink leads outside the share folder", ErrBadName, name)
		}
		return nil, nil, fmt.Errorf("open %q in share folder: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		what := "not a regular file"
		if fi.IsDir() {
			what = "a directory"
		}
		return nil, nil, fmt.Errorf("%w %q: %s", ErrBadName, name, what)
	}
	return f, fi, nil
}

// statShared is openShared without keeping the file open.
func statShared(dir, name string) (fs.FileInfo, error) {
	f, fi, err := openShared(dir, name)
	if err != nil {
		return nil, err
	}
	f.Close()
	return fi, nil
}
