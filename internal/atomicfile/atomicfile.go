// Package atomicfile writes small files so that a crash at any point leaves
// either the old content or the new, never a mix or a torn file: temp file
// in the same directory, fsync, rename (or link), fsync of the directory.
// It is used for keys, the identity and resume state.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Write replaces path with data, created with mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteNew is Write that never replaces an existing file: it fails with an
// error matching fs.ErrExist if path exists, even if another process
// creates it at the same moment.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a successful link, only a second name
	// link, unlike rename, refuses to replace an existing file.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// Filesystems without hard links: rename after a check.
		if _, statErr := os.Lstat(path); statErr == nil {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return SyncDir(filepath.Dir(path))
}

// writeTemp writes data to a new temp file beside path and fsyncs it.
func writeTemp(path string, data []byte, perm os.FileMode) (string, error) {
	return TempFile(filepath.Dir(path), "."+filepath.Base(path)+".tmp*", data, perm)
}

// TempFile writes data to a new file in dir named by pattern (as
// os.CreateTemp), with mode perm, fsynced, and returns its path. The
// caller links or renames it into place and removes it.
func TempFile(dir, pattern string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// SyncDir makes renames and links in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" {
		return err
	}
	return nil
}
