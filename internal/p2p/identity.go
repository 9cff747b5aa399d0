package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
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
	switch err := atomicfile.WriteNew(path, raw, identityFileMode); {
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
