package transfer

import (
	"testing"
	"time"
)

// The fetch server's admission refuses past its burst and refills at its
// rate, per address (internal/limiter tests the table itself).
func TestSessionAdmission(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := newSessionAdmission()
	a.Now = func() time.Time { return now }
	for i := range sessionBurst {
		if !a.allow("192.0.2.1") {
			t.Fatalf("session %d of a burst of %d refused", i+1, sessionBurst)
		}
	}
	if a.allow("192.0.2.1") {
		t.Fatalf("session %d admitted at once; the burst is %d", sessionBurst+1, sessionBurst)
	}
	if !a.allow("192.0.2.2") {
		t.Fatal("another address refused because of the first one's sessions")
	}
	now = now.Add(time.Second)
	n := 0
	for a.allow("192.0.2.1") {
		n++
	}
	if n != sessionsPerSecond {
		t.Errorf("%d sessions admitted a second after the burst; want %d", n, sessionsPerSecond)
	}
}
