package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCache tells the kernel that the synced pages of f will not be read
// again soon, so a large download does not push everything else out of the
// page cache (and the kernel does not have to reclaim memory while we
// write). Advice only: errors are ignored.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
