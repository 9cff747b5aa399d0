package transfer

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

const testChunk = 64 << 10

func TestGetSingleSource(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	cases := []struct {
		name      string
		size      int64
		chunkSize int
	}{
		{"empty", 0, testChunk},
		{"one byte", 1, testChunk},
		{"one chunk", testChunk, testChunk},
		{"one chunk plus one", testChunk + 1, testChunk},
		{"several chunks", 7*testChunk + 123, testChunk},
		{"default chunk size", 3*manifest.DefaultChunkSize + 7, manifest.DefaultChunkSize},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := pattern(tc.size, uint64(i))
			c := srv.publish(t, tc.name, data, tc.chunkSize)
			res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: tc.name + ".bin"})
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(cli.dir, "downloads", tc.name+".bin"); res.Path != want {
				t.Errorf("saved as %s, want %s", res.Path, want)
			}
			checkFile(t, res.Path, data)
			n := manifest.NumChunks(tc.size, tc.chunkSize)
			if res.Size != tc.size || res.SHA256 != sha256.Sum256(data) || !res.CID.Equals(c) || res.Fetched != n || res.Resumed != 0 {
				t.Errorf("result %+v: want size %d, %d chunks fetched", res, tc.size, n)
			}
			if len(res.Providers) != 1 || res.Providers[0] != srv.h.ID() || len(res.Bad) != 0 {
				t.Errorf("providers %v, bad %v", res.Providers, res.Bad)
			}
			if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !os.IsNotExist(err) {
				t.Errorf("partial download left behind: %v", err)
			}
		})
	}
}

func TestGetNoClobber(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(3*testChunk+5, 1)
	c := srv.publish(t, "x.bin", data, testChunk)
	dl := filepath.Join(cli.dir, "downloads")
	mine := []byte("my own x.bin")
	if err := os.WriteFile(filepath.Join(dl, "x.bin"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"x (1).bin", "x (2).bin"} {
		res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "x.bin", Again: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Path != filepath.Join(dl, want) {
			t.Errorf("saved as %s, want %s", res.Path, want)
		}
		checkFile(t, res.Path, data)
	}
	checkFile(t, filepath.Join(dl, "x.bin"), mine)
}

func TestGetOutputExists(t *testing.T) {
	srv := newNode(t)
	var served servedLog
	srv.svc.onServe = served.hook(nil)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(2*testChunk, 2)
	c := srv.publish(t, "y.bin", data, testChunk)
	out := filepath.Join(t.TempDir(), "out.bin")
	mine := []byte("do not touch")
	if err := os.WriteFile(out, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: out})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("Get to an existing output: %v, want ErrExists", err)
	}
	checkFile(t, out, mine)
	if served.count() != 0 {
		t.Errorf("%d chunks were fetched for a download that could not be saved", served.count())
	}
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !os.IsNotExist(err) {
		t.Errorf("partial download created: %v", err)
	}

	// A free explicit output works and is exactly that path.
	out2 := filepath.Join(filepath.Dir(out), "new.bin")
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: out2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != out2 {
		t.Errorf("saved as %s, want %s", res.Path, out2)
	}
	checkFile(t, out2, data)
}

func TestGet2048BitKey(t *testing.T) {
	key := key2048()
	srv := newNode(t, func(c *Config) { c.BBSKey = key; c.MinModulusBits = 0 })
	cli := newNode(t, func(c *Config) { c.MinModulusBits = 0 })
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(5*testChunk+3, 3)
	c := srv.publish(t, "k.bin", data, testChunk)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "k.bin"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)

	// A client that insists on 2048 bits refuses the 1024-bit test key.
	small := newNode(t)
	small.publish(t, "k.bin", data, testChunk)
	strict := newNode(t, func(c *Config) { c.MinModulusBits = 0 })
	strict.fnd.set(addrInfo(small.h))
	if _, err := strict.svc.Get(ctxT(t, 2*time.Second), c, GetOptions{}); err == nil {
		t.Fatal("a 1024-bit BBS modulus was accepted by a production client")
	}
}

// Once the finished file is linked into place it is the download, even if
// fsyncing the directory fails: Get succeeds (with a logged warning), the
// partial is removed, and a second Get does not link "name (1)".
func TestGetPlacedButDirSyncFails(t *testing.T) {
	srv := newNode(t)
	data := pattern(3*testChunk+5, 41)
	c := srv.publish(t, "s.bin", data, testChunk)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(dir string) error { return errors.New("injected fsync failure") }

	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "s.bin"})
	if err != nil {
		t.Fatalf("Get after a linked file whose directory fsync failed: %v", err)
	}
	want := filepath.Join(cli.svc.cfg.DownloadDir, "s.bin")
	if res.Path != want {
		t.Fatalf("saved as %s, want %s", res.Path, want)
	}
	checkFile(t, want, data)
	if _, err := os.Stat(partialDir(cli.svc.cfg.DownloadDir, c)); !os.IsNotExist(err) {
		t.Fatalf("partial download kept: %v", err)
	}
	if tr := cli.svc.Transfers(); len(tr) != 0 {
		t.Fatalf("Transfers() = %+v, want none", tr)
	}
}
