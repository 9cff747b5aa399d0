package hostile

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// fakeProvider is an attacker host that speaks the fetch protocol well
// enough to be believed: it completes the bbsaes handshake as a provider
// (with a real BBS key), reads requests, and answers each as answer says
// (which may be never).
type fakeProvider struct {
	h    host.Host
	sess sync.Map // network.Stream -> *bbsaes.Session
	// manifestReqs counts MANIFEST requests received.
	manifestReqs atomic.Int32
}

// fetchAnswer answers one request on st; an error ends (resets) the stream.
type fetchAnswer func(fp *fakeProvider, st network.Stream, sess *bbsaes.Session, req *proto.FetchRequest) error

// attackerKey is the BBS key an attacker offers in the handshake.
func attackerKey(t *testing.T) *bbsaes.Key {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bbs.key")
	if err := os.WriteFile(p, sharedBBSKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := bbsaes.LoadOrGenerateKey(p, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newFakeProvider starts an attacker host whose fetch handler answers
// with answer.
func newFakeProvider(t *testing.T, answer fetchAnswer) *fakeProvider {
	t.Helper()
	fp := &fakeProvider{h: newAttacker(t)}
	key := attackerKey(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // before the host closes (cleanups run last first): a stalled answer returns
	fp.h.SetStreamHandler(proto.FetchID, func(st network.Stream) {
		defer st.Reset()
		r := proto.NewReader(st, proto.MaxRequestSize)
		hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
		sess, err := bbsaes.Respond(hctx, struct {
			io.Reader
			io.Writer
		}{r, st}, bbsaes.Config{
			ProtocolID: proto.FetchID,
			LocalKey:   fp.h.Peerstore().PrivKey(fp.h.ID()),
			RemotePeer: st.Conn().RemotePeer(),
			BBSKey:     key,
		})
		hcancel()
		if err != nil {
			return
		}
		stop := context.AfterFunc(ctx, func() { st.Reset() })
		defer stop()
		for {
			var req proto.FetchRequest
			if err := r.ReadMsg(&req); err != nil {
				return
			}
			if req.GetKind() == proto.FetchRequest_MANIFEST {
				fp.manifestReqs.Add(1)
			}
			if err := answer(fp, st, sess, &req); err != nil {
				return
			}
		}
	})
	return fp
}

func (fp *fakeProvider) addrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: fp.h.ID(), Addrs: fp.h.Addrs()}
}

// reply writes a FetchResponse and, if payload is not nil, the sealed
// stream that carries it.
func reply(st network.Stream, sess *bbsaes.Session, c cid.Cid, start uint64, status proto.FetchResponse_Status, payload []byte) error {
	if err := proto.WriteMsg(st, &proto.FetchResponse{Status: status, Length: uint64(len(payload))}); err != nil {
		return err
	}
	if status != proto.FetchResponse_OK {
		return nil
	}
	sw, err := sess.NewWriter(st, bbsaes.Header{CID: c.Bytes(), StartChunk: start})
	if err != nil {
		return err
	}
	if _, err := sw.Write(payload); err != nil {
		return err
	}
	return sw.Close()
}

// zeroChunkManifest is a valid manifest of n chunks of chunkSize bytes,
// every one of them zeros (so a fake provider can serve chunks that
// verify); the whole-file hash is made up (the download never completes).
func zeroChunkManifest(n, chunkSize int) (*manifest.Manifest, []byte, cid.Cid) {
	m := &manifest.Manifest{Size: int64(n) * int64(chunkSize), ChunkSize: chunkSize, Chunks: make([]manifest.Hash, n)}
	zero := sha256.Sum256(make([]byte, chunkSize))
	for i := range m.Chunks {
		m.Chunks[i] = zero
	}
	m.FileHash = sha256.Sum256([]byte("not the hash of the file"))
	b := m.Marshal()
	return m, b, manifest.CIDOf(b)
}

// serveManifest answers a fake provider's MANIFEST requests for c with
// mb, and its CHUNKS requests with zeros (chunks of m, which verify if m
// is a zeroChunkManifest); other CIDs are not served.
func serveManifest(m *manifest.Manifest, mb []byte, c cid.Cid) fetchAnswer {
	zeros := make([]byte, proto.MaxChunksPerRequest*m.ChunkSize)
	return func(_ *fakeProvider, st network.Stream, sess *bbsaes.Session, req *proto.FetchRequest) error {
		rc, err := cid.Cast(req.GetCid())
		if err != nil || !rc.Equals(c) {
			return reply(st, sess, rc, 0, proto.FetchResponse_NOT_SERVED, nil)
		}
		if req.GetKind() == proto.FetchRequest_MANIFEST {
			return reply(st, sess, c, 0, proto.FetchResponse_OK, mb)
		}
		first, count := int(req.GetFirstChunk()), int(req.GetCount())
		if count < 1 || count > proto.MaxChunksPerRequest || first+count > len(m.Chunks) {
			return reply(st, sess, c, 0, proto.FetchResponse_BAD_REQUEST, nil)
		}
		n := 0
		for i := first; i < first+count; i++ {
			n += m.ChunkLen(i)
		}
		return reply(st, sess, c, uint64(first), proto.FetchResponse_OK, zeros[:n])
	}
}

// getFrom has n get c from the given providers only, within d.
func getFrom(n *node.Node, c cid.Cid, d time.Duration, expect *transfer.Expect, from ...peer.AddrInfo) (*transfer.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	opt := transfer.GetOptions{Hints: from, Expect: expect}
	for _, ai := range from {
		opt.From = append(opt.From, ai.ID)
	}
	return n.Transfer.Get(ctx, c, opt)
}

// heapPeak runs f and returns how far the Go heap (live and not yet
// collected objects) rose above what was live before, sampled every few
// milliseconds: what f made the process allocate at once.
func heapPeak(f func()) (rise uint64) {
	base := heapInUse()
	var peak atomic.Uint64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-stopped
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// downloadsEntries lists what n's downloads folder holds, the partial
// downloads under .partial included (the .partial folder itself and its
// lock are not listed).
func downloadsEntries(t *testing.T, n *node.Node) []string {
	t.Helper()
	var out []string
	dir := n.Config.DownloadDir
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != ".partial" {
			out = append(out, e.Name())
		}
	}
	parts, _ := os.ReadDir(filepath.Join(dir, ".partial"))
	for _, e := range parts {
		if e.Name() != ".lock" {
			out = append(out, filepath.Join(".partial", e.Name()))
		}
	}
	return out
}

// MiB formats a byte count for a test's log.
func mib(n uint64) float64 { return float64(n) / (1 << 20) }
