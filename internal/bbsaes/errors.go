package bbsaes

import "errors"

// Sentinel errors. Every error returned by this package wraps at most one of
// these (plus, where relevant, an underlying I/O error), so callers can branch
// with errors.Is.
var (
	// ErrBadSignature: the peer's handshake signature does not verify, or
	// it was made by a key that is not the expected remote peer's.
	ErrBadSignature = errors.New("bbsaes: bad handshake signature")
	// ErrKeyConfirmation: the peer's finished MAC does not match; the two
	// sides did not derive the same session key.
	ErrKeyConfirmation = errors.New("bbsaes: key confirmation failed")
	// ErrWeakKey: an all-zero or low-order X25519 public key.
	ErrWeakKey = errors.New("bbsaes: weak X25519 key")
	// ErrBadModulus: a BBS modulus that is too small, too large, even, a
	// perfect square, not 1 mod 4 or with a small factor; or a BBS private
	// key that does not validate.
	ErrBadModulus = errors.New("bbsaes: bad BBS modulus")
	// ErrBadSeed: a BBS seed that is 0, 1, shares a factor with N, or whose
	// square is 1.
	ErrBadSeed = errors.New("bbsaes: bad BBS seed")
	// ErrMessageTooLarge: a handshake message longer than MaxHandshakeMessage.
	ErrMessageTooLarge = errors.New("bbsaes: handshake message too large")
	// ErrMalformed: a handshake message that does not parse (wrong type,
	// wrong version, bad field lengths, trailing bytes, mismatched
	// parameters).
	ErrMalformed = errors.New("bbsaes: malformed handshake message")
	// ErrTruncated: the input ended inside a handshake message, a stream
	// header or a frame, or a sealed stream ended without its final frame.
	ErrTruncated = errors.New("bbsaes: truncated")
	// ErrTampered: a stream header or frame failed authentication (flipped
	// bits, reordered, duplicated or foreign frames, wrong key).
	ErrTampered = errors.New("bbsaes: sealed stream tampered with")
	// ErrFrameTooLarge: a frame length above the maximum.
	ErrFrameTooLarge = errors.New("bbsaes: frame too large")
	// ErrTrailingData: bytes after the final frame of a standalone sealed
	// stream (see Session.NewStandaloneReader).
	ErrTrailingData = errors.New("bbsaes: trailing data after final frame")
	// ErrBadVersion: a stream header with an unknown version.
	ErrBadVersion = errors.New("bbsaes: unsupported stream version")
	// ErrClosed: Write or ReadFrom on a closed Writer.
	ErrClosed = errors.New("bbsaes: writer closed")
)
