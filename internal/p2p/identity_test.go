package p2p

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLoadOrCreateIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), IdentityFile)

	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Errorf("key type = %v, want Ed25519", k1.Type())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second call returned a different key")
	}

	// A key file others can read is tightened, not rejected.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	k3, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatalf("load 0644: %v", err)
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id3, _ := peer.IDFromPrivateKey(k3)
	if id1 != id3 {
		t.Fatalf("peer ID changed: %s -> %s", id1, id3)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode after load = %v, want 0600", st.Mode().Perm())
	}
}

func TestLoadOrCreateIdentityCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), IdentityFile)
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(path); err == nil {
		t.Fatal("corrupt key file accepted")
	}
	// It must not have been replaced by a fresh key either.
	if b, _ := os.ReadFile(path); string(b) != "not a key" {
		t.Fatal("corrupt key file was overwritten")
	}
}
