package transfer

import (
	"errors"
	"os"
	"syscall"
)

const seekData = 3 // SEEK_DATA

// isHole reports whether [off, off+n) of f is known to hold no data (a hole
// of a sparse file, which reads as zeros and never verifies).
func isHole(f *os.File, off, n int64) bool {
	next, err := f.Seek(off, seekData)
	if err != nil {
		return errors.Is(err, syscall.ENXIO) // no data at or after off
	}
	return next >= off+n
}
