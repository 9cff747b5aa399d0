package transfer

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// linkLog records the sources of the links place makes, and checks at
// each link that the download has nothing under .partial.
type linkLog struct {
	mu    sync.Mutex
	from  []string
	extra []string // entries found under .partial at link time
}

func recordLinks(t *testing.T, downloadDir string) *linkLog {
	l := &linkLog{}
	orig := link
	t.Cleanup(func() { link = orig })
	link = func(from, to string) error {
		l.mu.Lock()
		l.from = append(l.from, from)
		ents, _ := os.ReadDir(filepath.Join(downloadDir, partialDirName))
		for _, e := range ents {
			if e.Name() != ".lock" && e.Name() != completedName { // the folder's lock and the completed log, not downloads
				l.extra = append(l.extra, e.Name())
			}
		}
		l.mu.Unlock()
		return orig(from, to)
	}
	return l
}

// checkFast fails unless every link was made from a temporary file in dir
// (the one-chunk path) while nothing was under .partial.
func (l *linkLog) checkFast(t *testing.T, dir string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.from) == 0 {
		t.Fatal("no link made")
	}
	for _, f := range l.from {
		if filepath.Dir(f) != dir || !strings.HasPrefix(filepath.Base(f), ".p2pshare-") {
			t.Errorf("linked from %s, want a temporary file in %s (one-chunk path)", f, dir)
		}
	}
	if len(l.extra) > 0 {
		t.Errorf("partial downloads on disk during a one-chunk get: %v", l.extra)
	}
}

// checkClean fails if dir holds anything but the .partial folder (empty
// but for its lock and the completed log) and the files named in keep.
func checkClean(t *testing.T, dir string, keep ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == partialDirName || slices.Contains(keep, e.Name()) {
			continue
		}
		t.Errorf("left in %s: %s", dir, e.Name())
	}
	ents, _ = os.ReadDir(filepath.Join(dir, partialDirName))
	ents = slices.DeleteFunc(ents, func(e os.DirEntry) bool { return e.Name() == ".lock" || e.Name() == completedName })
	if len(ents) > 0 {
		t.Errorf("left under .partial: %v", ents)
	}
}

func TestFastPathSizes(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	dl := cli.svc.cfg.DownloadDir
	for i, size := range []int64{0, 1, 4096, testChunk} {
		name := []string{"empty", "one byte", "4 KiB", "exactly one chunk"}[i]
		t.Run(name, func(t *testing.T) {
			links := recordLinks(t, dl)
			data := pattern(size, uint64(100+i))
			c := srv.publish(t, name, data, testChunk)
			var last Progress
			calls := 0
			res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: name + ".bin", Progress: func(p Progress) {
				last = p
				calls++
			}})
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dl, name+".bin"); res.Path != want {
				t.Errorf("saved as %s, want %s", res.Path, want)
			}
			checkFile(t, res.Path, data)
			if fi, err := os.Stat(res.Path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode of the saved file: %v, %v; want 0644", fi.Mode(), err)
			}
			wantFetched := 1
			if size == 0 {
				wantFetched = 0
			}
			if res.Size != size || res.SHA256 != sha256.Sum256(data) || !res.CID.Equals(c) ||
				res.Fetched != wantFetched || res.Resumed != 0 || res.Duration <= 0 {
				t.Errorf("result %+v: want size %d, %d chunk fetched", res, size, wantFetched)
			}
			if !slices.Equal(res.Providers, []peer.ID{srv.h.ID()}) || len(res.Bad) != 0 {
				t.Errorf("providers %v, bad %v", res.Providers, res.Bad)
			}
			if calls == 0 || last.Total != size || last.Done != size || !last.CID.Equals(c) {
				t.Errorf("last progress %+v after %d calls, want %d of %d bytes", last, calls, size, size)
			}
			links.checkFast(t, dl)
			if tr := cli.svc.Transfers(); len(tr) != 0 {
				t.Errorf("Transfers() = %+v after the get", tr)
			}
		})
	}
	var keep []string
	for _, n := range []string{"empty", "one byte", "4 KiB", "exactly one chunk"} {
		keep = append(keep, n+".bin")
	}
	checkClean(t, dl, keep...)
}

// The one-chunk path is only taken when the manifest has at most one
// chunk: one chunk plus one byte goes through .partial.
func TestFastPathNotForTwoChunks(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(testChunk+1, 110)
	c := srv.publish(t, "two", data, testChunk)
	links := recordLinks(t, cli.svc.cfg.DownloadDir)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "two.bin"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if want := filepath.Join(partialDir(cli.svc.cfg.DownloadDir, c), dataName); !slices.Equal(links.from, []string{want}) {
		t.Errorf("linked from %v, want the partial data file %s", links.from, want)
	}
}

// blockChunks makes n's server stop before it sends any chunk (after the
// manifest) until the returned release is called; reached is closed when
// the first chunk read is blocked.
func blockChunks(t *testing.T, n *node) (reached <-chan struct{}, release func()) {
	r := make(chan struct{})
	gate := make(chan struct{})
	var once, ronce sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	n.svc.corrupt = func(int, []byte) {
		ronce.Do(func() { close(r) })
		<-gate
	}
	t.Cleanup(release)
	return r, release
}

func TestFastPathCancel(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(4096, 120)
	c := srv.publish(t, "c.bin", data, testChunk)
	reached, _ := blockChunks(t, srv)
	done := make(chan error, 1)
	go func() {
		_, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "c.bin"})
		done <- err
	}()
	<-reached
	// The manifest is in: the download is listed as running with its size,
	// and nothing is on disk for it.
	if tr := cli.svc.Transfers(); len(tr) != 1 || tr[0].State != StateRunning || tr[0].Total != 4096 ||
		tr[0].Name != "c.bin" || !slices.Equal(tr[0].Providers, []peer.ID{srv.h.ID()}) {
		t.Fatalf("Transfers() = %+v, want c.bin running, 4096 bytes, from the server", tr)
	}
	checkClean(t, cli.svc.cfg.DownloadDir)
	if err := cli.svc.Cancel(c); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrCanceled) {
		t.Fatalf("cancelled Get returned %v, want ErrCanceled", err)
	}
	checkClean(t, cli.svc.cfg.DownloadDir)
	if err := cli.svc.Cancel(c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Cancel of nothing: %v, want ErrNotFound", err)
	}
}

// A one-chunk download interrupted by its ctx is kept as a paused partial
// download, like any other, and a later Get resumes it.
func TestFastPathPaused(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(4096, 121)
	c := srv.publish(t, "p.bin", data, testChunk)
	reached, release := blockChunks(t, srv)
	ctx, cancel := context.WithCancel(ctxT(t, time.Minute))
	done := make(chan error, 1)
	go func() {
		_, err := cli.svc.Get(ctx, c, GetOptions{Name: "p.bin"})
		done <- err
	}()
	<-reached
	cancel()
	if err := <-done; !errors.Is(err, ErrPaused) {
		t.Fatalf("Get: %v, want ErrPaused", err)
	}
	if _, err := os.Stat(filepath.Join(cli.svc.cfg.DownloadDir, "p.bin")); !os.IsNotExist(err) {
		t.Fatalf("interrupted download left a file under its final name: %v", err)
	}
	if tr := cli.svc.Transfers(); len(tr) != 1 || tr[0].State != StatePaused || tr[0].Total != 4096 || tr[0].Name != "p.bin" {
		t.Fatalf("Transfers() = %+v, want p.bin paused", tr)
	}
	release()
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Path != filepath.Join(cli.svc.cfg.DownloadDir, "p.bin") || res.Fetched != 1 {
		t.Errorf("resumed get: %+v", res)
	}
	checkClean(t, cli.svc.cfg.DownloadDir, "p.bin")
}

func TestFastPathFailover(t *testing.T) {
	for _, mode := range []string{"provider dies", "provider lies"} {
		t.Run(mode, func(t *testing.T) {
			data := pattern(4096, 130)
			a, b := newNode(t), newNode(t)
			c := a.publish(t, "f.bin", data, testChunk)
			b.publish(t, "f.bin", data, testChunk)
			hit := make(chan struct{})
			var once sync.Once
			if mode == "provider dies" {
				a.svc.corrupt = func(int, []byte) {
					once.Do(func() {
						go func() {
							a.h.Close()
							close(hit)
						}()
					})
					<-hit
				}
			} else {
				a.svc.corrupt = func(_ int, p []byte) {
					p[len(p)/2] ^= 1
					once.Do(func() { close(hit) })
				}
			}
			// One provider at a time, a first: it surely gets the chunk
			// request, and b only after a failed.
			cli := newNode(t, func(c *Config) { c.MaxProviders = 1 })
			cli.fnd.set(addrInfo(a.h), addrInfo(b.h))
			links := recordLinks(t, cli.svc.cfg.DownloadDir)
			res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "f.bin"})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-hit:
			default:
				t.Fatal("the first provider was never asked for the chunk")
			}
			checkFile(t, res.Path, data)
			if !slices.Contains(res.Providers, b.h.ID()) || res.Fetched != 1 {
				t.Errorf("result %+v: want the chunk from the second provider", res)
			}
			if mode == "provider lies" && !slices.Equal(res.Bad, []peer.ID{a.h.ID()}) {
				t.Errorf("bad providers %v, want [%s]", res.Bad, a.h.ID())
			}
			links.checkFast(t, cli.svc.cfg.DownloadDir)
			checkClean(t, cli.svc.cfg.DownloadDir, "f.bin")
		})
	}
}

func TestFastPathNoClobber(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(4096, 140)
	c := srv.publish(t, "x.bin", data, testChunk)
	dl := cli.svc.cfg.DownloadDir
	links := recordLinks(t, dl)
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
	links.checkFast(t, dl)
	checkClean(t, dl, "x.bin", "x (1).bin", "x (2).bin")

	// An explicit output that exists is refused up front...
	if _, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: filepath.Join(dl, "x.bin")}); !errors.Is(err, ErrExists) {
		t.Fatalf("Get to an existing output: %v, want ErrExists", err)
	}
	checkFile(t, filepath.Join(dl, "x.bin"), mine)

	// ... and one that appears during the download is not overwritten
	// either: ErrExists, and the verified file is kept as a complete
	// partial download, so a Get with another output finishes at once.
	reached, release := blockChunks(t, srv)
	out := filepath.Join(t.TempDir(), "late.bin")
	done := make(chan error, 1)
	go func() {
		_, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: out})
		done <- err
	}()
	<-reached
	if err := os.WriteFile(out, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-done; !errors.Is(err, ErrExists) {
		t.Fatalf("Get to an output created meanwhile: %v, want ErrExists", err)
	}
	checkFile(t, out, mine)
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("output directory holds %v, want only late.bin", ents)
	}
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Output: out + ".2"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Fetched != 0 || res.Resumed != 1 {
		t.Errorf("after ErrExists: fetched %d, resumed %d; want 0 and 1", res.Fetched, res.Resumed)
	}
	checkClean(t, dl, "x.bin", "x (1).bin", "x (2).bin")
}

// A partial download already on disk for a one-chunk file (left by an
// older version) is resumed through .partial, not replaced.
func TestFastPathExistingPartial(t *testing.T) {
	srv := newNode(t)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	data := pattern(4096, 150)
	c := srv.publish(t, "o.bin", data, testChunk)
	m, f, err := srv.src.Open(c, cli.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	dir := partialDir(cli.svc.cfg.DownloadDir, c)
	p, err := createPartial(dir, c, m, m.Marshal(), "old name.bin")
	if err != nil {
		t.Fatal(err)
	}
	p.close()
	links := recordLinks(t, cli.svc.cfg.DownloadDir)
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Path != filepath.Join(cli.svc.cfg.DownloadDir, "old name.bin") {
		t.Errorf("saved as %s, want the partial's name", res.Path)
	}
	if want := filepath.Join(dir, dataName); !slices.Equal(links.from, []string{want}) {
		t.Errorf("linked from %v, want the partial data file %s", links.from, want)
	}
	checkClean(t, cli.svc.cfg.DownloadDir, "old name.bin")
}
