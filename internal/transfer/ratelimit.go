package transfer

import (
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/time/rate"
)

// rateWriter limits the bytes written through it with a limiter that may be
// shared by many writers (the server's upload limit is one limiter for all
// its streams). Each wait ends with ctx (the Service's, cancelled by Close)
// and is bounded by timeout, like a write deadline: a wait that would last
// longer fails at once. An error from the wait is returned, which ends the
// stream.
type rateWriter struct {
	ctx     context.Context
	w       io.Writer
	l       *rate.Limiter
	timeout time.Duration
	// st, if set, gets a fresh write deadline after each wait, so the
	// deadline bounds network stalls, not the limiter's pacing (a chunk
	// may take longer than timeout to send at a low limit).
	st interface{ SetWriteDeadline(time.Time) error }
}

func (r rateWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); {
		n := min(len(p)-off, r.l.Burst())
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		err := r.l.WaitN(ctx, n)
		cancel()
		if err != nil {
			return off, fmt.Errorf("upload limit: %w", err)
		}
		if r.st != nil {
			r.st.SetWriteDeadline(time.Now().Add(r.timeout))
		}
		k, err := r.w.Write(p[off : off+n])
		off += k
		if err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// newUploadLimiter returns a limiter of bytesPerSec, or nil for no limit.
// The burst is a tenth of a second of traffic, at least 16 KiB, at most
// 256 KiB, so waits stay short and the rate stays smooth.
func newUploadLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := int(min(max(bytesPerSec/10, 16<<10), 256<<10))
	return rate.NewLimiter(rate.Limit(bytesPerSec), burst)
}
