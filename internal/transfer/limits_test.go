package transfer

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

func TestHumanSize(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 64 << 30: "64.0 GiB",
		12*(1<<30) + 300<<20: "12.3 GiB", 32 << 40: "32.0 TiB", 3 << 50: "3.0 PiB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMaxChunksFor(t *testing.T) {
	for _, tc := range []struct {
		size      int64
		chunkSize int
		ok        bool
	}{
		{maxSmallChunks * manifest.MinChunkSize, manifest.MinChunkSize, true},
		{maxSmallChunks*manifest.MinChunkSize + 1, manifest.MinChunkSize, false},
		{manifest.MaxChunks * manifest.MinChunkSize, manifest.MinChunkSize, false}, // the 2^21 x 1 KiB
		{manifest.MaxChunks * manifest.DefaultChunkSize, manifest.DefaultChunkSize, true},
		{1 << 40, manifest.DefaultChunkSize / 2, false}, // 2^21 chunks of 512 KiB
		{1 << 40, manifest.MaxChunkSize, true},
	} {
		n := manifest.NumChunks(tc.size, tc.chunkSize)
		if ok := n <= maxChunksFor(tc.size); ok != tc.ok {
			t.Errorf("%d bytes in %d chunks of %d: accepted %v, want %v", tc.size, n, tc.chunkSize, ok, tc.ok)
		}
	}
}

func TestChangedRuns(t *testing.T) {
	old := make([]byte, 1000)
	next := make([]byte, 1000)
	if r := changedRuns(old, next); len(r) != 0 {
		t.Fatalf("no change: %v", r)
	}
	next[3], next[10], next[500], next[999] = 1, 1, 1, 1
	r := changedRuns(old, next)
	want := [][2]int{{3, 11}, {500, 501}, {999, 1000}}
	if len(r) != len(want) {
		t.Fatalf("runs %v, want %v", r, want)
	}
	for i := range r {
		if r[i] != want[i] {
			t.Fatalf("runs %v, want %v", r, want)
		}
	}
}

func TestCannotServe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&refusedError{status: proto.FetchResponse_NOT_SERVED}, true},
		{&refusedError{status: proto.FetchResponse_CHANGED}, true},
		{&refusedError{status: proto.FetchResponse_BUSY}, false},
		{&refusedError{status: proto.FetchResponse_INTERNAL}, false},
		{&refusedManifestError{ErrNoSpace}, true},
		{errors.New("read response: i/o deadline reached"), false},
		{nil, false},
	} {
		if got := cannotServe(tc.err); got != tc.want {
			t.Errorf("cannotServe(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A paused download resumed on a disk without room for what is missing
// ends with a clear message and keeps what was verified; with room, it
// resumes.
func TestResumeNoSpace(t *testing.T) {
	cli, c, data, dir, marked, _ := pausedDownload(t, 46)
	var asked []string
	freeSpace = func(path string) (uint64, bool, error) {
		asked = append(asked, path)
		return 12345, true, nil
	}
	defer func() { freeSpace = diskFree }()
	_, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "12.1 KiB free on "+cli.svc.cfg.DownloadDir) {
		t.Fatalf("Get on a full disk: %v, want ErrNoSpace saying what is free where", err)
	}
	need := humanSize(uint64(len(data) - len(marked)*testChunk))
	if !strings.Contains(err.Error(), "needs "+need) {
		t.Errorf("the message does not say that %s are needed (what is missing): %v", need, err)
	}
	st, _, err := readState(dir, c)
	if err != nil {
		t.Fatalf("the partial download was not kept: %v", err)
	}
	n := 0
	for _, d := range st.done {
		if d {
			n++
		}
	}
	if n != len(marked) {
		t.Errorf("%d chunks marked after the refusal, want %d", n, len(marked))
	}
	freeSpace = diskFree
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Resumed != len(marked) {
		t.Errorf("resumed %d, want %d", res.Resumed, len(marked))
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("partial download left after the download: %v", err)
	}
}
