package transfer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
	"github.com/p2pshare/p2pshare/internal/names"
)

// link is os.Link; tests replace it to take the cross-file-system path.
var link = os.Link

// syncDir is atomicfile.SyncDir; tests replace it to make it fail.
var syncDir = atomicfile.SyncDir

// maxNameTries bounds the "name (N).ext" search.
const maxNameTries = 10000

// SanitizeName returns a safe base file name for a name taken from a
// catalog: a name that internal/names.Check refuses (empty, ".", "..", a
// path separator, longer than proto.MaxNameLen bytes, invalid UTF-8, a
// control, format, bidi or zero-width character, a line or paragraph
// separator, leading or trailing space) is replaced by the CID string.
func SanitizeName(name string, c cid.Cid) string {
	if names.Check(name) != nil {
		return c.String()
	}
	return name
}

// numbered returns "name (n).ext".
func numbered(name string, n int) string {
	ext := filepath.Ext(name)
	if ext == name { // ".bashrc": no extension
		ext = ""
	}
	return fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(name, ext), n, ext)
}

// place moves the finished file src into place without ever overwriting:
// with exact set, to exactly dst (ErrExists if it exists); otherwise to
// dst, or "dst (1).ext", "dst (2).ext", ... whichever is free first.
// os.Link fails if the target exists, which makes each try atomic. Across
// file systems the file is copied to a temporary file in the target
// directory first. It returns the final path; src is left in place.
//
// A non-empty path means the file is in place, even with an error: the
// error then only says that fsyncing the directory failed (the link may not
// survive a crash), and the caller treats the download as done.
func place(src, dst string, exact bool) (string, error) {
	dir, name := filepath.Dir(dst), filepath.Base(dst)
	tmp := ""
	try := func(target string) error {
		from := src
		if tmp != "" {
			from = tmp
		}
		err := link(from, target)
		if err != nil && tmp == "" && errors.Is(err, syscall.EXDEV) {
			if tmp, err = copyToTemp(src, dir); err != nil {
				tmp = ""
				return err
			}
			err = link(tmp, target)
		}
		return err
	}
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	for n := 0; n < maxNameTries; n++ {
		target := dst
		if n > 0 {
			if exact {
				break
			}
			target = filepath.Join(dir, numbered(name, n))
		}
		err := try(target)
		if err == nil {
			if err := syncDir(dir); err != nil {
				return target, fmt.Errorf("sync %s: %w", dir, err)
			}
			return target, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
		if exact {
			return "", fmt.Errorf("%w: %s", ErrExists, dst)
		}
	}
	return "", fmt.Errorf("%w: %s and %d numbered variants", ErrExists, dst, maxNameTries)
}

// copyToTemp copies src into a new temporary file in dir, fsynced.
func copyToTemp(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".p2pshare-*.tmp")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(out.Name(), 0o644)
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}

// placeAt places the finished file of p at dst, as place does: the data
// file is linked; a file held in memory is written to a temporary file
// first (placeData).
func (p *partial) placeAt(dst string, exact bool) (string, error) {
	if p.inMem {
		return placeData(p.mem, dst, exact)
	}
	return place(filepath.Join(p.dir, dataName), dst, exact)
}

// placeData places a file whose content is b, as place does: b is written
// to a new temporary file in dst's directory (fsynced, mode 0644), which is
// linked under the first free name and removed. Until the link, nothing
// exists under any name place would use.
func placeData(b []byte, dst string, exact bool) (string, error) {
	tmp, err := atomicfile.TempFile(filepath.Dir(dst), ".p2pshare-*.tmp", b, 0o644)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	return place(tmp, dst, exact)
}
