//go:build !linux

package transfer

// renameNoReplace renames old to new unless new exists (checked first:
// not atomic against another process creating new meanwhile).
func renameNoReplace(old, new string) error { return renameChecked(old, new) }

// syncTree is a no-op here: without syncfs(2), the marks of a collection
// download rely on the system writing the staging files back before a
// crash of the machine (a crash of the process loses nothing).
func syncTree(dir string) error { return nil }
