package share

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/names"
)

// CheckName reports whether name is acceptable as a shared file name; it
// is names.Check (the rule internal/transfer applies too): a base name
// only, at most proto.MaxNameLen bytes of valid UTF-8, nothing a terminal
// would interpret or hide (categories Cc, Cf, Zl, Zp: controls, bidi
// overrides, zero-width characters, BOM, line and paragraph separators),
// no leading or trailing space. Names from other peers end up on a
// terminal and, for downloads, on disk. Errors wrap ErrBadName.
func CheckName(name string) error { return names.Check(name) }

// checkSharedPath is CheckName for a name of the share folder, and the
// rule of collection.CheckPath (every component a valid name) for a path
// inside one of its folders.
func checkSharedPath(p string) error {
	if !strings.Contains(p, "/") {
		return CheckName(p)
	}
	if err := collection.CheckPath(p); err != nil {
		return fmt.Errorf("%w: %v", ErrBadName, err)
	}
	return nil
}

// openShared opens name (a name of the share folder, or a path inside
// one of its folders) inside dir for reading. Symlinks are followed only
// while they stay inside dir (os.Root refuses any escape, including through
// "..", absolute targets and races with a concurrent rename), and only
// regular files are accepted.
func openShared(dir, name string) (*os.File, fs.FileInfo, error) {
	if err := checkSharedPath(name); err != nil {
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
