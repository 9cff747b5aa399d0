//go:build !linux

package transfer

import "os"

func dropCache(*os.File) {}
