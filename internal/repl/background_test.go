package repl

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/internal/transfer"
)

// get --bg returns at once; how the download ended is reported later,
// and one that did not save its file counts as a failed command.
func TestGetBackgroundReportsTheEnd(t *testing.T) {
	mh, _ := multihash.Sum([]byte("bg"), multihash.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, mh)
	release := make(chan JobEnd)
	var gotOpt transfer.GetOptions
	r := New(Deps{Background: func(target string, id cid.Cid, opt transfer.GetOptions) (string, <-chan JobEnd, error) {
		gotOpt = opt
		ended := make(chan JobEnd, 1)
		go func() { ended <- <-release; close(ended) }()
		return "7", ended, nil
	}})
	var out bytes.Buffer
	w := &syncWriter{w: &out}
	gc := &call{r: r, out: w, name: "get"}
	if err := gc.getBackground("film.mkv", c, transfer.GetOptions{Name: "film.mkv"}); err != nil {
		t.Fatal(err)
	}
	if gotOpt.Name != "film.mkv" {
		t.Fatalf("options not passed on: %+v", gotOpt)
	}
	w.mu.Lock()
	started := out.String()
	w.mu.Unlock()
	if !strings.Contains(started, "job 7: getting") || strings.Contains(started, "saved") {
		t.Fatalf("before the end: %q", started)
	}
	release <- JobEnd{ID: "7", State: "done", Path: "/d/film.mkv", Size: 2048, SHA256: "abcd"}
	r.bg.Wait()
	if s := out.String(); !strings.Contains(s, "job 7: saved /d/film.mkv") || r.bgFailed.Load() != 0 {
		t.Fatalf("after the end: %q (failed %d)", s, r.bgFailed.Load())
	}

	// A failure is reported, escaped, and counted.
	if err := gc.getBackground("x", c, transfer.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	release <- JobEnd{ID: "7", State: "failed", Error: "no provider\x1b[2J"}
	r.bg.Wait()
	if s := out.String(); !strings.Contains(s, "job 7: failed: no provider") || strings.Contains(s, "\x1b") || r.bgFailed.Load() != 1 {
		t.Fatalf("failure: %q (failed %d)", s, r.bgFailed.Load())
	}

	// Without the local API, --bg says why.
	if err := (&call{r: New(Deps{}), out: w}).getBackground("x", c, transfer.GetOptions{}); err == nil || !strings.Contains(err.Error(), "local API") {
		t.Fatalf("no API: %v", err)
	}
}
