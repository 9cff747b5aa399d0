package transfer

import (
	"errors"
	"path/filepath"
	"testing"
)

// Two services cannot share a downloads folder (they would assemble the
// same partial files); the folder is free again after Close.
func TestDownloadDirIsLocked(t *testing.T) {
	a := newNode(t)
	dir := filepath.Join(a.dir, "downloads")
	cfg := a.svc.cfg
	if _, err := New(cfg); !errors.Is(err, errLocked) {
		t.Fatalf("second service on %s: %v, want errLocked", dir, err)
	}
	if err := a.svc.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b.Close()
}
