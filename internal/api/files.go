package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
)

// The files in <data> through which a client finds the running node.
const (
	// TokenFile holds the API token (hex), mode 0600, made on first start
	// and kept across restarts.
	TokenFile = "api.token"
	// AddrFile holds the API's address (host:port) while the node runs;
	// the node removes it when it stops.
	AddrFile = "api.addr"
)

// tokenBytes is the token's strength: 256 random bits.
const tokenBytes = 32

// LoadOrCreateToken returns the token in <dataDir>/api.token, creating it
// (mode 0600) on first start. A token file readable by others is refused:
// whoever can read it controls the node.
func LoadOrCreateToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	tok, err := readToken(path)
	if errors.Is(err, fs.ErrNotExist) {
		b := make([]byte, tokenBytes)
		rand.Read(b)
		err = atomicfile.WriteNew(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create API token %s: %w", path, err)
		}
		// Made now, or by a process that raced us: read what is there.
		tok, err = readToken(path)
	}
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && !isWindows() {
		return "", fmt.Errorf("API token %s is readable by other users (mode %v): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return tok, nil
}

// ReadToken reads the token of a data folder, for a client.
func ReadToken(dataDir string) (string, error) {
	return readToken(filepath.Join(dataDir, TokenFile))
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) != 2*tokenBytes {
		return "", fmt.Errorf("API token %s is malformed (delete it; the node makes a new one at its next start)", path)
	}
	if _, err := hex.DecodeString(tok); err != nil {
		return "", fmt.Errorf("API token %s is malformed (delete it; the node makes a new one at its next start)", path)
	}
	return tok, nil
}

// ReadAddr reads the address the node of a data folder serves its API on.
// An error matching fs.ErrNotExist means no node runs there (or it runs
// with --api off).
func ReadAddr(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, AddrFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeAddr(dataDir, addr string) error {
	return atomicfile.Write(filepath.Join(dataDir, AddrFile), []byte(addr+"\n"), 0o600)
}

// removeAddr removes the address file if it still holds addr (a node
// started since on the same folder, after this one lost its lock, would
// have written its own).
func removeAddr(dataDir, addr string) {
	path := filepath.Join(dataDir, AddrFile)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == addr {
		os.Remove(path)
	}
}
