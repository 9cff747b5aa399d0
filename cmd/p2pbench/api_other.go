//go:build !linux

package main

import "errors"

// cmdAPI reads the daemon's memory and CPU from /proc and resets its peak
// RSS through clear_refs: Linux only.
func cmdAPI([]string) error {
	return errors.New("api: needs Linux (/proc/PID/status, clear_refs and stat of the daemon)")
}
