//go:build !linux

package main

import "errors"

// cmdHostile reads the victim's memory and CPU from /proc and resets its
// peak RSS through clear_refs: Linux only.
func cmdHostile([]string) error {
	return errors.New("hostile: needs Linux (/proc/PID/status, clear_refs and stat of the victim)")
}
