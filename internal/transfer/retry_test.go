package transfer

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// Retry makes a download that waits for providers ask the Finder at once:
// with an hour between retries, only Retry can bring the provider in.
func TestRetryAsksFinderNow(t *testing.T) {
	srv := newNode(t)
	data := pattern(3*testChunk+5, 41)
	c := srv.publish(t, "r.bin", data, testChunk)
	cli := newNode(t, func(cfg *Config) { cfg.RetryInterval = time.Hour })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cli.svc.Get(ctx, c, GetOptions{Name: "r.bin"})
		done <- result{res, err}
	}()
	waitFor(t, 20*time.Second, "state "+StateWaiting, func() bool {
		tr := cli.svc.Transfers()
		return len(tr) == 1 && tr[0].State == StateWaiting
	})
	cli.fnd.set(addrInfo(srv.h))
	cli.svc.Retry()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkFile(t, filepath.Join(cli.dir, "downloads", "r.bin"), data)
	case <-time.After(30 * time.Second):
		t.Fatal("Get did not use the provider after Retry")
	}
}
