package transfer

import (
	"io/fs"
	"os"
)

// renameChecked renames old to new after checking that new does not exist.
func renameChecked(old, new string) error {
	if _, err := os.Lstat(new); err == nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: fs.ErrExist}
	}
	return os.Rename(old, new)
}
