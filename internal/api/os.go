package api

import "runtime"

// isWindows: file modes say nothing about who may read a file there
// (ACLs do), so the token's mode is not checked.
func isWindows() bool { return runtime.GOOS == "windows" }
