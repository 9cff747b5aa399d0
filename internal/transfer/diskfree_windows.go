//go:build windows

package transfer

import "golang.org/x/sys/windows"

// diskFree is the space available to this user on the volume holding
// path; ok is false where the system cannot tell.
func diskFree(path string) (free uint64, ok bool, err error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, false, err
	}
	var avail, total, totalFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &totalFree); err != nil {
		return 0, false, err
	}
	return avail, true, nil
}
