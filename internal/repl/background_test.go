package repl

import (
	"bytes"
	"context"
	"errors"
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
	failedNow := func() int {
		r.bgMu.Lock()
		defer r.bgMu.Unlock()
		return r.bgFailed
	}
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
	if s := out.String(); !strings.Contains(s, "job 7: saved /d/film.mkv") || failedNow() != 0 {
		t.Fatalf("after the end: %q (failed %d)", s, failedNow())
	}

	// A failure is reported, escaped, and counted.
	if err := gc.getBackground("x", c, transfer.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	release <- JobEnd{ID: "7", State: "failed", Error: "no provider\x1b[2J"}
	r.bg.Wait()
	if s := out.String(); !strings.Contains(s, "job 7: failed: no provider") || strings.Contains(s, "\x1b") || failedNow() != 1 {
		t.Fatalf("failure: %q (failed %d)", s, failedNow())
	}

	// Without the local API, --bg says why.
	if err := (&call{r: New(Deps{}), out: w}).getBackground("x", c, transfer.GetOptions{}); err == nil || !strings.Contains(err.Error(), "local API") {
		t.Fatalf("no API: %v", err)
	}
}

// In piped mode the session waits for its background downloads at quit
// as at the end of the input, and one that failed, or that the node
// stopped before its end, makes Run report a failed command (exit status
// 1), whether it ended before or after the quit line was read.
func TestPipedBackgroundFailureCounts(t *testing.T) {
	mh, _ := multihash.Sum([]byte("bg"), multihash.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, mh)
	for _, tt := range []struct {
		name, script string
		end          *JobEnd // nil: the download never ends; ctx is canceled
		want         error
	}{
		{"failed, quit", "bg\nquit\n", &JobEnd{ID: "1", State: "failed", Error: "no provider"}, ErrCommandsFailed},
		{"failed, end of input", "bg\n", &JobEnd{ID: "1", State: "failed", Error: "no provider"}, ErrCommandsFailed},
		{"canceled, quit", "bg\nquit\n", &JobEnd{ID: "1", State: "canceled"}, ErrCommandsFailed},
		{"done, quit", "bg\nquit\n", &JobEnd{ID: "1", State: "done", Path: "/d/x"}, nil},
		{"done, end of input", "bg\n", &JobEnd{ID: "1", State: "done", Path: "/d/x"}, nil},
		{"node stopped, quit", "bg\nquit\n", nil, ErrCommandsFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			called, release, stop := make(chan struct{}), make(chan struct{}), make(chan struct{})
			defer close(stop)
			r := New(Deps{Background: func(string, cid.Cid, transfer.GetOptions) (string, <-chan JobEnd, error) {
				ended := make(chan JobEnd, 1)
				go func() {
					select {
					case <-release:
						ended <- *tt.end
					case <-stop: // the test is over
					}
					close(ended)
				}()
				close(called)
				return "1", ended, nil
			}})
			r.byName["bg"] = &command{name: "bg", run: func(_ context.Context, cl *call, _ []string) error {
				return cl.getBackground("x", c, transfer.GetOptions{})
			}}
			// The download ends (or, never ending, the node stops) once it
			// was queued: before or after quit is read, as it happens.
			go func() {
				select {
				case <-called:
				case <-ctx.Done():
					return
				}
				if tt.end != nil {
					close(release)
				} else {
					cancel()
				}
			}()
			var out bytes.Buffer
			err := r.runPiped(ctx, strings.NewReader(tt.script), &out)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("runPiped = %v, want %v; output:\n%s", err, tt.want, out.String())
			}
			if err != nil && !strings.HasPrefix(err.Error(), "1 ") {
				t.Fatalf("runPiped = %v, want 1 failed command", err)
			}
			if tt.end != nil && !strings.Contains(out.String(), "job 1: ") {
				t.Fatalf("the end was not reported before Run returned:\n%s", out.String())
			}
		})
	}
}
