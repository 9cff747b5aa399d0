package api

import (
	"testing"
	"time"
)

// A login nonce works once, and only within LoginLinkTTL.
func TestLoginNonceSingleUseAndExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLogins()
	l.now = func() time.Time { return now }

	n, exp := l.newNonce()
	if !exp.Equal(now.Add(LoginLinkTTL)) {
		t.Fatalf("expires %v, want %v", exp, now.Add(LoginLinkTTL))
	}
	now = now.Add(LoginLinkTTL - time.Second)
	sess, ok := l.redeem(n)
	if !ok || !l.valid(sess) {
		t.Fatal("a fresh nonce was refused")
	}
	if _, ok := l.redeem(n); ok {
		t.Fatal("a nonce worked twice")
	}

	n2, _ := l.newNonce()
	now = now.Add(LoginLinkTTL)
	if _, ok := l.redeem(n2); ok {
		t.Fatal("an expired nonce worked")
	}
	if _, ok := l.redeem("not-a-nonce"); ok {
		t.Fatal("an unknown nonce worked")
	}
	if l.valid("") || l.valid("x") {
		t.Fatal("an unknown session is valid")
	}
	if !l.valid(sess) {
		t.Fatal("the session ended when its nonce expired")
	}

	// Unused links are bounded: the oldest goes.
	for range maxPendingLogins + 10 {
		now = now.Add(time.Millisecond)
		l.newNonce()
	}
	if len(l.pending) > maxPendingLogins {
		t.Fatalf("%d pending nonces kept, at most %d", len(l.pending), maxPendingLogins)
	}
}
