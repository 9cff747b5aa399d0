package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// errBadData marks a provider that sent data that fails verification: a
// bad chunk, a tampered sealed stream, a wrong header or length. Such a
// provider is dropped for the rest of the download.
var errBadData = errors.New("bad data")

// refusedError is a non-OK FetchResponse.
type refusedError struct {
	status proto.FetchResponse_Status
	msg    string
}

func (e *refusedError) Error() string {
	if e.msg == "" {
		return "refused: " + e.status.String()
	}
	return fmt.Sprintf("refused: %s (%s)", e.status, e.msg)
}

// conn is the fetcher's end of one fetch stream.
type conn struct {
	st   network.Stream
	r    *proto.Reader
	sess *bbsaes.Session
	peer peer.ID
	c    cid.Cid
	stop func() bool // unregisters the ctx watcher
	act  *activity
	// reused: taken from the kept sessions (Service.connect); answered:
	// a response was read on it during the current use.
	reused, answered bool
	// ctx is the context of the current use; inflight counts requests
	// sent on it and not yet read (see keepable).
	// watched is closed when the watcher of the current use has run.
	ctx      context.Context
	inflight atomic.Int32
	watched  chan struct{}
}

// arm starts a use of cn under ctx: when ctx ends, the stream is reset
// (interrupting any read or write) unless it may be kept (keepable).
func (cn *conn) arm(ctx context.Context) {
	watched := make(chan struct{})
	cn.ctx, cn.watched = ctx, watched
	cn.stop = context.AfterFunc(ctx, func() {
		defer close(watched)
		if !keepable(ctx, &cn.inflight) {
			cn.st.Reset()
		}
	})
}

// keepable reports whether a stream whose use's ctx ended may still be
// kept for the next download: the ctx ended because the download completed
// (another provider sent the last chunk) while nothing was in flight on the
// stream, so the stream is in order.
func keepable(ctx context.Context, inflight *atomic.Int32) bool {
	return errors.Is(context.Cause(ctx), errWorkDone) && inflight.Load() == 0
}

// begin reserves a request slot on cn, unless its ctx has ended; the
// caller then sends and calls done once the answer is read.
func (cn *conn) begin() error {
	cn.inflight.Add(1)
	// With the count raised first, either watch sees it and resets the
	// stream, or this sees the ctx ended and nothing is sent.
	if err := cn.ctx.Err(); err != nil {
		cn.inflight.Add(-1)
		return err
	}
	return nil
}

func (cn *conn) done() { cn.inflight.Add(-1) }

// dial opens a fetch stream to p and runs the handshake. The stream is
// reset when ctx ends.
func (s *Service) dial(ctx context.Context, ai peer.AddrInfo, c cid.Cid) (*conn, error) {
	h := s.cfg.Host
	if len(ai.Addrs) > 0 {
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	}
	sctx := ctx
	if s.cfg.Reach != nil {
		var err error
		if sctx, err = s.cfg.Reach(ctx, ai); err != nil {
			return nil, err
		}
	}
	dctx, cancel := context.WithTimeout(sctx, handshakeTimeout)
	defer cancel()
	st, err := newFetchStream(dctx, h, ai.ID, proto.FetchID)
	if err != nil {
		return nil, err
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return nil, err
	}
	st.SetDeadline(time.Now().Add(handshakeTimeout))
	r := proto.NewReader(st, proto.MaxResponseSize)
	sess, err := bbsaes.Initiate(dctx, struct {
		io.Reader
		io.Writer
	}{r, st}, bbsaes.Config{
		ProtocolID:     proto.FetchID,
		LocalKey:       h.Peerstore().PrivKey(h.ID()),
		RemotePeer:     st.Conn().RemotePeer(),
		MinModulusBits: s.cfg.MinModulusBits,
	})
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	st.SetDeadline(time.Time{})
	cn := &conn{st: st, r: r, sess: sess, peer: ai.ID, c: c, act: &s.act}
	cn.arm(ctx)
	return cn, nil
}

// close ends the stream politely; reset aborts it.
func (cn *conn) close() {
	cn.stop()
	cn.st.Close()
}

func (cn *conn) reset() {
	cn.stop()
	cn.st.Reset()
}

func (cn *conn) send(req *proto.FetchRequest) error {
	cn.st.SetWriteDeadline(time.Now().Add(ioTimeout))
	return proto.WriteMsg(cn.st, req)
}

func (cn *conn) requestChunks(first, count int) error {
	return cn.send(&proto.FetchRequest{Kind: proto.FetchRequest_CHUNKS, Cid: cn.c.Bytes(), FirstChunk: uint64(first), Count: uint32(count)})
}

// response reads a FetchResponse and opens the sealed stream that follows,
// checking its header and the announced length.
func (cn *conn) response(start uint64, wantLen uint64) (*bbsaes.Reader, error) {
	cn.st.SetReadDeadline(time.Now().Add(ioTimeout))
	var resp proto.FetchResponse
	if err := cn.r.ReadMsg(&resp); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	cn.answered = true
	if resp.GetStatus() != proto.FetchResponse_OK {
		return nil, &refusedError{resp.GetStatus(), resp.GetMessage()}
	}
	if resp.GetLength() != wantLen {
		return nil, fmt.Errorf("%w: announced %d bytes, want %d", errBadData, resp.GetLength(), wantLen)
	}
	sr, err := cn.sess.NewReader(cn.r)
	if err != nil {
		return nil, sealErr(err)
	}
	h := sr.Header()
	if !bytes.Equal(h.CID, cn.c.Bytes()) || h.StartChunk != start {
		return nil, fmt.Errorf("%w: sealed stream header names another CID or chunk", errBadData)
	}
	return sr, nil
}

// sealErr classifies an error from a sealed stream: authentication and
// format failures are the provider's fault; truncation and I/O errors are a
// lost connection.
func sealErr(err error) error {
	switch {
	case errors.Is(err, bbsaes.ErrTampered), errors.Is(err, bbsaes.ErrFrameTooLarge),
		errors.Is(err, bbsaes.ErrBadVersion), errors.Is(err, bbsaes.ErrTrailingData):
		return fmt.Errorf("%w: %w", errBadData, err)
	}
	return err
}

// finish reads the end of a sealed stream: exactly its final frame, no
// more plaintext.
func (cn *conn) finish(sr *bbsaes.Reader) error {
	cn.st.SetReadDeadline(time.Now().Add(ioTimeout))
	var one [1]byte
	n, err := sr.Read(one[:])
	if n > 0 {
		return fmt.Errorf("%w: sealed stream longer than announced", errBadData)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		// A zero-length read without EOF: try once more.
		if n, err = sr.Read(one[:]); n == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		if n > 0 {
			return fmt.Errorf("%w: sealed stream longer than announced", errBadData)
		}
	}
	return sealErr(err)
}

// readFull reads len(b) plaintext bytes, refreshing the read deadline.
func (cn *conn) readFull(sr *bbsaes.Reader, b []byte) error {
	return cn.readFullBy(sr, b, time.Now().Add(ioTimeout))
}

// readFullBy reads len(b) plaintext bytes by the deadline.
func (cn *conn) readFullBy(sr *bbsaes.Reader, b []byte, deadline time.Time) error {
	cn.st.SetReadDeadline(deadline)
	if _, err := io.ReadFull(sr, b); err != nil {
		if errors.Is(err, bbsaes.ErrTruncated) {
			return err // the connection ended mid-stream: lost, not lying
		}
		// A valid final frame before the announced length: short stream.
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: sealed stream shorter than announced", errBadData)
		}
		return sealErr(err)
	}
	cn.act.touch(cn.peer)
	return nil
}

// refusedManifestError is a manifest whose header checkHeader refused
// (it disagrees with the catalogue or ticket, has too many chunks, or the
// file does not fit on the disk): the provider cannot serve this download.
type refusedManifestError struct{ err error }

func (e *refusedManifestError) Error() string { return "refused: " + e.err.Error() }
func (e *refusedManifestError) Unwrap() error { return e.err }

// fetchManifest asks for the manifest and checks it against the CID. The
// answer and the manifest's header must come within manifestTimeout; the
// header must pass check before the rest is read, so a manifest is only
// allocated once its size, chunk count and file are acceptable. If known
// is closed by then (another provider's manifest won), the rest is read
// and dropped, and fetchManifest returns no manifest and no error.
func (cn *conn) fetchManifest(check func(manifest.Header) error, known <-chan struct{}) (*manifest.Manifest, []byte, error) {
	if err := cn.send(&proto.FetchRequest{Kind: proto.FetchRequest_MANIFEST, Cid: cn.c.Bytes()}); err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(manifestTimeout)
	cn.st.SetReadDeadline(deadline)
	var resp proto.FetchResponse
	if err := cn.r.ReadMsg(&resp); err != nil {
		return nil, nil, fmt.Errorf("read response: %w", err)
	}
	cn.answered = true
	if resp.GetStatus() != proto.FetchResponse_OK {
		return nil, nil, &refusedError{resp.GetStatus(), resp.GetMessage()}
	}
	length := resp.GetLength()
	if length > max(manifest.MaxSize, collection.MaxSize) || length < magicLen {
		return nil, nil, fmt.Errorf("%w: manifest of %d bytes", errBadData, length)
	}
	sr, err := cn.sess.NewReader(cn.r)
	if err != nil {
		return nil, nil, sealErr(err)
	}
	if h := sr.Header(); !bytes.Equal(h.CID, cn.c.Bytes()) || h.StartChunk != 0 {
		return nil, nil, fmt.Errorf("%w: sealed stream header names another CID", errBadData)
	}
	// The first bytes tell a file's manifest from a collection's document.
	var hb [manifest.HeaderLen]byte
	if err := cn.readFullBy(sr, hb[:magicLen], deadline); err != nil {
		return nil, nil, err
	}
	if collection.Is(hb[:magicLen]) {
		return nil, nil, cn.readDocument(sr, hb[:magicLen], length)
	}
	if length > manifest.MaxSize || length < manifest.HeaderLen {
		return nil, nil, fmt.Errorf("%w: manifest of %d bytes", errBadData, length)
	}
	if err := cn.readFullBy(sr, hb[magicLen:], deadline); err != nil {
		return nil, nil, err
	}
	h, err := manifest.ParseHeader(hb[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadData, err)
	}
	if uint64(h.Len()) != length {
		return nil, nil, fmt.Errorf("%w: a manifest of %d chunks announced as %d bytes", errBadData, h.NumChunks, length)
	}
	if err := check(h); err != nil {
		return nil, nil, &refusedManifestError{err}
	}
	select {
	case <-known:
		if err := cn.discard(sr, int64(length)-manifest.HeaderLen); err != nil {
			return nil, nil, err
		}
		return nil, nil, cn.finish(sr)
	default:
	}
	b := make([]byte, length)
	copy(b, hb[:])
	if err := cn.readFull(sr, b[manifest.HeaderLen:]); err != nil {
		return nil, nil, err
	}
	if err := cn.finish(sr); err != nil {
		return nil, nil, err
	}
	m, err := manifest.Verify(cn.c, b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadData, err)
	}
	return m, b, nil
}

// discard reads n plaintext bytes and drops them, in small pieces.
func (cn *conn) discard(sr *bbsaes.Reader, n int64) error {
	var buf [16 << 10]byte
	for n > 0 {
		k := min(n, int64(len(buf)))
		if err := cn.readFull(sr, buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// magicLen is the length of the magic that starts a manifest ("p2pm") or
// a collection document ("p2pc").
const magicLen = 4

// collectionFound is what fetching a manifest ends with when the content
// ID names a collection (a published folder) rather than a file: its
// document, verified against the CID and parsed. Get then downloads the
// collection (collget.go).
type collectionFound struct {
	doc  []byte
	coll *collection.Collection
	from peer.ID
}

func (e *collectionFound) Error() string {
	return fmt.Sprintf("%s is a folder (%d files), not a file", e.coll.Name, e.coll.Files())
}

// readDocument reads the rest of a collection document whose first bytes
// (head) were read, checks it against the CID and returns it as a
// *collectionFound; any other error is the provider's.
func (cn *conn) readDocument(sr *bbsaes.Reader, head []byte, length uint64) error {
	if length > collection.MaxSize {
		return fmt.Errorf("%w: collection document of %d bytes", errBadData, length)
	}
	b := make([]byte, length)
	copy(b, head)
	if err := cn.readFull(sr, b[len(head):]); err != nil {
		return err
	}
	if err := cn.finish(sr); err != nil {
		return err
	}
	coll, err := collection.Verify(cn.c, b)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadData, err)
	}
	return &collectionFound{doc: b, coll: coll, from: cn.peer}
}
