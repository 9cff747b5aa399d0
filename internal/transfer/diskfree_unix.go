//go:build linux || darwin

package transfer

import "golang.org/x/sys/unix"

// diskFree is the space available to this (unprivileged) user on the file
// system holding path; ok is false where the system cannot tell.
func diskFree(path string) (free uint64, ok bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}
