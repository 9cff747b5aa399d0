package bbsaes

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const (
	// MaxHandshakeMessage bounds every handshake message body; the length
	// prefix is checked against it before anything is allocated.
	MaxHandshakeMessage = 8 << 10
	// NonceSize is the size of each side's handshake nonce.
	NonceSize = 32
	// BBSOutputBytes is how much BBS output goes into the key derivation.
	BBSOutputBytes = 32

	maxPubKeyBytes    = 2048 // a marshalled RSA-8192 public key fits
	maxSignatureBytes = 1024
	maxModulusBytes   = MaxModulusBits / 8

	msgHello    = 1
	msgResponse = 2
	msgFinish   = 3

	transcriptDomain = "p2pshare/bbsaes/v1 transcript"
	signatureDomain  = "p2pshare/bbsaes/v1 signature"
	seedInfo         = "p2pshare/bbsaes/v1 bbs seed"
	keysInfo         = "p2pshare/bbsaes/v1 session keys"

	roleInitiator = 'I'
	roleResponder = 'R'
)

// Config configures one side of a handshake.
type Config struct {
	// ProtocolID is the libp2p protocol the handshake runs under; it is
	// bound into the transcript.
	ProtocolID protocol.ID
	// LocalKey is the local libp2p identity key. Required.
	LocalKey crypto.PrivKey
	// RemotePeer is the peer the stream's connection is with. Required;
	// the remote side's signing key must hash to it.
	RemotePeer peer.ID
	// BBSKey is the local BBS key. Required for the responder, unused by
	// the initiator.
	BBSKey *Key
	// BitsPerStep is the number of BBS output bits per squaring; both sides
	// must agree. 0 means 1.
	BitsPerStep int
	// MinModulusBits is the smallest BBS modulus accepted (and, for the
	// responder, offered). 0 means DefaultModulusBits; smaller values are
	// for tests only.
	MinModulusBits int
}

// Session is the result of a successful handshake: a session key known to
// exactly the two peers, from which every sealed stream derives its own
// subkey. A Session is safe for concurrent use: any number of Writers and
// Readers, in both directions, may use it at once.
type Session struct {
	key        [32]byte
	role       byte // local role: roleInitiator or roleResponder
	remote     peer.ID
	transcript [32]byte
}

// RemotePeer returns the authenticated remote peer.
func (s *Session) RemotePeer() peer.ID { return s.remote }

// Initiator reports whether the local side initiated the handshake.
func (s *Session) Initiator() bool { return s.role == roleInitiator }

type helloMsg struct {
	bitsPerStep byte
	eph         [32]byte
	nonce       [NonceSize]byte
}

type responseMsg struct {
	bitsPerStep byte
	eph         [32]byte
	nonce       [NonceSize]byte
	modulus     []byte
	pub         []byte
	sig         []byte
	finished    [32]byte
}

type finishMsg struct {
	pub      []byte
	sig      []byte
	finished [32]byte
}

func (m *helloMsg) marshal() []byte {
	b := []byte{msgHello, Version, m.bitsPerStep}
	b = append(b, m.eph[:]...)
	return append(b, m.nonce[:]...)
}

func (m *responseMsg) marshal() []byte {
	b := []byte{msgResponse, Version, m.bitsPerStep}
	b = append(b, m.eph[:]...)
	b = append(b, m.nonce[:]...)
	b = appendVar(b, m.modulus)
	b = appendVar(b, m.pub)
	b = appendVar(b, m.sig)
	return append(b, m.finished[:]...)
}

func (m *finishMsg) marshal() []byte {
	b := []byte{msgFinish, Version}
	b = appendVar(b, m.pub)
	b = appendVar(b, m.sig)
	return append(b, m.finished[:]...)
}

func appendVar(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// parser reads fields from a message body; the first failure sticks.
type parser struct {
	b   []byte
	err error
}

func (p *parser) take(n int) []byte {
	if p.err != nil {
		return nil
	}
	if len(p.b) < n {
		p.err = fmt.Errorf("%w: handshake message ends inside a field", ErrTruncated)
		return nil
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) header(typ byte) {
	h := p.take(2)
	if p.err == nil && (h[0] != typ || h[1] != Version) {
		p.err = fmt.Errorf("%w: got message type %d version %d, want type %d version %d", ErrMalformed, h[0], h[1], typ, Version)
	}
}

func (p *parser) fixed(dst []byte) {
	copy(dst, p.take(len(dst)))
}

func (p *parser) varBytes(name string, max int) []byte {
	l := p.take(2)
	if p.err != nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(l))
	if n == 0 || n > max {
		p.err = fmt.Errorf("%w: %s length %d not in [1, %d]", ErrMalformed, name, n, max)
		return nil
	}
	return bytes.Clone(p.take(n))
}

func (p *parser) finish() error {
	if p.err == nil && len(p.b) != 0 {
		p.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(p.b))
	}
	return p.err
}

func parseHello(b []byte) (*helloMsg, error) {
	p := parser{b: b}
	var m helloMsg
	p.header(msgHello)
	if v := p.take(1); v != nil {
		m.bitsPerStep = v[0]
	}
	p.fixed(m.eph[:])
	p.fixed(m.nonce[:])
	if err := p.finish(); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	return &m, nil
}

func parseResponse(b []byte) (*responseMsg, error) {
	p := parser{b: b}
	var m responseMsg
	p.header(msgResponse)
	if v := p.take(1); v != nil {
		m.bitsPerStep = v[0]
	}
	p.fixed(m.eph[:])
	p.fixed(m.nonce[:])
	m.modulus = p.varBytes("modulus", maxModulusBytes)
	if p.err == nil && m.modulus[0] == 0 {
		p.err = fmt.Errorf("%w: modulus has a leading zero byte", ErrMalformed)
	}
	m.pub = p.varBytes("public key", maxPubKeyBytes)
	m.sig = p.varBytes("signature", maxSignatureBytes)
	p.fixed(m.finished[:])
	if err := p.finish(); err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	return &m, nil
}

func parseFinish(b []byte) (*finishMsg, error) {
	p := parser{b: b}
	var m finishMsg
	p.header(msgFinish)
	m.pub = p.varBytes("public key", maxPubKeyBytes)
	m.sig = p.varBytes("signature", maxSignatureBytes)
	p.fixed(m.finished[:])
	if err := p.finish(); err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	return &m, nil
}

// writeMessage writes a 4-byte big-endian length and the body in one Write.
func writeMessage(w io.Writer, body []byte) error {
	buf := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	buf = append(buf, body...)
	_, err := w.Write(buf)
	return err
}

// readMessage reads one length-prefixed message, refusing a length above
// MaxHandshakeMessage before allocating.
func readMessage(r io.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, ioErr(err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > MaxHandshakeMessage {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, MaxHandshakeMessage)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, ioErr(err)
	}
	return body, nil
}

// ioErr marks an end of input inside a message, header or frame as
// truncation. It deliberately does not wrap io.EOF, so that
// errors.Is(err, io.EOF) never mistakes a truncated stream for a clean end.
func ioErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	return err
}

// lowOrderPoints are the Curve25519 points of small order (and their
// non-canonical encodings), as listed by libsodium. The top bit is ignored
// by X25519, so it is cleared before comparing.
var lowOrderPoints = [][32]byte{
	{},  // 0
	{1}, // 1
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // p-1
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // p
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // p+1
}

// checkPeerKey refuses all-zero and low-order X25519 public keys.
func checkPeerKey(pub [32]byte) error {
	pub[31] &= 0x7f
	for _, lo := range lowOrderPoints {
		if pub == lo {
			return fmt.Errorf("%w: low-order point %x", ErrWeakKey, pub)
		}
	}
	return nil
}

// x25519 computes the shared secret, refusing weak peer keys (checked by
// checkPeerKey and again by crypto/ecdh, which fails on an all-zero result).
func x25519(priv *ecdh.PrivateKey, peerPub [32]byte) ([]byte, error) {
	if err := checkPeerKey(peerPub); err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(peerPub[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWeakKey, err)
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWeakKey, err)
	}
	return secret, nil
}

type transcript struct {
	protocolID           protocol.ID
	initiator, responder peer.ID
	initEph, respEph     [32]byte
	initNonce, respNonce [NonceSize]byte
	modulus              []byte
	bitsPerStep          byte
}

func writeVar(h hash.Hash, b []byte) {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	h.Write(l[:])
	h.Write(b)
}

func (t *transcript) hash() [32]byte {
	h := sha256.New()
	writeVar(h, []byte(transcriptDomain))
	writeVar(h, []byte(t.protocolID))
	writeVar(h, []byte(t.initiator))
	writeVar(h, []byte(t.responder))
	h.Write(t.initEph[:])
	h.Write(t.respEph[:])
	h.Write(t.initNonce[:])
	h.Write(t.respNonce[:])
	writeVar(h, t.modulus)
	h.Write([]byte{t.bitsPerStep})
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func signedData(role byte, th [32]byte) []byte {
	b := append([]byte(signatureDomain), role)
	return append(b, th[:]...)
}

func finishedMAC(key []byte, role byte, th [32]byte) [32]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte{role})
	m.Write(th[:])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

type sessionKeys struct {
	session          [32]byte
	finishI, finishR [32]byte
}

// deriveKeys runs the key schedule: the BBS seed from the DH secret, 32
// bytes of BBS output, and the session and finished keys from
// HKDF(DH secret || BBS output, salt = transcript hash).
func deriveKeys(dh []byte, th [32]byte, n *big.Int, bitsPerStep int) (*sessionKeys, error) {
	seedBytes, err := hkdf.Key(sha256.New, dh, th[:], seedInfo, (n.BitLen()+7)/8+16)
	if err != nil {
		return nil, fmt.Errorf("derive BBS seed: %w", err)
	}
	// 128 extra bits make the reduction mod N close to uniform.
	seed := new(big.Int).SetBytes(seedBytes)
	seed.Mod(seed, n)
	g, err := NewGenerator(n, seed, bitsPerStep)
	if err != nil {
		return nil, fmt.Errorf("BBS seed: %w", err)
	}
	ikm := make([]byte, len(dh)+BBSOutputBytes)
	copy(ikm, dh)
	g.Read(ikm[len(dh):])
	okm, err := hkdf.Key(sha256.New, ikm, th[:], keysInfo, 96)
	if err != nil {
		return nil, fmt.Errorf("derive session keys: %w", err)
	}
	var k sessionKeys
	copy(k.session[:], okm[0:32])
	copy(k.finishI[:], okm[32:64])
	copy(k.finishR[:], okm[64:96])
	clear(okm)
	clear(ikm)
	return &k, nil
}

type normalizedConfig struct {
	Config
	localID peer.ID
}

func (c Config) normalize(responder bool) (*normalizedConfig, error) {
	if c.LocalKey == nil {
		return nil, errors.New("bbsaes: config: LocalKey is required")
	}
	if c.RemotePeer == "" {
		return nil, errors.New("bbsaes: config: RemotePeer is required")
	}
	if c.BitsPerStep == 0 {
		c.BitsPerStep = 1
	}
	if c.MinModulusBits == 0 {
		c.MinModulusBits = DefaultModulusBits
	}
	if c.BitsPerStep < 1 || c.BitsPerStep > 255 || c.BitsPerStep > MaxBitsPerStep(big.NewInt(0).Lsh(bigOne, uint(c.MinModulusBits-1))) {
		return nil, fmt.Errorf("bbsaes: config: %d bits per step is too many for a %d-bit modulus", c.BitsPerStep, c.MinModulusBits)
	}
	if responder {
		if c.BBSKey == nil || c.BBSKey.N == nil {
			return nil, errors.New("bbsaes: config: BBSKey is required for the responder")
		}
		if err := CheckModulus(c.BBSKey.N, c.MinModulusBits); err != nil {
			return nil, fmt.Errorf("bbsaes: config: own BBS key: %w", err)
		}
	}
	id, err := peer.IDFromPrivateKey(c.LocalKey)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: config: local key: %w", err)
	}
	return &normalizedConfig{Config: c, localID: id}, nil
}

type deadliner interface {
	SetDeadline(time.Time) error
}

// bindContext makes ctx's deadline and cancellation interrupt blocked I/O on
// rw when rw has SetDeadline. The returned function undoes it (clearing the
// deadline).
func bindContext(ctx context.Context, rw io.ReadWriter) func() {
	d, ok := rw.(deadliner)
	if !ok {
		return func() {}
	}
	dl, hasDeadline := ctx.Deadline()
	if !hasDeadline && ctx.Done() == nil {
		return func() {}
	}
	if hasDeadline {
		_ = d.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = d.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = d.SetDeadline(time.Time{})
	}
}

func withContext(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

func newEphemeral() (*ecdh.PrivateKey, [32]byte, [NonceSize]byte, error) {
	var pub [32]byte
	var nonce [NonceSize]byte
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, pub, nonce, err
	}
	copy(pub[:], priv.PublicKey().Bytes())
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, pub, nonce, err
	}
	return priv, pub, nonce, nil
}

// verifyPeer checks that pubBytes is the remote peer's key and that it
// signed the transcript in the given role.
func verifyPeer(pubBytes, sig []byte, want peer.ID, role byte, th [32]byte) error {
	pub, err := crypto.UnmarshalPublicKey(pubBytes)
	if err != nil {
		return fmt.Errorf("%w: public key: %w", ErrBadSignature, err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: public key: %w", ErrBadSignature, err)
	}
	if id != want {
		return fmt.Errorf("%w: signed by %s, expected %s", ErrBadSignature, id, want)
	}
	ok, err := pub.Verify(signedData(role, th), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: signature by %s does not verify", ErrBadSignature, id)
	}
	return nil
}

// Initiate runs the initiator's side of the handshake on rw (normally a
// freshly opened libp2p stream). Messages: hello ->, <- response, finish ->.
// On return the initiator has verified the responder's signature and key
// confirmation; the responder verifies the initiator's when it reads the
// finish message, before it sends any sealed data.
//
// If rw has SetDeadline, ctx's deadline and cancellation apply to the
// handshake's I/O and the deadline is cleared on return; otherwise ctx is
// only checked between messages.
func Initiate(ctx context.Context, rw io.ReadWriter, cfg Config) (*Session, error) {
	c, err := cfg.normalize(false)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bbsaes: handshake with %s: %w", c.RemotePeer, err)
	}
	defer bindContext(ctx, rw)()
	s, err := initiate(ctx, rw, c)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: handshake with %s (initiator): %w", c.RemotePeer, withContext(ctx, err))
	}
	return s, nil
}

func initiate(ctx context.Context, rw io.ReadWriter, c *normalizedConfig) (*Session, error) {
	priv, eph, nonce, err := newEphemeral()
	if err != nil {
		return nil, err
	}
	hello := helloMsg{bitsPerStep: byte(c.BitsPerStep), eph: eph, nonce: nonce}
	if err := writeMessage(rw, hello.marshal()); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	body, err := readMessage(rw)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := parseResponse(body)
	if err != nil {
		return nil, err
	}
	if int(resp.bitsPerStep) != c.BitsPerStep {
		return nil, fmt.Errorf("%w: responder uses %d bits per step, we use %d", ErrMalformed, resp.bitsPerStep, c.BitsPerStep)
	}
	if err := checkPeerKey(resp.eph); err != nil {
		return nil, fmt.Errorf("responder's key: %w", err)
	}
	n := new(big.Int).SetBytes(resp.modulus)
	if err := CheckModulus(n, c.MinModulusBits); err != nil {
		return nil, fmt.Errorf("responder's modulus: %w", err)
	}
	t := transcript{
		protocolID: c.ProtocolID, initiator: c.localID, responder: c.RemotePeer,
		initEph: eph, respEph: resp.eph, initNonce: nonce, respNonce: resp.nonce,
		modulus: resp.modulus, bitsPerStep: byte(c.BitsPerStep),
	}
	th := t.hash()
	if err := verifyPeer(resp.pub, resp.sig, c.RemotePeer, roleResponder, th); err != nil {
		return nil, err
	}
	dh, err := x25519(priv, resp.eph)
	if err != nil {
		return nil, fmt.Errorf("responder's key: %w", err)
	}
	keys, err := deriveKeys(dh, th, n, c.BitsPerStep)
	if err != nil {
		return nil, err
	}
	want := finishedMAC(keys.finishR[:], roleResponder, th)
	if !hmac.Equal(want[:], resp.finished[:]) {
		return nil, fmt.Errorf("%w: responder's finished MAC", ErrKeyConfirmation)
	}
	sig, err := c.LocalKey.Sign(signedData(roleInitiator, th))
	if err != nil {
		return nil, fmt.Errorf("sign transcript: %w", err)
	}
	pub, err := crypto.MarshalPublicKey(c.LocalKey.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("marshal identity key: %w", err)
	}
	fin := finishMsg{pub: pub, sig: sig, finished: finishedMAC(keys.finishI[:], roleInitiator, th)}
	if err := writeMessage(rw, fin.marshal()); err != nil {
		return nil, fmt.Errorf("send finish: %w", err)
	}
	return &Session{key: keys.session, role: roleInitiator, remote: c.RemotePeer, transcript: th}, nil
}

// Respond runs the responder's side of the handshake on rw (normally a
// stream accepted by a protocol handler). cfg.BBSKey is required. On return
// both sides have verified each other's signature and key confirmation.
// Context handling is as for Initiate.
func Respond(ctx context.Context, rw io.ReadWriter, cfg Config) (*Session, error) {
	c, err := cfg.normalize(true)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bbsaes: handshake with %s: %w", c.RemotePeer, err)
	}
	defer bindContext(ctx, rw)()
	s, err := respond(ctx, rw, c)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: handshake with %s (responder): %w", c.RemotePeer, withContext(ctx, err))
	}
	return s, nil
}

func respond(ctx context.Context, rw io.ReadWriter, c *normalizedConfig) (*Session, error) {
	body, err := readMessage(rw)
	if err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	hello, err := parseHello(body)
	if err != nil {
		return nil, err
	}
	if int(hello.bitsPerStep) != c.BitsPerStep {
		return nil, fmt.Errorf("%w: initiator uses %d bits per step, we use %d", ErrMalformed, hello.bitsPerStep, c.BitsPerStep)
	}
	if err := checkPeerKey(hello.eph); err != nil {
		return nil, fmt.Errorf("initiator's key: %w", err)
	}
	priv, eph, nonce, err := newEphemeral()
	if err != nil {
		return nil, err
	}
	dh, err := x25519(priv, hello.eph)
	if err != nil {
		return nil, fmt.Errorf("initiator's key: %w", err)
	}
	modulus := c.BBSKey.N.Bytes()
	t := transcript{
		protocolID: c.ProtocolID, initiator: c.RemotePeer, responder: c.localID,
		initEph: hello.eph, respEph: eph, initNonce: hello.nonce, respNonce: nonce,
		modulus: modulus, bitsPerStep: byte(c.BitsPerStep),
	}
	th := t.hash()
	keys, err := deriveKeys(dh, th, c.BBSKey.N, c.BitsPerStep)
	if err != nil {
		return nil, err
	}
	sig, err := c.LocalKey.Sign(signedData(roleResponder, th))
	if err != nil {
		return nil, fmt.Errorf("sign transcript: %w", err)
	}
	pub, err := crypto.MarshalPublicKey(c.LocalKey.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("marshal identity key: %w", err)
	}
	resp := responseMsg{
		bitsPerStep: byte(c.BitsPerStep), eph: eph, nonce: nonce, modulus: modulus,
		pub: pub, sig: sig, finished: finishedMAC(keys.finishR[:], roleResponder, th),
	}
	if err := writeMessage(rw, resp.marshal()); err != nil {
		return nil, fmt.Errorf("send response: %w", err)
	}
	body, err = readMessage(rw)
	if err != nil {
		return nil, fmt.Errorf("read finish: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fin, err := parseFinish(body)
	if err != nil {
		return nil, err
	}
	if err := verifyPeer(fin.pub, fin.sig, c.RemotePeer, roleInitiator, th); err != nil {
		return nil, err
	}
	want := finishedMAC(keys.finishI[:], roleInitiator, th)
	if !hmac.Equal(want[:], fin.finished[:]) {
		return nil, fmt.Errorf("%w: initiator's finished MAC", ErrKeyConfirmation)
	}
	return &Session{key: keys.session, role: roleResponder, remote: c.RemotePeer, transcript: th}, nil
}
