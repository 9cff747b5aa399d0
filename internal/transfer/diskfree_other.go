//go:build !linux && !darwin && !windows

package transfer

// diskFree cannot tell the free space on this system: the check is
// skipped (a full disk still fails the download with the write error).
func diskFree(string) (free uint64, ok bool, err error) { return 0, false, nil }
