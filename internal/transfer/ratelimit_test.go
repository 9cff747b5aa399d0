package transfer

import (
	"bytes"
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
	n, err := rateWriter{&out, l}.Write(data)
	if err != nil || n != len(data) || out.Len() != len(data) {
		t.Fatalf("write: n=%d err=%v out=%d", n, err, out.Len())
	}
	min := time.Duration(float64(len(data)-l.Burst()) / float64(1<<20) * float64(time.Second))
	if elapsed := time.Since(start); elapsed < min*9/10 {
		t.Fatalf("512 KiB at 1 MiB/s took %s, want at least %s", elapsed, min)
	}
}
