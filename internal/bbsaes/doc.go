// Package bbsaes is p2pshare's own encryption layer for file streams, run
// on top of libp2p's transport security (TLS or Noise): a signed X25519
// handshake whose key schedule includes Blum Blum Shub output, and
// AES-256-GCM framing of each file stream.
//
// It is not a replacement for the transport security, not a general
// purpose secure channel and not a random number generator for other uses.
//
// # Handshake
//
// Three length-prefixed messages (4-byte big-endian length, at most
// MaxHandshakeMessage bytes, checked before allocating):
//
//	initiator -> responder  hello:    version, k, ephemeral X25519 key, 32-byte nonce
//	responder -> initiator  response: version, k, ephemeral key, nonce, BBS modulus N,
//	                                  identity public key, signature, finished MAC
//	initiator -> responder  finish:   identity public key, signature, finished MAC
//
// The transcript hash is SHA-256 over a domain string, the protocol ID, the
// initiator's and responder's peer IDs, both ephemeral keys, both nonces, N
// and k (bits per BBS step). Each side signs (domain, its role, transcript
// hash) with its libp2p identity key; the receiver checks that the sent
// public key hashes to the expected remote peer ID (peer.IDFromPublicKey)
// and that the signature verifies. Weak X25519 keys (zero and the other
// low-order points, in any encoding) are refused before and by the ECDH.
// The received modulus must have at least Config.MinModulusBits bits (2048
// by default) and at most MaxModulusBits, be odd, 1 mod 4, not a perfect
// square and without a factor below 1000.
//
// Key schedule, with dh the X25519 shared secret and th the transcript hash:
//
//	seed   = HKDF-SHA256(dh, salt=th, "bbs seed", len(N)+16 bytes) mod N
//	         (refused if 0, 1, sharing a factor with N, or squaring to 1)
//	bbs    = 32 bytes of BBS output over N from x0 = seed^2 mod N, x1 on
//	keys   = HKDF-SHA256(dh || bbs, salt=th, "session keys", 96 bytes)
//	       = session key || initiator finished key || responder finished key
//
// The finished MACs (HMAC-SHA256 of role and th) confirm that both sides
// derived the same keys. The initiator verifies the responder's signature
// and MAC before sending its own; the responder verifies the initiator's
// before Respond returns, so it sends no file bytes to an unconfirmed peer.
// An initiator whose finish message is refused learns it when the
// responder resets the stream. Fresh nonces and ephemeral keys on both sides
// make replayed messages fail (the signatures no longer cover the
// transcript).
//
// # What BBS adds, and what it does not
//
// Honestly: nothing to the security of the session key beyond the X25519
// exchange and HKDF. The layer keeps BBS because the original system had
// it. The key schedule is arranged so that BBS cannot weaken the key: the
// BBS output is never the key by itself, it is only appended to the DH
// secret as extra HKDF input, so the session key is at least as strong as
// the DH secret alone even if N were factored, chosen maliciously by the
// responder (the initiator cannot verify that N has exactly two prime
// factors), or the BBS output were known. The seed is a one-way function of
// the DH secret, so revealing it reveals nothing about that secret. BBS is
// slow (one 2048-bit modular squaring per output bit) and implemented with
// math/big, which is not constant time; it is only ever used for the 32
// bytes of the key derivation, never for bulk data.
//
// Each node makes its modulus once (GenerateKey, LoadOrGenerateKey) and
// keeps P and Q in a mode 0600 file with its identity; only N is sent.
// The Generator follows the shared known-answer vectors: the k lowest bits
// of each state from x1 on, most significant first, packed into bytes most
// significant bit first. Skip jumps ahead using the factorisation
// (x_i = x0^(2^i mod (p-1)) mod p, likewise mod q, joined by CRT).
//
// # Sealed streams
//
// A Session carries any number of sealed streams in both directions (the
// fetch protocol sends one per request on a long-lived libp2p stream).
// A stream is a header followed by frames:
//
//	header: version | len(CID) (2) | CID | StartChunk (8) | salt (32) | commitment (32)
//	frame:  length (4, top bit = final) | AES-256-GCM ciphertext of <= 64 KiB
//
// The stream's AES-256 subkey and 32-byte key commitment come from
// HKDF-SHA256(session key, salt, "stream" || writer's role || header), so
// the header is bound into every frame, streams never share a nonce space
// (fresh random salt), and a stream cannot be reflected back to its writer.
// The Reader compares the commitment in constant time before opening any
// frame. Frame i uses nonce = i as 11 big-endian bytes || final flag byte,
// with the length prefix as additional data. Only full 64 KiB frames are
// non-final; Close always writes a final frame (possibly empty).
//
// A Reader returns a frame's plaintext only after the frame authenticated,
// and io.EOF only after a valid final frame. Truncation (ErrTruncated),
// reordered, duplicated, dropped or foreign frames and flipped bits
// (ErrTampered), and oversized lengths (ErrFrameTooLarge, checked before
// reading the frame) all fail; errors are sticky and never match io.EOF.
// (NewReader on an input that ends before the first header byte returns an
// error matching io.EOF: there is no further stream.)
//
// Trailing data: a Reader never reads past its final frame, because the
// next sealed stream or a protocol message may follow on the same libp2p
// stream. Whatever follows is the caller's: a leftover or replayed frame
// there fails the next NewReader's header check (wrong version byte or
// commitment). When a sealed stream is the whole of its input (a file or a
// buffer), use NewStandaloneReader, which reports ErrTrailingData instead
// of io.EOF if anything follows the final frame (this also covers a second
// final frame).
//
// Writers and Readers take their 64 KiB frame buffers from a pool; a frame
// is sealed in place (or straight from the caller's slice) and written with
// one Write call; a Reader given a large enough buffer opens frames straight
// into it, and WriteTo/ReadFrom give io.Copy a copy-free path. There are no
// allocations per frame.
package bbsaes
