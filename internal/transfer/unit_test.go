package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
	"github.com/p2pshare/p2pshare/internal/manifest"
)

func testCID(t *testing.T) cid.Cid {
	m := &manifest.Manifest{ChunkSize: testChunk}
	return m.CID()
}

func TestSanitizeName(t *testing.T) {
	c := testCID(t)
	long := strings.Repeat("a", 256)
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"my file (1).tar.gz", "my file (1).tar.gz"},
		{".hidden", ".hidden"},
		{"", c.String()},
		{".", c.String()},
		{"..", c.String()},
		{"../etc/passwd", c.String()},
		{"a/b", c.String()},
		{`a\b`, c.String()},
		{"nul\x00byte", c.String()},
		{"new\nline", c.String()},
		{long, c.String()},
		{"été.txt", "été.txt"},
		{"two  spaces inside", "two  spaces inside"},
		{"bad\xffutf8", c.String()},       // invalid UTF-8
		{"csi\u009b31m", c.String()},      // C1 control (CSI)
		{"del\x7f", c.String()},           // DEL
		{"evil\u202etxt.exe", c.String()}, // right-to-left override
		{"zero\u200bwidth", c.String()},   // zero-width space
		{"lrm\u200emark", c.String()},     // left-to-right mark
		{"rlm\u200fmark", c.String()},     // right-to-left mark
		{"line\u2028sep", c.String()},     // line separator
		{"para\u2029sep", c.String()},     // paragraph separator
		{"\ufeffbom", c.String()},         // byte order mark
		{" leading", c.String()},          // leading space
		{"trailing ", c.String()},         // trailing space
		{"/abs", c.String()},              // absolute
	}
	for _, tt := range tests {
		if got := SanitizeName(tt.in, c); got != tt.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNumbered(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"x.bin", 1, "x (1).bin"},
		{"x.tar.gz", 2, "x.tar (2).gz"},
		{"noext", 3, "noext (3)"},
		{".bashrc", 1, ".bashrc (1)"},
	}
	for _, tt := range tests {
		if got := numbered(tt.in, tt.n); got != tt.want {
			t.Errorf("numbered(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestPlaceNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("new"), 0o644)
	dst := filepath.Join(dir, "f.txt")
	os.WriteFile(dst, []byte("old"), 0o644)
	if _, err := place(src, dst, true); !errors.Is(err, ErrExists) {
		t.Fatalf("exact place over an existing file: %v", err)
	}
	got, err := place(src, dst, false)
	if err != nil || got != filepath.Join(dir, "f (1).txt") {
		t.Fatalf("place = %q, %v", got, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Fatal("existing file overwritten")
	}
}

func TestStateCodec(t *testing.T) {
	data := pattern(5*testChunk+1, 1)
	m, err := manifest.Build(context.Background(), bytes.NewReader(data), int64(len(data)), testChunk)
	if err != nil {
		t.Fatal(err)
	}
	c := m.CID()
	b := encodeState("n.bin", m.Marshal())
	st, m2, err := decodeState(c, b)
	if err != nil {
		t.Fatal(err)
	}
	if st.name != "n.bin" || m2.Size != m.Size || st.done != nil || st.rewrite {
		t.Fatalf("decoded %+v", st)
	}
	// Any flipped byte or truncation is refused.
	for i := 0; i < len(b); i += 7 {
		bad := append([]byte(nil), b...)
		bad[i] ^= 1
		if _, _, err := decodeState(c, bad); err == nil {
			t.Fatalf("state with byte %d flipped accepted", i)
		}
	}
	if _, _, err := decodeState(c, b[:len(b)-1]); err == nil {
		t.Fatal("truncated state accepted")
	}
	// A state for another CID is refused.
	other := (&manifest.Manifest{ChunkSize: testChunk}).CID()
	if _, _, err := decodeState(other, b); err == nil {
		t.Fatal("state of another CID accepted")
	}
}

// encodeStateV1 is the state file of format 1: name, manifest and bitmap
// in one file (what a node before format 2 left on disk).
func encodeStateV1(name string, mbytes []byte, done []bool) []byte {
	var b bytes.Buffer
	b.WriteString(stateMagic)
	b.Write([]byte{stateVersion1, 0, 0, 0})
	binary.Write(&b, binary.BigEndian, uint16(len(name)))
	b.WriteString(name)
	binary.Write(&b, binary.BigEndian, uint32(len(mbytes)))
	b.Write(mbytes)
	bm := make([]byte, bitmapLen(len(done)))
	encodeBitmap(bm, done)
	b.Write(bm)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

func TestStateCodecV1(t *testing.T) {
	data := pattern(5*testChunk+1, 1)
	m, err := manifest.Build(context.Background(), bytes.NewReader(data), int64(len(data)), testChunk)
	if err != nil {
		t.Fatal(err)
	}
	done := []bool{true, false, true, true, false, true}
	st, _, err := decodeState(m.CID(), encodeStateV1("n.bin", m.Marshal(), done))
	if err != nil {
		t.Fatal(err)
	}
	if st.name != "n.bin" || !st.rewrite || !slices.Equal(st.done, done) {
		t.Fatalf("decoded %+v", st)
	}
}

// A save writes the bytes of the bitmap that changed, never the manifest:
// marking one more chunk of a 2^18-chunk download rewrites one byte of
// done and leaves state as it was.
func TestPersistWritesOnlyChanges(t *testing.T) {
	const n = 1 << 18
	m := &manifest.Manifest{Size: n * manifest.MinChunkSize, ChunkSize: manifest.MinChunkSize, Chunks: make([]manifest.Hash, n)}
	dir := filepath.Join(t.TempDir(), "p")
	p, err := createPartial(dir, m.CID(), m, m.Marshal(), "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	stateBefore, err := os.Stat(filepath.Join(dir, stateName))
	if err != nil {
		t.Fatal(err)
	}
	if stateBefore.Size() < n*32 {
		t.Fatalf("state holds %d bytes, want the manifest (%d)", stateBefore.Size(), n*32)
	}
	wrote := 0
	written := func() int {
		wrote = 0
		for _, r := range changedRuns(p.disk, p.next) {
			wrote += r[1] - r[0]
		}
		return wrote
	}
	done := make([]bool, n)
	for _, i := range []int{0, 1000, n - 1} {
		done[i] = true
		encodeBitmap(p.next, done)
		if w := written(); w != 1 {
			t.Fatalf("marking chunk %d changes %d bytes of the bitmap, want 1", i, w)
		}
		if err := p.persist(done); err != nil {
			t.Fatal(err)
		}
		if w := written(); w != 0 {
			t.Fatalf("after the save %d bytes differ from the disk", w)
		}
	}
	stateAfter, err := os.Stat(filepath.Join(dir, stateName))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(stateBefore, stateAfter) || !stateAfter.ModTime().Equal(stateBefore.ModTime()) {
		t.Fatal("the state file (with the manifest) was rewritten by a save")
	}
	// What the saves wrote is what a reader finds.
	st, _, err := readState(dir, m.CID())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.done, done) || st.rewriteDone {
		t.Fatal("the done file does not hold what was saved")
	}
}

// A partial left by format 1 is resumed: converted to state + done, its
// marks kept, the download completes without fetching them again.
func TestResumeStateV1(t *testing.T) {
	cli, c, data, dir, marked, served := pausedDownload(t, 45)
	st, _, err := readState(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, doneName)); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, stateName), encodeStateV1(st.name, st.mbytes, st.done), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Resumed != len(marked) {
		t.Errorf("resumed %d chunks, want the %d marked", res.Resumed, len(marked))
	}
	served.mu.Lock()
	defer served.mu.Unlock()
	for _, i := range marked {
		if served.chunks[i] != 0 {
			t.Errorf("marked chunk %d fetched again", i)
		}
	}
}

func TestSchedulerPullAndRequeue(t *testing.T) {
	const n = 10
	sc := newScheduler(make([]bool, n), 3, func(int) int { return 1 })
	a, b := peer.ID("a"), peer.ID("b")
	r1 := sc.next(a, true)
	r2 := sc.next(b, true)
	r3 := sc.next(a, false)
	if r1.first != 0 || r1.count != 3 || r2.first != 3 || r3.first != 6 {
		t.Fatalf("ranges %+v %+v %+v", r1, r2, r3)
	}
	// b fails after delivering chunk 3: 4 and 5 come back first.
	sc.markDone(3)
	sc.release(r2)
	r4 := sc.next(a, false)
	if r4.first != 4 || r4.count != 2 {
		t.Fatalf("requeued range %+v, want 4+2", r4)
	}
	r5 := sc.next(a, false)
	if r5.first != 9 || r5.count != 1 {
		t.Fatalf("last range %+v", r5)
	}
	if sc.next(a, false) != nil {
		t.Fatal("a non-idle worker got an endgame duplicate")
	}
	// Endgame: idle b duplicates one of a's unfinished requests, never its own.
	d := sc.next(b, true)
	if d == nil || !d.dup || d.owner != b {
		t.Fatalf("endgame request %+v", d)
	}
	if sc.next(a, true) != nil {
		t.Fatal("a got a duplicate of its own request")
	}
	for _, r := range []*request{r1, r3, r4, r5} {
		for i := r.first; i < r.first+r.count; i++ {
			sc.markDone(i)
		}
		sc.release(r)
	}
	sc.release(d)
	if !sc.complete() {
		t.Fatal("not complete")
	}
}

func TestBadManifestProviderDropped(t *testing.T) {
	data := pattern(6*testChunk, 20)
	good := newNode(t)
	c := good.publish(t, "g.bin", data, testChunk)
	// The liar answers the CID with the manifest of another file.
	liar := newNode(t)
	other := liar.publish(t, "o.bin", pattern(6*testChunk, 21), testChunk)
	liar.src.mu.Lock()
	liar.src.files[c] = liar.src.files[other]
	liar.src.mu.Unlock()
	// One provider at a time, the liar first: it must be asked for the
	// manifest and be dropped before the good provider is tried.
	cli := newNode(t, func(c *Config) { c.MaxProviders = 1 })
	cli.fnd.set(addrInfo(liar.h), addrInfo(good.h))
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if res.Path != filepath.Join(cli.svc.cfg.DownloadDir, c.String()) {
		t.Errorf("unnamed download saved as %s, want the CID string", res.Path)
	}
	if len(res.Bad) != 1 || res.Bad[0] != liar.h.ID() {
		t.Errorf("bad = %v, want the liar %s", res.Bad, liar.h.ID())
	}
}

func TestGetRejectsForeignCID(t *testing.T) {
	cli := newNode(t)
	bad, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	v0 := cid.NewCidV0(bad.Hash())
	if _, err := cli.svc.Get(ctxT(t, time.Second), v0, GetOptions{}); !errors.Is(err, manifest.ErrBadCID) {
		t.Fatalf("Get of a CIDv0: %v, want ErrBadCID", err)
	}
}

func TestPlaceAcrossFileSystems(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("payload"), 0o600)
	// os.Link fails with EXDEV for the partial file, as it would across
	// file systems; linking the copy made in the target directory works.
	orig := link
	t.Cleanup(func() { link = orig })
	var tried []string
	link = func(from, to string) error {
		tried = append(tried, from)
		if from == src {
			return &os.LinkError{Op: "link", Old: from, New: to, Err: syscall.EXDEV}
		}
		return orig(from, to)
	}
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte("old"), 0o644)
	got, err := place(src, filepath.Join(dir, "f.txt"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(dir, "f (1).txt") {
		t.Fatalf("placed at %s", got)
	}
	if b, _ := os.ReadFile(got); string(b) != "payload" {
		t.Fatalf("content %q", b)
	}
	if len(tried) < 2 || tried[1] == src {
		t.Fatalf("links tried from %v, want the partial then a temporary copy", tried)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 { // src, f.txt, f (1).txt: the temporary copy is gone
		t.Fatalf("directory holds %d entries, want 3", len(ents))
	}
}

func TestCloseResetsIdleServerStreams(t *testing.T) {
	srv := newNode(t)
	c := srv.publish(t, "i.bin", pattern(testChunk, 30), testChunk)
	cli := newNode(t)
	cn, err := cli.svc.dial(ctxT(t, time.Minute), addrInfo(srv.h), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.reset()
	if _, _, err := cn.fetchManifest(func(manifest.Header) error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
	// The fetcher now idles; Close must not wait for the idle timeout.
	closed := make(chan struct{})
	go func() {
		srv.svc.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for an idle fetch stream")
	}
}

// One peer may have at most maxServerStreamsPerPeer fetch streams being
// served at once. (Idle ones do not hold their slots: beyond
// maxIdleSessionsPerPeer they are evicted, see evict_test.go; so the
// streams here are kept busy, each in the middle of a request.)
func TestServerLimitsStreamsPerPeer(t *testing.T) {
	srv := newNode(t)
	c := srv.publish(t, "l.bin", pattern(testChunk, 31), testChunk)
	release := make(chan struct{})
	var served servedLog
	srv.svc.onServe = served.hook(func(int) { <-release })
	cli := newNode(t)
	ctx := ctxT(t, time.Minute)
	var conns []*conn
	defer func() {
		for _, cn := range conns {
			cn.reset()
		}
	}()
	defer close(release)
	for range maxServerStreamsPerPeer {
		cn, err := cli.svc.dial(ctx, addrInfo(srv.h), c)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
		if err := cn.requestChunks(0, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every stream to be busy", func() bool { return served.count() == maxServerStreamsPerPeer })
	if cn, err := cli.svc.dial(ctx, addrInfo(srv.h), c); err == nil {
		cn.reset()
		t.Fatalf("stream %d from one peer was served", maxServerStreamsPerPeer+1)
	}
}
