package api

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
	"github.com/p2pshare/p2pshare/internal/names"
)

// MaxUpload bounds one upload (POST /api/v1/upload) unless Config says
// otherwise; a larger body gets 413. Bigger files can still be copied
// into the share folder directly.
const MaxUpload = 4 << 30

// handleUpload adds a file to the share folder from the request body
// (raw bytes, any content type), named by ?name=NAME. The body is
// streamed to a hidden temp file and linked into place at the end, so the
// share folder never shows a partial file and an existing file is never
// replaced (409). It is not published: publish it like any other file.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if err := names.Check(name); err != nil {
		s.fail(w, r, withStatus(http.StatusBadRequest, fmt.Errorf("upload: %w", err)))
		return
	}
	if strings.HasPrefix(name, ".") {
		// The share folder's listing leaves hidden files out (temp files
		// are hidden): the upload would vanish.
		s.fail(w, r, withStatus(http.StatusBadRequest, fmt.Errorf("upload: %q is a hidden name (it starts with a dot): the share folder does not list hidden files", name)))
		return
	}
	limit := s.cfg.MaxUpload
	if r.ContentLength > limit {
		s.fail(w, r, withStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("upload: %d bytes is over the limit of %d bytes (copy big files into the share folder instead)", r.ContentLength, limit)))
		return
	}
	dir := s.cfg.Share.ShareDir()
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		s.fail(w, r, withStatus(http.StatusConflict, fmt.Errorf("upload: %s already exists in the share folder: uploads never replace a file (rename it first)", name)))
		return
	}
	f, err := os.CreateTemp(dir, ".upload-*.tmp")
	if err != nil {
		s.fail(w, r, fmt.Errorf("upload: %w", err))
		return
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, only a second name
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = withStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("upload: over the limit of %d bytes (copy big files into the share folder instead)", limit))
		} else {
			err = withStatus(http.StatusBadRequest, fmt.Errorf("upload of %s broke off after %d bytes: %w", name, n, err))
		}
		s.fail(w, r, err)
		return
	}
	if err := linkNew(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = withStatus(http.StatusConflict, fmt.Errorf("upload: %s appeared in the share folder meanwhile: uploads never replace a file", name))
		}
		s.fail(w, r, err)
		return
	}
	s.log.Info("file uploaded", "name", name, "bytes", n)
	writeJSON(w, http.StatusCreated, LocalFile{Name: name, Size: n, Modified: modTime(final)})
}

// linkNew puts tmp at path without ever replacing a file there: a hard
// link fails if path exists; filesystems without links get a checked
// rename.
func linkNew(tmp, path string) error {
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if _, statErr := os.Lstat(path); statErr == nil {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime().UTC()
}
