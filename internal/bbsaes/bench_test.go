package bbsaes

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// BenchmarkHandshake measures a full Initiate + Respond over net.Pipe,
// including the BBS output from a 2048-bit modulus (key made once, outside
// the timer).
func BenchmarkHandshake(b *testing.B) {
	a, c := newIdentity(b), newIdentity(b)
	ic, rc := configs(b, a, c)
	b.ResetTimer()
	for b.Loop() {
		ci, cr := net.Pipe()
		ch := make(chan error, 1)
		go func() {
			_, err := Respond(context.Background(), cr, rc)
			ch <- err
		}()
		if _, err := Initiate(context.Background(), ci, ic); err != nil {
			b.Fatal(err)
		}
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
		ci.Close()
		cr.Close()
	}
}

// BenchmarkBBS32Bytes measures the BBS part of the key schedule alone.
func BenchmarkBBS32Bytes(b *testing.B) {
	key := testKey(b)
	seed := new(big.Int).Rsh(key.N, 3)
	out := make([]byte, BBSOutputBytes)
	for b.Loop() {
		g, err := NewGenerator(key.N, seed, 1)
		if err != nil {
			b.Fatal(err)
		}
		g.Read(out)
	}
}

// frameConn is an in-memory, single-frame transport for the layer
// benchmarks: Write hands the frame's bytes over by reference (the Writer
// does not touch them again before the Reader has consumed them, since the
// benchmark alternates one Write and one Read), so the figures measure the
// layer and not a memmove of the transport.
type frameConn struct {
	pending []byte
}

func (c *frameConn) Write(p []byte) (int, error) {
	if len(c.pending) != 0 {
		return 0, errors.New("frameConn: previous frame not read")
	}
	c.pending = p
	return len(p), nil
}

func (c *frameConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// BenchmarkSealOpen64K seals a 64 KiB frame with a Writer and opens it with
// a Reader (straight into the caller's buffer), per iteration.
func BenchmarkSealOpen64K(b *testing.B) {
	si, sr := sessionPair(b)
	var conn frameConn
	w, err := si.NewWriter(&conn, Header{CID: []byte("bench")})
	if err != nil {
		b.Fatal(err)
	}
	hdr := append([]byte(nil), conn.pending...)
	conn.pending = nil
	r, err := sr.NewReader(io.MultiReader(bytes.NewReader(hdr), &conn))
	if err != nil {
		b.Fatal(err)
	}
	src := make([]byte, MaxFramePlaintext)
	rand.Read(src)
	dst := make([]byte, MaxFramePlaintext)
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := w.Write(src); err != nil {
			b.Fatal(err)
		}
		if n, err := r.Read(dst); err != nil || n != MaxFramePlaintext {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkSealOpen64KBuffered is BenchmarkSealOpen64K through a
// bytes.Buffer, which copies each frame in and out as a socket would.
func BenchmarkSealOpen64KBuffered(b *testing.B) {
	si, sr := sessionPair(b)
	var wire bytes.Buffer
	w, _ := si.NewWriter(&wire, Header{CID: []byte("bench")})
	r, err := sr.NewReader(&wire)
	if err != nil {
		b.Fatal(err)
	}
	src := make([]byte, MaxFramePlaintext)
	dst := make([]byte, MaxFramePlaintext)
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(src); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareAESGCM64K is the baseline: crypto/aes GCM Seal and Open of
// 64 KiB, out of place, with preallocated buffers.
func BenchmarkBareAESGCM64K(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	src := make([]byte, MaxFramePlaintext)
	ct := make([]byte, 0, MaxFramePlaintext+tagSize)
	dst := make([]byte, 0, MaxFramePlaintext)
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	for b.Loop() {
		ct = aead.Seal(ct[:0], nonce, src, nil)
		var err error
		if dst, err = aead.Open(dst[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLayerVsBare64K alternates one layered frame (Writer + Reader, as
// in BenchmarkSealOpen64K) and one bare AES-GCM Seal+Open of 64 KiB in the
// same loop, and reports the ratio of their times, so that load from other
// processes hits both alike.
func BenchmarkLayerVsBare64K(b *testing.B) {
	si, sr := sessionPair(b)
	var conn frameConn
	w, err := si.NewWriter(&conn, Header{CID: []byte("bench")})
	if err != nil {
		b.Fatal(err)
	}
	hdr := append([]byte(nil), conn.pending...)
	conn.pending = nil
	r, err := sr.NewReader(io.MultiReader(bytes.NewReader(hdr), &conn))
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	src := make([]byte, MaxFramePlaintext)
	rand.Read(src)
	dst := make([]byte, MaxFramePlaintext)
	ct := make([]byte, 0, MaxFramePlaintext+tagSize)
	var layer, bare time.Duration
	b.SetBytes(2 * MaxFramePlaintext)
	for b.Loop() {
		t0 := time.Now()
		if _, err := w.Write(src); err != nil {
			b.Fatal(err)
		}
		if n, err := r.Read(dst); err != nil || n != MaxFramePlaintext {
			b.Fatal(n, err)
		}
		t1 := time.Now()
		ct = aead.Seal(ct[:0], nonce, src, nil)
		if _, err := aead.Open(dst[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		layer += t1.Sub(t0)
		bare += t2.Sub(t1)
	}
	b.ReportMetric(float64(layer)/float64(bare), "layer/bare")
	b.ReportMetric(float64(MaxFramePlaintext)*float64(b.N)/layer.Seconds()/1e6, "layer-MB/s")
	b.ReportMetric(float64(MaxFramePlaintext)*float64(b.N)/bare.Seconds()/1e6, "bare-MB/s")
}
