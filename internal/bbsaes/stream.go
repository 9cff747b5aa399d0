package bbsaes

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

const (
	// Version is the version of the handshake and of the sealed-stream
	// header.
	Version = 1
	// MaxFramePlaintext is the largest plaintext in one frame.
	MaxFramePlaintext = 64 << 10
	// MaxCIDBytes bounds Header.CID.
	MaxCIDBytes = 512

	tagSize       = 16
	saltSize      = 32
	commitSize    = 32
	maxFrameBytes = MaxFramePlaintext + tagSize // ciphertext of one frame
	frameBufSize  = 4 + maxFrameBytes
	finalFlag     = 1 << 31

	streamInfo = "p2pshare/bbsaes/v1 stream"
)

// Header is the authenticated header of a sealed stream.
type Header struct {
	// CID is the content ID the stream carries (at most MaxCIDBytes).
	CID []byte
	// StartChunk is the index of the first chunk the stream carries.
	StartChunk uint64
}

// Wire format of a sealed stream:
//
//	header: version (1) | len(CID) (2, big-endian) | CID | StartChunk (8) |
//	        salt (32) | commitment (32)
//	frame:  length (4, big-endian; top bit = final) | AES-256-GCM ciphertext
//
// The stream's subkey and commitment are HKDF-SHA256(session key,
// salt, "p2pshare/bbsaes/v1 stream" || writer's role || header up to the
// salt), so the header is bound into every frame and a header or key that
// does not match is caught (in constant time) before any frame is opened.
// Frame i is sealed with nonce = i as 11 bytes || final flag byte and the
// 4-byte length as additional data. The final frame ends the stream: a Reader
// never reads past it.

var framePool = sync.Pool{New: func() any {
	b := make([]byte, frameBufSize)
	return &b
}}

// streamKeys derives the AEAD and the commitment for a header. hdr is the
// header's wire form up to and including the salt.
func (s *Session) streamKeys(writerRole byte, hdr []byte) (cipher.AEAD, []byte, error) {
	salt := hdr[len(hdr)-saltSize:]
	info := make([]byte, 0, len(streamInfo)+1+len(hdr))
	info = append(info, streamInfo...)
	info = append(info, writerRole)
	info = append(info, hdr...)
	okm, err := hkdf.Key(sha256.New, s.key[:], salt, string(info), 32+commitSize)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	clear(okm[:32])
	return aead, okm[32:], nil
}

func (s *Session) remoteRole() byte {
	if s.role == roleInitiator {
		return roleResponder
	}
	return roleInitiator
}

func setNonce(nonce *[12]byte, counter uint64, final bool) {
	binary.BigEndian.PutUint64(nonce[3:11], counter)
	nonce[11] = 0
	if final {
		nonce[11] = 1
	}
}

// Writer seals a stream of bytes into frames. It is not safe for concurrent
// use. Close must be called to write the final frame.
type Writer struct {
	w       io.Writer
	aead    cipher.AEAD
	bufp    *[]byte
	buf     []byte // length prefix, then plaintext / ciphertext
	n       int    // plaintext bytes buffered at buf[4:]
	counter uint64
	nonce   [12]byte
	err     error // sticky
}

// NewWriter starts a sealed stream on w and writes its header immediately.
// Each call draws a fresh random salt, so one session can carry any number
// of streams in both directions without reusing a nonce.
func (s *Session) NewWriter(w io.Writer, h Header) (*Writer, error) {
	if len(h.CID) > MaxCIDBytes {
		return nil, fmt.Errorf("bbsaes: new writer: CID of %d bytes exceeds %d", len(h.CID), MaxCIDBytes)
	}
	hdr := make([]byte, 0, 3+len(h.CID)+8+saltSize+commitSize)
	hdr = append(hdr, Version)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(h.CID)))
	hdr = append(hdr, h.CID...)
	hdr = binary.BigEndian.AppendUint64(hdr, h.StartChunk)
	var salt [saltSize]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("bbsaes: new writer: %w", err)
	}
	hdr = append(hdr, salt[:]...)
	aead, commit, err := s.streamKeys(s.role, hdr)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: new writer: %w", err)
	}
	hdr = append(hdr, commit...)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("bbsaes: write stream header: %w", err)
	}
	bufp := framePool.Get().(*[]byte)
	return &Writer{w: w, aead: aead, bufp: bufp, buf: *bufp}, nil
}

// seal seals src (either w.buf[4:4+len(src)] or a slice of the caller's
// data) into w.buf and writes the frame with one Write.
func (w *Writer) seal(src []byte, final bool) error {
	if w.counter == 1<<64-1 {
		return errors.New("bbsaes: too many frames in one stream")
	}
	prefix := uint32(len(src) + tagSize)
	if final {
		prefix |= finalFlag
	}
	binary.BigEndian.PutUint32(w.buf[:4], prefix)
	setNonce(&w.nonce, w.counter, final)
	ct := w.aead.Seal(w.buf[4:4], w.nonce[:], src, w.buf[:4])
	w.counter++
	if _, err := w.w.Write(w.buf[:4+len(ct)]); err != nil {
		return fmt.Errorf("bbsaes: write frame %d: %w", w.counter-1, err)
	}
	return nil
}

// Write buffers p into frames of MaxFramePlaintext bytes, writing each full
// frame as soon as it is complete. Whole frames of p are sealed straight
// from p without an intermediate copy.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.n == 0 && len(p) >= MaxFramePlaintext {
			if err := w.seal(p[:MaxFramePlaintext], false); err != nil {
				w.fail(err)
				return written, err
			}
			p = p[MaxFramePlaintext:]
			written += MaxFramePlaintext
			continue
		}
		k := copy(w.buf[4+w.n:4+MaxFramePlaintext], p)
		w.n += k
		p = p[k:]
		written += k
		if w.n == MaxFramePlaintext {
			if err := w.seal(w.buf[4:4+w.n], false); err != nil {
				w.fail(err)
				return written, err
			}
			w.n = 0
		}
	}
	return written, nil
}

// ReadFrom reads r to EOF straight into the frame buffer, sealing and
// writing each full frame. It does not write the final frame; call Close.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	for {
		k, err := r.Read(w.buf[4+w.n : 4+MaxFramePlaintext])
		w.n += k
		total += int64(k)
		if w.n == MaxFramePlaintext {
			if serr := w.seal(w.buf[4:4+w.n], false); serr != nil {
				w.fail(serr)
				return total, serr
			}
			w.n = 0
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("bbsaes: read source: %w", err)
		}
	}
}

// Close seals what is buffered as the final frame (possibly empty) and
// writes it. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		if errors.Is(w.err, ErrClosed) {
			return nil
		}
		return w.err
	}
	if err := w.seal(w.buf[4:4+w.n], true); err != nil {
		w.fail(err)
		return err
	}
	w.fail(ErrClosed)
	return nil
}

// fail makes err sticky and returns the frame buffer to the pool.
func (w *Writer) fail(err error) {
	w.err = err
	w.n = 0
	if w.bufp != nil {
		framePool.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
}

// Reader opens a sealed stream. It reads exactly the stream's bytes from the
// underlying reader and nothing after its final frame, so further data (the
// next sealed stream, a protocol message) can follow on the same stream.
// It is not safe for concurrent use.
type Reader struct {
	r       io.Reader
	aead    cipher.AEAD
	hdr     Header
	bufp    *[]byte
	buf     []byte
	plain   []byte // opened, not yet returned plaintext (in buf)
	counter uint64
	nonce   [12]byte
	prefix  [4]byte
	final   bool // final frame opened
	strict  bool // standalone: bytes after the final frame are an error
	err     error
}

// NewReader reads and authenticates a sealed stream's header from r. Only
// a stream written by the other side of the session is accepted.
//
// Trailing data: the Reader stops at the final frame and leaves whatever
// follows to the caller; on a libp2p stream that is the next message or the
// next sealed stream, whose header check refuses anything left over from
// this one (such as a replayed frame). Use NewStandaloneReader when the
// sealed stream should be all of r.
func (s *Session) NewReader(r io.Reader) (*Reader, error) {
	var fixed [3]byte
	if n, err := io.ReadFull(r, fixed[:]); err != nil {
		if n == 0 && err == io.EOF {
			return nil, fmt.Errorf("bbsaes: read stream header: %w", io.EOF)
		}
		return nil, fmt.Errorf("bbsaes: read stream header: %w", ioErr(err))
	}
	if fixed[0] != Version {
		return nil, fmt.Errorf("%w: stream header version %d, want %d", ErrBadVersion, fixed[0], Version)
	}
	cidLen := int(binary.BigEndian.Uint16(fixed[1:]))
	if cidLen > MaxCIDBytes {
		return nil, fmt.Errorf("%w: stream header CID length %d exceeds %d", ErrTampered, cidLen, MaxCIDBytes)
	}
	hdr := make([]byte, 3+cidLen+8+saltSize+commitSize)
	copy(hdr, fixed[:])
	if _, err := io.ReadFull(r, hdr[3:]); err != nil {
		return nil, fmt.Errorf("bbsaes: read stream header: %w", ioErr(err))
	}
	signed, got := hdr[:len(hdr)-commitSize], hdr[len(hdr)-commitSize:]
	aead, want, err := s.streamKeys(s.remoteRole(), signed)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: new reader: %w", err)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, fmt.Errorf("%w: stream header commitment does not match", ErrTampered)
	}
	h := Header{
		CID:        hdr[3 : 3+cidLen : 3+cidLen],
		StartChunk: binary.BigEndian.Uint64(hdr[3+cidLen:]),
	}
	bufp := framePool.Get().(*[]byte)
	return &Reader{r: r, aead: aead, hdr: h, bufp: bufp, buf: *bufp}, nil
}

// NewStandaloneReader is NewReader for a sealed stream that is the whole of
// r (a file, a buffer): after the final frame it reads once more and
// reports ErrTrailingData instead of io.EOF if r has anything left.
func (s *Session) NewStandaloneReader(r io.Reader) (*Reader, error) {
	rd, err := s.NewReader(r)
	if err != nil {
		return nil, err
	}
	rd.strict = true
	return rd, nil
}

// Header returns the stream's authenticated header.
func (r *Reader) Header() Header { return r.hdr }

// Read returns opened plaintext. It returns io.EOF only after a valid final
// frame; a frame that fails authentication yields no plaintext and an error
// wrapping ErrTampered (or ErrTruncated, ErrFrameTooLarge, ErrTrailingData).
// Errors are sticky.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if r.final {
			r.finish()
			return 0, r.err
		}
		n, err := r.next(p)
		if err != nil {
			r.setErr(err)
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// WriteTo writes the stream's plaintext to w, frame by frame, each frame
// only after it has been authenticated. It returns nil at the end of a valid
// stream.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.plain) > 0 {
			k, err := w.Write(r.plain)
			total += int64(k)
			r.plain = r.plain[k:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		if r.final {
			r.finish()
			continue
		}
		if _, err := r.next(nil); err != nil {
			r.setErr(err)
		}
	}
}

// next reads and opens one frame. If p can hold the frame's plaintext, it
// is opened straight into p and its length returned; otherwise it is opened
// in place into r.plain and 0 is returned.
func (r *Reader) next(p []byte) (int, error) {
	if _, err := io.ReadFull(r.r, r.prefix[:]); err != nil {
		if err == io.EOF {
			return 0, fmt.Errorf("%w: sealed stream ended before its final frame (after %d frames)", ErrTruncated, r.counter)
		}
		return 0, fmt.Errorf("bbsaes: frame %d length: %w", r.counter, ioErr(err))
	}
	v := binary.BigEndian.Uint32(r.prefix[:])
	final := v&finalFlag != 0
	l := int(v &^ finalFlag)
	if l > maxFrameBytes {
		return 0, fmt.Errorf("%w: frame %d is %d bytes, limit %d", ErrFrameTooLarge, r.counter, l, maxFrameBytes)
	}
	if l < tagSize {
		return 0, fmt.Errorf("%w: frame %d is %d bytes, shorter than its tag", ErrTampered, r.counter, l)
	}
	ct := r.buf[:l]
	if _, err := io.ReadFull(r.r, ct); err != nil {
		return 0, fmt.Errorf("bbsaes: frame %d: %w", r.counter, ioErr(err))
	}
	setNonce(&r.nonce, r.counter, final)
	var dst []byte
	direct := len(p) >= l-tagSize
	if direct {
		dst = p[:0]
	} else {
		dst = r.buf[:0]
	}
	pt, err := r.aead.Open(dst, r.nonce[:], ct, r.prefix[:])
	if err != nil {
		if direct {
			clear(p[:l-tagSize])
		}
		return 0, fmt.Errorf("%w: frame %d does not authenticate", ErrTampered, r.counter)
	}
	r.counter++
	r.final = final
	if direct {
		return len(pt), nil
	}
	r.plain = pt
	return 0, nil
}

// finish is called once the final frame's plaintext has been consumed.
func (r *Reader) finish() {
	if r.strict {
		var one [1]byte
		n, err := io.ReadFull(r.r, one[:])
		switch {
		case n > 0:
			r.setErr(fmt.Errorf("%w: after frame %d", ErrTrailingData, r.counter-1))
			return
		case err != nil && err != io.EOF:
			r.setErr(fmt.Errorf("bbsaes: after final frame: %w", err))
			return
		}
	}
	r.setErr(io.EOF)
}

func (r *Reader) setErr(err error) {
	r.err = err
	r.plain = nil
	if r.bufp != nil {
		framePool.Put(r.bufp)
		r.bufp, r.buf = nil, nil
	}
}
