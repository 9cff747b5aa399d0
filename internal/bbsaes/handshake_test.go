package bbsaes

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestHandshake(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	si, sr, ci, cr, erri, errr := handshake(t, ic, rc)
	if erri != nil || errr != nil {
		t.Fatalf("initiator %v, responder %v", erri, errr)
	}
	if si.key != sr.key || si.transcript != sr.transcript {
		t.Fatal("sessions disagree on the key")
	}
	if si.RemotePeer() != b.id || sr.RemotePeer() != a.id || !si.Initiator() || sr.Initiator() {
		t.Fatal("wrong peers or roles")
	}
	// Both directions work over the same connection after the handshake.
	msg := bytes.Repeat([]byte("file bytes "), 10000)
	for _, dir := range []struct {
		from, to *Session
		w, r     net.Conn
	}{{si, sr, ci, cr}, {sr, si, cr, ci}} {
		errc := make(chan error, 1)
		go func() {
			w, err := dir.from.NewWriter(dir.w, Header{CID: []byte("c")})
			if err == nil {
				_, err = w.Write(msg)
			}
			if err == nil {
				err = w.Close()
			}
			errc <- err
		}()
		r, err := dir.to.NewReader(dir.r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read: %v (%d bytes)", err, len(got))
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// A second handshake between the same peers gives a different key.
	si2, _, _, _, erri, errr := handshake(t, ic, rc)
	if erri != nil || errr != nil {
		t.Fatal(erri, errr)
	}
	if si2.key == si.key {
		t.Fatal("two handshakes produced the same session key")
	}
}

func TestHandshakeSmallModulusByConfig(t *testing.T) {
	small, err := GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	rc.BBSKey = small
	rc.MinModulusBits = 1024
	// The initiator's default minimum (2048 bits) refuses the modulus.
	_, _, _, _, erri, errr := handshake(t, ic, rc)
	if !errors.Is(erri, ErrBadModulus) || errr == nil {
		t.Fatalf("initiator %v, responder %v; want ErrBadModulus", erri, errr)
	}
	// Lowered on both sides, as tests may do, it works.
	ic.MinModulusBits = 1024
	if _, _, _, _, erri, errr = handshake(t, ic, rc); erri != nil || errr != nil {
		t.Fatalf("initiator %v, responder %v", erri, errr)
	}
	// The responder refuses to offer a key below its own minimum.
	rc.MinModulusBits = 0
	if _, err := Respond(context.Background(), struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(nil), io.Discard}, rc); !errors.Is(err, ErrBadModulus) {
		t.Fatalf("responder with small own key: %v", err)
	}
}

func TestHandshakeBitsPerStep(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	ic.BitsPerStep, rc.BitsPerStep = 11, 11
	si, sr, _, _, erri, errr := handshake(t, ic, rc)
	if erri != nil || errr != nil || si.key != sr.key {
		t.Fatalf("k=11: initiator %v, responder %v", erri, errr)
	}
	ic.BitsPerStep = 2
	_, _, _, _, erri, errr = handshake(t, ic, rc)
	if !errors.Is(errr, ErrMalformed) || erri == nil {
		t.Fatalf("mismatched k: initiator %v, responder %v", erri, errr)
	}
}

func TestHandshakeWrongPeer(t *testing.T) {
	a, b, c := newIdentity(t), newIdentity(t), newIdentity(t)
	// The responder expects c, but a connects.
	ic, rc := configs(t, a, b)
	rc.RemotePeer = c.id
	_, _, _, _, erri, errr := handshake(t, ic, rc)
	// The two transcripts name different initiators, so the initiator
	// already refuses the responder's signature; the responder then fails
	// too.
	if !errors.Is(erri, ErrBadSignature) || errr == nil {
		t.Fatalf("initiator %v, responder %v; want initiator ErrBadSignature", erri, errr)
	}
	// The initiator expects c, but b answers.
	ic, rc = configs(t, a, b)
	ic.RemotePeer = c.id
	rc.RemotePeer = a.id
	_, _, _, _, erri, errr = handshake(t, ic, rc)
	if !errors.Is(erri, ErrBadSignature) || errr == nil {
		t.Fatalf("initiator %v, responder %v; want initiator ErrBadSignature", erri, errr)
	}
}

// mitm runs a handshake through a relay that may rewrite each message:
// rewrite(fromInitiator, index, body) returns the body to forward.
func mitm(t *testing.T, ic, rc Config, rewrite func(fromInit bool, i int, body []byte) []byte) (erri, errr error) {
	t.Helper()
	nic, err := ic.normalize(false)
	if err != nil {
		t.Fatal(err)
	}
	nrc, err := rc.normalize(true)
	if err != nil {
		t.Fatal(err)
	}
	return mitmNormalized(t, nic, nrc, rewrite)
}

// mitmNormalized is mitm on normalized configs, whose localID a test may
// set to someone else's: an impostor who knows the transcript the victim
// expects but signs with its own key.
func mitmNormalized(t *testing.T, ic, rc *normalizedConfig, rewrite func(fromInit bool, i int, body []byte) []byte) (erri, errr error) {
	t.Helper()
	ci, pi := net.Pipe()
	pr, cr := net.Pipe()
	var wg sync.WaitGroup
	relay := func(src, dst net.Conn, fromInit bool) {
		defer wg.Done()
		for i := 0; ; i++ {
			body, err := readMessage(src)
			if err == nil {
				err = writeMessage(dst, rewrite(fromInit, i, body))
			}
			if err != nil {
				src.Close()
				dst.Close()
				return
			}
		}
	}
	wg.Add(2)
	go relay(pi, pr, true)
	go relay(pr, pi, false)
	defer func() {
		for _, c := range []net.Conn{ci, pi, pr, cr} {
			c.Close()
		}
		wg.Wait()
	}()
	ch := make(chan error, 1)
	go func() {
		_, err := respond(context.Background(), cr, rc)
		cr.Close()
		ch <- err
	}()
	_, erri = initiate(context.Background(), ci, ic)
	ci.Close()
	return erri, <-ch
}

// Field offsets in the fixed parts of the messages.
const (
	helloEphOff   = 3
	helloNonceOff = 3 + 32
)

func TestHandshakeTampering(t *testing.T) {
	a, b, m := newIdentity(t), newIdentity(t), newIdentity(t)
	aPub, _ := crypto.MarshalPublicKey(a.priv.GetPublic())
	bPub, _ := crypto.MarshalPublicKey(b.priv.GetPublic())
	flipLast := func(body []byte) []byte { body[len(body)-1] ^= 1; return body }
	// A modulus that passes CheckModulus but is not the one b signed.
	otherModulus := new(big.Int).Add(testKey(t).N, big.NewInt(4))
	for CheckModulus(otherModulus, DefaultModulusBits) != nil {
		otherModulus.Add(otherModulus, big.NewInt(4))
	}
	cases := []struct {
		name    string
		init    identity // who actually initiates
		resp    identity // who actually responds
		rewrite func(fromInit bool, i int, body []byte) []byte
		wantI   error // nil: only require some error
		wantR   error
	}{
		{
			// m initiates but claims a's identity key; the signature is m's.
			name: "finish signed by another key", init: m, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if fromInit && i == 1 {
					f, err := parseFinish(body)
					if err != nil {
						t.Error(err)
						return body
					}
					f.pub = aPub
					return f.marshal()
				}
				return body
			},
			wantR: ErrBadSignature,
		},
		{
			name: "response signed by another key", init: a, resp: m,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if !fromInit {
					r, err := parseResponse(body)
					if err != nil {
						t.Error(err)
						return body
					}
					r.pub = bPub
					return r.marshal()
				}
				return body
			},
			wantI: ErrBadSignature,
		},
		{
			// m knows the transcript b would sign, but signs with its own key.
			name: "impostor responder with own key", init: a, resp: m,
			rewrite: func(fromInit bool, i int, body []byte) []byte { return body },
			wantI:   ErrBadSignature,
		},
		{
			name: "impostor initiator with own key", init: m, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte { return body },
			wantR:   ErrBadSignature,
		},
		{
			name: "hello nonce changed", init: a, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if fromInit && i == 0 {
					body[helloNonceOff] ^= 1
				}
				return body
			},
			wantI: ErrBadSignature,
		},
		{
			name: "response finished MAC flipped", init: a, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if !fromInit {
					return flipLast(body)
				}
				return body
			},
			wantI: ErrKeyConfirmation,
		},
		{
			name: "finish MAC flipped", init: a, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if fromInit && i == 1 {
					return flipLast(body)
				}
				return body
			},
			wantR: ErrKeyConfirmation,
		},
		{
			name: "finish signature flipped", init: a, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if fromInit && i == 1 {
					body[len(body)-33] ^= 1 // last byte of the signature
				}
				return body
			},
			wantR: ErrBadSignature,
		},
		{
			name: "response modulus replaced", init: a, resp: b,
			rewrite: func(fromInit bool, i int, body []byte) []byte {
				if !fromInit {
					r, err := parseResponse(body)
					if err != nil {
						t.Error(err)
						return body
					}
					r.modulus = otherModulus.Bytes()
					return r.marshal()
				}
				return body
			},
			wantI: ErrBadSignature,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ic, rc := configs(t, c.init, c.resp)
			ic.RemotePeer = b.id
			rc.RemotePeer = a.id
			nic, err := ic.normalize(false)
			if err != nil {
				t.Fatal(err)
			}
			nrc, err := rc.normalize(true)
			if err != nil {
				t.Fatal(err)
			}
			// An impostor uses the victim's peer ID in its transcript.
			nic.localID, nrc.localID = a.id, b.id
			erri, errr := mitmNormalized(t, nic, nrc, c.rewrite)
			// The responder verifies last, so it refuses every tampering;
			// the initiator has finished before the finish message is
			// tampered with, and learns of it when the responder resets
			// the stream.
			if errr == nil {
				t.Fatalf("responder accepted: initiator %v", erri)
			}
			if c.wantI != nil && !errors.Is(erri, c.wantI) {
				t.Fatalf("initiator: %v, want %v", erri, c.wantI)
			}
			if c.wantR != nil && !errors.Is(errr, c.wantR) {
				t.Fatalf("responder: %v, want %v", errr, c.wantR)
			}
		})
	}
}

// lowOrderEncodings are the low-order points, plus their encodings with the
// top bit set (which X25519 ignores).
func lowOrderEncodings() [][32]byte {
	var out [][32]byte
	for _, p := range lowOrderPoints {
		out = append(out, p)
		p[31] |= 0x80
		out = append(out, p)
	}
	return out
}

func TestLowOrderPoints(t *testing.T) {
	priv, _, _, err := newEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lowOrderEncodings() {
		if _, err := x25519(priv, p); !errors.Is(err, ErrWeakKey) {
			t.Errorf("%x: got %v, want ErrWeakKey", p, err)
		}
		// The crypto/ecdh backstop alone refuses them too (all-zero
		// shared secret), should the list ever miss one.
		pub, err := priv.Curve().NewPublicKey(p[:])
		if err == nil {
			if _, err := priv.ECDH(pub); err == nil {
				t.Errorf("%x: crypto/ecdh accepted a low-order point", p)
			}
		}
	}
	// An honest key is accepted.
	_, pub, _, _ := newEphemeral()
	if _, err := x25519(priv, pub); err != nil {
		t.Fatal(err)
	}

	a, b := newIdentity(t), newIdentity(t)
	for _, p := range lowOrderEncodings() {
		for _, fromInit := range []bool{true, false} {
			ic, rc := configs(t, a, b)
			erri, errr := mitm(t, ic, rc, func(fi bool, i int, body []byte) []byte {
				if fi == fromInit && i == 0 {
					copy(body[helloEphOff:], p[:]) // same offset in hello and response
				}
				return body
			})
			got := errr
			if !fromInit {
				got = erri
			}
			if !errors.Is(got, ErrWeakKey) {
				t.Fatalf("point %x from initiator=%v: initiator %v, responder %v", p, fromInit, erri, errr)
			}
		}
	}
}

func TestHandshakeBadModulus(t *testing.T) {
	key := testKey(t)
	n := key.N
	threeMod4 := new(big.Int).Add(n, bigTwo)
	square := new(big.Int).Mul(key.P, key.P) // 2048 bits, 1 mod 4
	small, err := GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]*big.Int{
		"even":           new(big.Int).Sub(n, bigOne),
		"3 mod 4":        threeMod4,
		"perfect square": square,
		"too small":      small.N,
	}
	a, b := newIdentity(t), newIdentity(t)
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			ic, rc := configs(t, a, b)
			erri, errr := mitm(t, ic, rc, func(fromInit bool, i int, body []byte) []byte {
				if fromInit {
					return body
				}
				r, err := parseResponse(body)
				if err != nil {
					t.Error(err)
					return body
				}
				r.modulus = bad.Bytes()
				return r.marshal()
			})
			if !errors.Is(erri, ErrBadModulus) || errr == nil {
				t.Fatalf("initiator %v, responder %v; want ErrBadModulus", erri, errr)
			}
		})
	}
}

// recorder records what passes through a connection in one direction.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// replay plays recorded bytes into a fresh handshake side and discards what
// it sends back.
func replay(t *testing.T, recorded []byte, side func(net.Conn) error) error {
	c, peerEnd := net.Pipe()
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		peerEnd.Write(recorded)
	}()
	go func() {
		defer wg.Done()
		io.Copy(io.Discard, peerEnd)
	}()
	err := side(c)
	c.Close()
	peerEnd.Close()
	wg.Wait()
	return err
}

// TestReplay records both sides of a good handshake, then replays each
// side's messages against a fresh peer with the same identities and BBS key:
// the fresh nonces and ephemeral keys make both fail.
func TestReplay(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	ci, cr := net.Pipe()
	defer ci.Close()
	defer cr.Close()
	ri, rr := &recorder{Conn: ci}, &recorder{Conn: cr}
	ch := make(chan error, 1)
	go func() {
		_, err := Respond(context.Background(), rr, rc)
		ch <- err
	}()
	if _, err := Initiate(context.Background(), ri, ic); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err != nil {
		t.Fatal(err)
	}

	err := replay(t, ri.out.Bytes(), func(c net.Conn) error {
		_, err := Respond(context.Background(), c, rc)
		return err
	})
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("replayed initiator: %v, want ErrBadSignature", err)
	}
	err = replay(t, rr.out.Bytes(), func(c net.Conn) error {
		_, err := Initiate(context.Background(), c, ic)
		return err
	})
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("replayed responder: %v, want ErrBadSignature", err)
	}
}

type rw struct {
	io.Reader
	io.Writer
}

func lengthPrefixed(n uint32, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), body...)
}

func TestHandshakeMessageLimits(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	// What each side reads first: a hello for the responder, a response
	// for the initiator.
	hello := (&helloMsg{bitsPerStep: 1, eph: [32]byte{9}}).marshal()
	response := (&responseMsg{bitsPerStep: 1, eph: [32]byte{9}, modulus: testKey(t).N.Bytes(), pub: []byte{1}, sig: []byte{2}}).marshal()
	cases := []struct {
		name  string
		input func(body []byte) []byte
		want  error
	}{
		{"empty", func([]byte) []byte { return nil }, ErrTruncated},
		{"short length", func([]byte) []byte { return []byte{0, 0} }, ErrTruncated},
		{"huge length", func([]byte) []byte { return lengthPrefixed(0xFFFFFFFF, nil) }, ErrMessageTooLarge},
		{"one over the limit", func([]byte) []byte { return lengthPrefixed(MaxHandshakeMessage+1, make([]byte, 100)) }, ErrMessageTooLarge},
		{"body cut short", func(b []byte) []byte { return lengthPrefixed(uint32(len(b)), b[:10]) }, ErrTruncated},
		{"field cut short", func(b []byte) []byte { return lengthPrefixed(uint32(len(b)-1), b[:len(b)-1]) }, ErrTruncated},
		{"trailing byte", func(b []byte) []byte { return lengthPrefixed(uint32(len(b)+1), append(bytes.Clone(b), 0)) }, ErrMalformed},
		{"zero length", func([]byte) []byte { return lengthPrefixed(0, nil) }, ErrMalformed},
		{"wrong type", func(b []byte) []byte { return lengthPrefixed(uint32(len(b)), append([]byte{msgFinish}, b[1:]...)) }, ErrMalformed},
		{"wrong version", func(b []byte) []byte { return lengthPrefixed(uint32(len(b)), append([]byte{b[0], 9}, b[2:]...)) }, ErrMalformed},
	}
	for _, c := range cases {
		t.Run("responder/"+c.name, func(t *testing.T) {
			_, err := Respond(context.Background(), rw{bytes.NewReader(c.input(bytes.Clone(hello))), io.Discard}, rc)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
		t.Run("initiator/"+c.name, func(t *testing.T) {
			_, err := Initiate(context.Background(), rw{bytes.NewReader(c.input(bytes.Clone(response))), io.Discard}, ic)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// The finish message, read last by the responder, is checked the same
	// way (see FuzzHandshakeMessages for arbitrary inputs).
	fin := (&finishMsg{pub: []byte{1}, sig: []byte{2}}).marshal()
	if _, err := parseFinish(fin[:len(fin)-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated finish: %v", err)
	}
	// A response whose modulus field claims more than the limit.
	r := responseMsg{modulus: make([]byte, maxModulusBytes+1), pub: []byte{1}, sig: []byte{1}}
	r.modulus[0] = 1
	if _, err := parseResponse(r.marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized modulus field: %v", err)
	}
}

func TestHandshakeContext(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ic, _ := configs(t, a, b)
	ci, cr := net.Pipe()
	defer ci.Close()
	defer cr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	// The peer reads the hello, then the context is cancelled while the
	// initiator waits for a response that never comes.
	go func() {
		readMessage(cr)
		cancel()
	}()
	_, err := Initiate(ctx, ci, ic)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// An already-expired context fails at once.
	if _, err := Initiate(ctx, ci, ic); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestConfigRequired(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	for name, c := range map[string]Config{
		"no local key":   {RemotePeer: b.id},
		"no remote peer": {LocalKey: a.priv},
		"k too large":    {LocalKey: a.priv, RemotePeer: b.id, BitsPerStep: 12},
	} {
		if _, err := Initiate(context.Background(), rw{bytes.NewReader(nil), io.Discard}, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	rc.BBSKey = nil
	if _, err := Respond(context.Background(), rw{bytes.NewReader(nil), io.Discard}, rc); err == nil {
		t.Error("responder without a BBS key: accepted")
	}
	_ = ic
}

// TestHandshakeOtherKeyTypes: identity keys whose peer IDs do not embed the
// public key (secp256k1 and ECDSA hash it) work, since the key is sent.
func TestHandshakeOtherKeyTypes(t *testing.T) {
	gen := map[string]func() (crypto.PrivKey, error){
		"secp256k1": func() (crypto.PrivKey, error) { k, _, err := crypto.GenerateSecp256k1Key(rand.Reader); return k, err },
		"ecdsa":     func() (crypto.PrivKey, error) { k, _, err := crypto.GenerateECDSAKeyPair(rand.Reader); return k, err },
	}
	for name, g := range gen {
		t.Run(name, func(t *testing.T) {
			var ids [2]identity
			for i := range ids {
				priv, err := g()
				if err != nil {
					t.Fatal(err)
				}
				id, err := peer.IDFromPrivateKey(priv)
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = identity{priv, id}
			}
			ic, rc := configs(t, ids[0], ids[1])
			si, sr, _, _, erri, errr := handshake(t, ic, rc)
			if erri != nil || errr != nil || si.key != sr.key {
				t.Fatalf("initiator %v, responder %v", erri, errr)
			}
		})
	}
}

// TestKeySchedule: the session key depends on the DH secret, the transcript
// and the BBS output, and is not the BBS output.
func TestKeySchedule(t *testing.T) {
	n := testKey(t).N
	small, err := GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	dh := bytes.Repeat([]byte{7}, 32)
	th := [32]byte{1}
	base, err := deriveKeys(dh, th, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := deriveKeys(dh, th, n, 1)
	if *again != *base {
		t.Fatal("key schedule is not deterministic")
	}
	dh2 := bytes.Clone(dh)
	dh2[0] ^= 1
	th2 := th
	th2[31] ^= 1
	for name, k := range map[string]func() (*sessionKeys, error){
		"dh":         func() (*sessionKeys, error) { return deriveKeys(dh2, th, n, 1) },
		"transcript": func() (*sessionKeys, error) { return deriveKeys(dh, th2, n, 1) },
		"modulus":    func() (*sessionKeys, error) { return deriveKeys(dh, th, small.N, 1) },
		"k":          func() (*sessionKeys, error) { return deriveKeys(dh, th, n, 2) },
	} {
		other, err := k()
		if err != nil {
			t.Fatal(err)
		}
		if other.session == base.session {
			t.Errorf("changing the %s leaves the session key unchanged", name)
		}
	}
	// Recompute the BBS output the schedule used and check it is not the key.
	seedBytes, _ := hkdf.Key(sha256.New, dh, th[:], seedInfo, (n.BitLen()+7)/8+16)
	g, err := NewGenerator(n, new(big.Int).Mod(new(big.Int).SetBytes(seedBytes), n), 1)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, BBSOutputBytes)
	g.Read(out)
	if bytes.Equal(out, base.session[:]) || bytes.Equal(out, dh) {
		t.Fatal("the BBS output is the session key")
	}
	ikm := append(bytes.Clone(dh), out...)
	okm, _ := hkdf.Key(sha256.New, ikm, th[:], keysInfo, 96)
	if !bytes.Equal(okm[:32], base.session[:]) {
		t.Fatal("session key is not HKDF(dh || bbs, salt = transcript hash)")
	}
}
