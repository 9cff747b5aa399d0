package transfer

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// The upload limit holds: 512 KiB through a 1 MiB/s limiter cannot take
// less than (512 KiB - burst) / rate. Only a lower bound is checked, so a
// slow machine cannot make the test fail.
func TestUploadLimit(t *testing.T) {
	if newUploadLimiter(0) != nil {
		t.Fatal("a zero limit made a limiter")
	}
	l := newUploadLimiter(1 << 20)
	var out bytes.Buffer
	data := make([]byte, 512<<10)
	start := time.Now()
	n, err := rateWriter{ctx: context.Background(), w: &out, l: l, timeout: time.Minute}.Write(data)
	if err != nil || n != len(data) || out.Len() != len(data) {
		t.Fatalf("write: n=%d err=%v out=%d", n, err, out.Len())
	}
	min := time.Duration(float64(len(data)-l.Burst()) / float64(1<<20) * float64(time.Second))
	if elapsed := time.Since(start); elapsed < min*9/10 {
		t.Fatalf("512 KiB at 1 MiB/s took %s, want at least %s", elapsed, min)
	}
}

// Close interrupts a serving stream that waits on the upload limiter: at
// 600 B/s every 16 KiB piece waits about 27 s (under ioTimeout), and Close
// must not wait for it (it resets the stream, but the wait used to ignore
// that).
func TestCloseInterruptsRateLimitedStream(t *testing.T) {
	srv := newNode(t, func(c *Config) { c.UploadLimit = 600 })
	c := srv.publish(t, "slow.bin", pattern(4*testChunk, 40), testChunk)
	cli := newNode(t)
	cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.reset()
	if err := cn.requestChunks(0, 4); err != nil {
		t.Fatal(err)
	}
	// The bucket is more than half a burst in debt: the handler waits in
	// WaitN for over 13 s.
	l := srv.svc.upload
	waitFor(t, 10*time.Second, "the server to wait on the limiter", func() bool {
		return l.Tokens() < -float64(l.Burst())/2
	})
	closed := make(chan struct{})
	go func() {
		srv.svc.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a stream blocked on the upload limiter")
	}
}

// deadlineRecorder records the write deadlines set on it.
type deadlineRecorder struct {
	bytes.Buffer
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

// A paced write renews the stream's write deadline after every limiter
// wait, so a chunk that takes longer than the I/O timeout to send at a low
// limit is not cut off by a deadline set once per chunk.
func TestRateWriterRenewsWriteDeadline(t *testing.T) {
	l := newUploadLimiter(1 << 20) // burst 102 KiB
	rec := &deadlineRecorder{}
	data := make([]byte, 5*l.Burst()+7)
	w := rateWriter{ctx: context.Background(), w: rec, l: l, timeout: time.Hour, st: rec}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if rec.Len() != len(data) {
		t.Fatalf("wrote %d bytes, want %d", rec.Len(), len(data))
	}
	if len(rec.deadlines) != 6 {
		t.Fatalf("%d deadlines set for 6 paced pieces", len(rec.deadlines))
	}
	for i := 1; i < len(rec.deadlines); i++ {
		if rec.deadlines[i].Before(rec.deadlines[i-1]) {
			t.Fatal("deadlines do not move forward")
		}
	}
}
