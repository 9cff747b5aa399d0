package bbsaes

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
)

var testSizes = []int{0, 1, MaxFramePlaintext - 1, MaxFramePlaintext, MaxFramePlaintext + 1, 2*MaxFramePlaintext + 100, 3<<20 + 12345}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// seal writes data as one sealed stream with the given write method.
func seal(t testing.TB, s *Session, h Header, data []byte, method string) []byte {
	t.Helper()
	var wire bytes.Buffer
	w, err := s.NewWriter(&wire, h)
	if err != nil {
		t.Fatal(err)
	}
	switch method {
	case "write":
		_, err = w.Write(data)
	case "small writes":
		for p := data; len(p) > 0 && err == nil; {
			k := min(len(p), 1000)
			_, err = w.Write(p[:k])
			p = p[k:]
		}
	case "readfrom":
		_, err = io.Copy(w, onlyReader{bytes.NewReader(data)})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return wire.Bytes()
}

// onlyReader hides WriterTo / ReaderFrom so io.Copy picks the other side's
// fast path (or plain Read calls).
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// open reads a sealed stream with the given read method, returning what it
// got before the first error.
func open(s *Session, wire []byte, method string) ([]byte, error) {
	r, err := s.NewStandaloneReader(bytes.NewReader(wire))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	switch method {
	case "writeto":
		_, err = r.WriteTo(&out)
	case "small reads":
		_, err = io.CopyBuffer(onlyWriter{&out}, onlyReader{r}, make([]byte, 1000))
	default: // large reads: frames open straight into the caller's buffer
		_, err = io.CopyBuffer(onlyWriter{&out}, onlyReader{r}, make([]byte, 200<<10))
	}
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	si, sr := sessionPair(t)
	for _, size := range testSizes {
		data := randomBytes(size)
		for _, wm := range []string{"write", "small writes", "readfrom"} {
			wire := seal(t, si, Header{CID: []byte("cid"), StartChunk: 7}, data, wm)
			frames := max(1, (size+MaxFramePlaintext)/MaxFramePlaintext)
			if want := 3 + 3 + 8 + saltSize + commitSize + size + frames*(4+tagSize); len(wire) != want {
				t.Fatalf("size %d %s: %d wire bytes, want %d", size, wm, len(wire), want)
			}
			for _, rm := range []string{"writeto", "small reads", "large reads"} {
				got, err := open(sr, wire, rm)
				if err != nil {
					t.Fatalf("size %d, %s, %s: %v", size, wm, rm, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("size %d, %s, %s: plaintext differs", size, wm, rm)
				}
			}
		}
	}
	// Responder to initiator works the same.
	data := randomBytes(100000)
	if got, err := open(si, seal(t, sr, Header{}, data, "write"), "writeto"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("responder to initiator: %v", err)
	}
}

func TestHeaderAuthenticated(t *testing.T) {
	si, sr := sessionPair(t)
	h := Header{CID: []byte("bafkreiexample"), StartChunk: 1 << 40}
	wire := seal(t, si, h, []byte("x"), "write")
	r, err := sr.NewReader(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header(); !bytes.Equal(got.CID, h.CID) || got.StartChunk != h.StartChunk {
		t.Fatalf("header %+v, want %+v", got, h)
	}
	if _, err := si.NewWriter(io.Discard, Header{CID: make([]byte, MaxCIDBytes+1)}); err == nil {
		t.Fatal("oversized CID accepted by the writer")
	}
}

func TestCiphertextHidesPlaintext(t *testing.T) {
	si, _ := sessionPair(t)
	data := bytes.Repeat([]byte("SECRET-PLAINTEXT"), 20000) // 320 000 bytes
	cid := []byte("cid-is-public")
	wire := seal(t, si, Header{CID: cid}, data, "write")
	for _, probe := range [][]byte{data[:16], []byte("SECRET"), []byte("PLAINTEXT")} {
		if bytes.Contains(wire, probe) {
			t.Fatalf("wire contains plaintext %q", probe)
		}
	}
	if !bytes.Contains(wire, cid) {
		t.Fatal("test premise: the (public) CID should be on the wire")
	}
}

// TestStreamsShareAConnection sends several sealed streams in both
// directions over one net.Pipe, each followed by a plain marker, and checks
// that each Reader stops exactly at its final frame.
func TestStreamsShareAConnection(t *testing.T) {
	si, sr := sessionPair(t)
	ci, cr := net.Pipe()
	defer ci.Close()
	defer cr.Close()
	marker := []byte("NEXT")
	for i, size := range testSizes {
		from, to, wc, rc := si, sr, ci, cr
		if i%2 == 1 {
			from, to, wc, rc = sr, si, cr, ci
		}
		data := randomBytes(size)
		errc := make(chan error, 1)
		go func() {
			w, err := from.NewWriter(wc, Header{StartChunk: uint64(i)})
			if err == nil {
				_, err = w.Write(data)
			}
			if err == nil {
				err = w.Close()
			}
			if err == nil {
				_, err = wc.Write(marker)
			}
			errc <- err
		}()
		r, err := to.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("stream %d: %v", i, err)
		}
		m := make([]byte, len(marker))
		if _, err := io.ReadFull(rc, m); err != nil || !bytes.Equal(m, marker) {
			t.Fatalf("stream %d: after the stream got %q, %v; the reader over-read", i, m, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// frameSpans returns the [start, end) byte ranges of the header and of each
// frame of a sealed stream.
func frameSpans(t testing.TB, wire []byte) (header [2]int, frames [][2]int) {
	t.Helper()
	cidLen := int(binary.BigEndian.Uint16(wire[1:3]))
	off := 3 + cidLen + 8 + saltSize + commitSize
	header = [2]int{0, off}
	for off < len(wire) {
		l := int(binary.BigEndian.Uint32(wire[off:]) &^ finalFlag)
		frames = append(frames, [2]int{off, off + 4 + l})
		off += 4 + l
	}
	if off != len(wire) {
		t.Fatal("test premise: frames do not tile the stream")
	}
	return header, frames
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// rawFrame seals one frame with arbitrary counter and final flag, as an
// attacker holding the key could; it checks that the Reader enforces order
// and finality itself.
func rawFrame(w *Writer, counter uint64, final bool, data []byte) []byte {
	var buf bytes.Buffer
	w.w = &buf
	w.counter = counter
	if err := w.seal(data, final); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestTampering(t *testing.T) {
	si, sr := sessionPair(t)
	data := randomBytes(2*MaxFramePlaintext + 1000) // frames: full, full, final
	wire := seal(t, si, Header{CID: []byte("cid")}, data, "write")
	hdr, fr := frameSpans(t, wire)
	if len(fr) != 3 {
		t.Fatalf("test premise: %d frames", len(fr))
	}
	H := wire[hdr[0]:hdr[1]]
	F := func(i int) []byte { return wire[fr[i][0]:fr[i][1]] }
	other := seal(t, si, Header{CID: []byte("cid")}, data, "write") // same plaintext, another stream
	_, ofr := frameSpans(t, other)

	// Frames sealed by hand under this stream's key.
	w, err := si.NewWriter(io.Discard, Header{})
	if err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	w2, _ := si.NewWriter(&hb, Header{CID: []byte("cid")})
	H2 := bytes.Clone(hb.Bytes())
	twoFinals := cat(H2, rawFrame(w2, 0, true, []byte("a")), rawFrame(w2, 1, true, []byte("b")))
	gap := cat(H2, rawFrame(w2, 0, false, []byte("a")), rawFrame(w2, 2, true, []byte("b")))
	w.Close()

	tooLong := binary.BigEndian.AppendUint32(nil, maxFrameBytes+1)
	huge := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
	short := binary.BigEndian.AppendUint32(nil, tagSize-1)

	cases := []struct {
		name string
		wire []byte
		want error
		good int // frames whose plaintext may be delivered before the error
		// plain is the stream's plaintext when not data.
		plain []byte
	}{
		{"empty", nil, io.EOF, 0, nil},
		{"header cut short", H[:20], ErrTruncated, 0, nil},
		{"truncated after header", H, ErrTruncated, 0, nil},
		{"truncated after frame 0", cat(H, F(0)), ErrTruncated, 1, nil},
		{"missing final frame", cat(H, F(0), F(1)), ErrTruncated, 2, nil},
		{"truncated inside a frame", cat(H, F(0), F(1)[:100]), ErrTruncated, 1, nil},
		{"truncated inside a length", cat(H, F(0), F(1)[:2]), ErrTruncated, 1, nil},
		{"final frame without its last byte", wire[:len(wire)-1], ErrTruncated, 2, nil},
		{"swapped frames", cat(H, F(1), F(0), F(2)), ErrTampered, 0, nil},
		{"duplicated frame", cat(H, F(0), F(0), F(1), F(2)), ErrTampered, 1, nil},
		{"dropped middle frame", cat(H, F(0), F(2)), ErrTampered, 1, nil},
		{"frame from another stream", cat(H, F(0), other[ofr[1][0]:ofr[1][1]], F(2)), ErrTampered, 1, nil},
		{"header from another stream", cat(other[:hdr[1]], F(0), F(1), F(2)), ErrTampered, 0, nil},
		{"final flag set on a middle frame", cat(H, F(0), flipBit(F(1), 0, 7), F(2)), ErrTampered, 1, nil},
		{"final flag cleared", cat(H, F(0), F(1), flipBit(F(2), 0, 7)), ErrTampered, 2, nil},
		{"two final frames", twoFinals, ErrTrailingData, 1, []byte("a")},
		{"skipped counter", gap, ErrTampered, 1, []byte("a")},
		{"trailing data", cat(wire, []byte{0}), ErrTrailingData, 3, nil},
		{"trailing copy of the final frame", cat(wire, F(2)), ErrTrailingData, 3, nil},
		{"frame length above maximum", cat(H, tooLong, make([]byte, 100)), ErrFrameTooLarge, 0, nil},
		{"frame length 2^31-1 and final", cat(H, huge), ErrFrameTooLarge, 0, nil},
		{"frame shorter than a tag", cat(H, short, make([]byte, tagSize)), ErrTampered, 0, nil},
		{"bad version", cat([]byte{Version + 1}, H[1:], F(0)), ErrBadVersion, 0, nil},
		{"CID length above maximum", cat([]byte{Version, 0xff, 0xff}, H[3:]), ErrTampered, 0, nil},
	}
	for _, c := range cases {
		for _, rm := range []string{"writeto", "small reads", "large reads"} {
			t.Run(c.name+"/"+rm, func(t *testing.T) {
				got, err := open(sr, c.wire, rm)
				if !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
				if c.want != io.EOF && errors.Is(err, io.EOF) {
					t.Fatalf("%v also matches io.EOF: a caller could take it for a clean end", err)
				}
				plain := data
				if c.plain != nil {
					plain = c.plain
				}
				checkPrefix(t, got, c.good, plain)
			})
		}
	}

	// The initiator cannot read its own stream reflected back at it.
	if _, err := open(si, wire, "writeto"); !errors.Is(err, ErrTampered) {
		t.Fatalf("reflected stream: %v", err)
	}
	// A different session cannot read it.
	_, sr2 := sessionPair(t)
	if _, err := open(sr2, wire, "writeto"); !errors.Is(err, ErrTampered) {
		t.Fatalf("other session: %v", err)
	}
}

// checkPrefix checks that got is the plaintext of at most the first good
// frames: nothing of a frame that failed.
func checkPrefix(t *testing.T, got []byte, good int, data []byte) {
	t.Helper()
	limit := min(len(data), good*MaxFramePlaintext)
	if len(got) > limit || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("delivered %d bytes, more than the %d of the good frames or not their plaintext", len(got), limit)
	}
	if len(got)%MaxFramePlaintext != 0 && len(got) != limit {
		t.Fatalf("delivered %d bytes: part of a frame", len(got))
	}
}

func flipBit(b []byte, i int, bit uint) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1 << bit
	return b
}

// TestBitFlips flips single bits all over a two-frame stream (every bit of
// the header and the length prefixes, bits at both ends of each ciphertext
// and tag, and random positions); each must fail without delivering the
// damaged frame's plaintext.
func TestBitFlips(t *testing.T) {
	si, sr := sessionPair(t)
	data := randomBytes(MaxFramePlaintext + 500)
	wire := seal(t, si, Header{CID: []byte("cid"), StartChunk: 3}, data, "write")
	hdr, fr := frameSpans(t, wire)
	var positions []int
	for i := hdr[0]; i < hdr[1]; i++ {
		positions = append(positions, i)
	}
	for _, f := range fr {
		for i := f[0]; i < f[0]+4+40 && i < f[1]; i++ {
			positions = append(positions, i)
		}
		for i := max(f[0], f[1]-40); i < f[1]; i++ {
			positions = append(positions, i)
		}
	}
	var rnd [200]byte
	rand.Read(rnd[:])
	for i := 0; i < len(rnd); i += 2 {
		positions = append(positions, int(binary.BigEndian.Uint16(rnd[i:]))%len(wire))
	}
	frameOf := func(pos int) int {
		for i, f := range fr {
			if pos >= f[0] && pos < f[1] {
				return i
			}
		}
		return 0 // header
	}
	for _, pos := range positions {
		for bit := uint(0); bit < 8; bit++ {
			bad := flipBit(wire, pos, bit)
			got, err := open(sr, bad, "large reads")
			if err == nil || err == io.EOF {
				t.Fatalf("bit %d of byte %d flipped: no error", bit, pos)
			}
			if len(got) > frameOf(pos)*MaxFramePlaintext || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("bit %d of byte %d flipped: delivered %d bytes", bit, pos, len(got))
			}
		}
	}
}

// TestNextStreamRefusesLeftovers: on a shared stream the Reader stops at the
// final frame; anything left over from it (here a replayed final frame) is
// refused by the next stream's header check.
func TestNextStreamRefusesLeftovers(t *testing.T) {
	si, sr := sessionPair(t)
	wire := seal(t, si, Header{}, []byte("hello"), "write")
	_, fr := frameSpans(t, wire)
	in := bytes.NewReader(cat(wire, wire[fr[0][0]:fr[0][1]]))
	r, err := sr.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
	if _, err := sr.NewReader(in); !errors.Is(err, ErrBadVersion) && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("leftover frame taken as a stream header: %v", err)
	}
}

func TestWriterClosed(t *testing.T) {
	si, _ := sessionPair(t)
	w, err := si.NewWriter(io.Discard, Header{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := w.ReadFrom(bytes.NewReader([]byte("x"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("readfrom after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	// A failing underlying writer is reported and sticks.
	w, _ = si.NewWriter(io.Discard, Header{})
	w.w = failWriter{}
	if _, err := w.Write(make([]byte, MaxFramePlaintext)); err == nil {
		t.Fatal("write error lost")
	}
	if err := w.Close(); err == nil {
		t.Fatal("close after a write error succeeded")
	}
	// A final frame that cannot be written is reported by every Close.
	w, _ = si.NewWriter(io.Discard, Header{})
	w.w = failWriter{}
	for i := 0; i < 2; i++ {
		if err := w.Close(); err == nil {
			t.Fatalf("close %d: lost the write error", i)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestSteadyStateAllocations(t *testing.T) {
	si, sr := sessionPair(t)
	var wire bytes.Buffer
	w, _ := si.NewWriter(&wire, Header{})
	r, _ := sr.NewReader(&wire)
	src := randomBytes(MaxFramePlaintext)
	dst := make([]byte, MaxFramePlaintext)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := w.Write(src); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per frame, want 0", allocs)
	}
	if !bytes.Equal(src, dst) {
		t.Fatal("plaintext differs")
	}
}
