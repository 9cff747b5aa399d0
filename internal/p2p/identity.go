package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// identityFileMode is the only mode the identity key is ever written with.
const identityFileMode = 0o600

// LoadOrCreateIdentity returns the private key stored at path, creating an
// Ed25519 key there if the file does not exist yet.
//
// A new key is written atomically: to a temporary file in the same
// directory (mode 0600), fsynced, then linked into place, so a crash never
// leaves a half-written key and two processes racing on a fresh data
// directory end up with the same identity. An existing key file whose mode
// lets group or others read it is tightened to 0600.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	key, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}

	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity %s: generate key: %w", path, err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity %s: marshal key: %w", path, err)
	}
	switch err := writeFileExclusive(path, raw, identityFileMode); {
	case err == nil:
		return key, nil
	case errors.Is(err, fs.ErrExist):
		// Someone else created it between our load and our link: theirs wins.
		return loadIdentity(path)
	default:
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err // keeps fs.ErrNotExist visible to the caller
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, identityFileMode); err != nil {
			return nil, fmt.Errorf("identity %s: tighten mode: %w", path, err)
		}
	}
	return key, nil
}

// writeFileExclusive writes data to path atomically and fails with
// fs.ErrExist if path already exists.
func writeFileExclusive(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful link the name is just a second link

	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// link, unlike rename, refuses to replace an existing file.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// Filesystems without hard links: fall back to rename after a check.
		if _, statErr := os.Lstat(path); statErr == nil {
			return fs.ErrExist
		}
		if err := os.Rename(tmpName, path); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
