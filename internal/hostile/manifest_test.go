package hostile

// Class 1, lying manifests: a provider serves a valid manifest (it matches
// its CID) that is enormous, or that disagrees with what the catalogue or
// ticket said, or that describes a file the disk has no room for. The
// fetcher must refuse such a manifest on its header, before it allocates
// room for it or creates anything on disk, and a manifest it accepts must
// cost it disk writes in proportion to what arrives, not to the manifest.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// maxRefusalHeap bounds how far the victim's heap may rise while it
// refuses a manifest on its header: far below the manifests of these
// tests (2 to 64 MiB), which it must not read.
const maxRefusalHeap = 16 << 20

// refusedOnHeader runs a Get of c from the fake provider, which must end
// within a few seconds with an error matching want; it checks that the
// heap did not rise by maxRefusalHeap and that nothing was created in the
// downloads folder.
func refusedOnHeader(t *testing.T, victim *victimNode, fp *fakeProvider, c cid.Cid, expect *transfer.Expect, want error) error {
	t.Helper()
	var err error
	start := time.Now()
	rise := heapPeak(func() {
		_, err = getFrom(victim.Node, c, 20*time.Second, expect, fp.addrInfo())
	})
	took := time.Since(start)
	t.Logf("refused in %v, heap rose by %.1f MiB: %v", took.Round(time.Millisecond), mib(rise), err)
	if !errors.Is(err, want) {
		t.Fatalf("Get: %v, want %v", err, want)
	}
	if took > 10*time.Second {
		t.Errorf("the refusal took %v", took)
	}
	if !strings.Contains(err.Error(), fp.h.ID().String()) {
		t.Errorf("the error does not name the provider %s: %v", fp.h.ID(), err)
	}
	if rise > maxRefusalHeap {
		t.Errorf("the heap rose by %.1f MiB while refusing a manifest on its header (bound %.0f MiB)", mib(rise), mib(maxRefusalHeap))
	}
	if ents := downloadsEntries(t, victim.Node); len(ents) != 0 {
		t.Errorf("the refused download left %v in the downloads folder", ents)
	}
	return err
}

// victimNode is the node attacked, with an honest provider beside it.
type victimNode struct {
	*node.Node
	honest *node.Node
}

// newVictim starts the victim and an honest provider.
func newVictim(t *testing.T) *victimNode {
	t.Helper()
	return &victimNode{Node: newNode(t, "victim", nil), honest: newNode(t, "honest", nil)}
}

// stillServed checks that the victim still gets a file from an honest
// provider.
func (v *victimNode) stillServed(t *testing.T) {
	t.Helper()
	c, b := publishRandom(t, v.honest, "honest.bin", 2<<20+3)
	mustFetch(t, v.Node, v.honest, c, b, 30*time.Second)
}

// A manifest of 2^21 chunks of 1 KiB (a 2 GiB file; the manifest is
// 64 MiB) is refused on its header: more chunks than a fetcher keeps state
// for. (Before, it was accepted, and its whole resume state, manifest
// included, rewritten every 200 ms.)
func TestManifestTooManyChunks(t *testing.T) {
	v := newVictim(t)
	m, mb, c := zeroChunkManifest(manifest.MaxChunks, manifest.MinChunkSize)
	fp := newFakeProvider(t, serveManifest(m, mb, c))
	refusedOnHeader(t, v, fp, c, nil, transfer.ErrTooManyChunks)
	v.stillServed(t)
}

// A manifest whose size disagrees with what the catalogue said is refused
// on its header: the attacker made the CID itself (its manifest is
// valid), and claims another size.
func TestManifestSizeDisagreesWithCatalogue(t *testing.T) {
	v := newVictim(t)
	for _, tc := range []struct {
		name   string
		chunks int
	}{
		{"64GiB", 1 << 16}, // a 2 MiB manifest
		{"2TiB", 1 << 21},  // a 64 MiB manifest
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, mb, c := zeroChunkManifest(tc.chunks, manifest.DefaultChunkSize)
			fp := newFakeProvider(t, serveManifest(m, mb, c))
			expect := &transfer.Expect{Size: 1 << 10, SHA256: m.FileHash, Source: "catalogue"}
			refusedOnHeader(t, v, fp, c, expect, transfer.ErrMismatch)
		})
	}
	v.stillServed(t)
}

// A manifest describing a file larger than the free space of the
// downloads folder (32 TiB, the most the format allows) is refused on its
// header, with a message that says how much is needed and free where.
func TestManifestNoSpace(t *testing.T) {
	v := newVictim(t)
	m, mb, c := zeroChunkManifest(manifest.MaxChunks, manifest.MaxChunkSize)
	fp := newFakeProvider(t, serveManifest(m, mb, c))
	err := refusedOnHeader(t, v, fp, c, nil, transfer.ErrNoSpace)
	if !strings.Contains(err.Error(), "needs 32.0 TiB") || !strings.Contains(err.Error(), v.Config.DownloadDir) {
		t.Errorf("the message does not say what is needed and where: %v", err)
	}
	v.stillServed(t)
}

// A provider that sends, for an honest provider's CID, a manifest header
// that disagrees with the catalogue (it cannot make a manifest that
// matches the CID) is dropped; it cannot end the download the honest
// provider serves.
func TestLyingHeaderDoesNotEndHonestDownload(t *testing.T) {
	// The honest provider serves at 4 MiB/s, so its 3 MiB take most of a
	// second: time for the liar, asked at once, to be dialled and asked.
	v := &victimNode{Node: newNode(t, "victim", nil),
		honest: newNode(t, "honest", func(c *node.Config) { c.UploadLimit = 4 << 20 })}
	// The honest provider may answer the whole file before the liar's
	// answer is even asked for (both are asked at once): then this round
	// proves nothing, and another file is tried.
	for round := 1; ; round++ {
		c, data := publishRandom(t, v.honest, fmt.Sprintf("real%d.bin", round), 3<<20+7)
		fake := &manifest.Manifest{Size: 64 << 30, ChunkSize: manifest.DefaultChunkSize, Chunks: make([]manifest.Hash, 1<<16)}
		liar := newFakeProvider(t, func(_ *fakeProvider, st network.Stream, sess *bbsaes.Session, req *proto.FetchRequest) error {
			return reply(st, sess, c, 0, proto.FetchResponse_OK, fake.Marshal())
		})
		expect := &transfer.Expect{Size: int64(len(data)), SHA256: sha256.Sum256(data), Source: "catalogue"}
		// The liar is connected already and the honest provider is not
		// (nor has a kept session), so the liar's answer can come first.
		if err := v.Node.P2P.Host().Connect(context.Background(), liar.addrInfo()); err != nil {
			t.Fatal(err)
		}
		v.Node.P2P.Host().Network().ClosePeer(v.honest.P2P.ID())
		// The liar is given first.
		res, err := getFrom(v.Node, c, 30*time.Second, expect, liar.addrInfo(),
			peer.AddrInfo{ID: v.honest.P2P.ID(), Addrs: v.honest.P2P.Host().Addrs()})
		if err != nil {
			t.Fatalf("Get with a lying provider beside an honest one: %v", err)
		}
		got, err := os.ReadFile(res.Path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the file is not the honest provider's (%v)", err)
		}
		if liar.manifestReqs.Load() > 0 {
			return
		}
		if round == 5 {
			t.Fatal("the liar was never asked in 5 rounds: the test proves nothing")
		}
		t.Logf("round %d: the honest provider served the file before the liar was asked; again", round)
	}
}

// A valid manifest of maxSmallChunks (2^18) chunks of 1 KiB is accepted
// (a 256 MiB file; its manifest is 8 MiB). While its chunks arrive, what
// the victim writes must follow what arrives: the manifest once, then the
// chunks and the bitmap of verified ones. (Before, the whole resume state,
// manifest included, was rewritten and fsynced every 200 ms: about
// 40 MiB/s of writes for 1 MiB/s received.) Disk use and heap are bounded
// likewise, and the paused download is kept.
func TestManifestResumeStateIncremental(t *testing.T) {
	v := newVictim(t)
	const chunks = 1 << 18
	m, mb, c := zeroChunkManifest(chunks, manifest.MinChunkSize)
	serve := serveManifest(m, mb, c)
	// 1 MiB/s: the chunks trickle, so saves of the state come often
	// relative to what they save.
	lim := rate.NewLimiter(1<<20, 64<<10)
	fp := newFakeProvider(t, func(fp *fakeProvider, st network.Stream, sess *bbsaes.Session, req *proto.FetchRequest) error {
		if req.GetKind() == proto.FetchRequest_CHUNKS {
			if err := lim.WaitN(context.Background(), int(req.GetCount())*m.ChunkSize); err != nil {
				return err
			}
		}
		return serve(fp, st, sess, req)
	})

	const want = 3 << 20 // bytes to receive before the download is paused
	heapBefore := heapInUse()
	w0, haveIO := writtenBytes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var heapDuring uint64
	var done int64
	_, err := v.Transfer.Get(ctx, c, transfer.GetOptions{
		Hints: []peer.AddrInfo{fp.addrInfo()}, From: []peer.ID{fp.h.ID()},
		Progress: func(p transfer.Progress) {
			if p.Done >= want && done == 0 {
				done = p.Done
				heapDuring = heapInUse()
				cancel()
			}
		},
	})
	if !errors.Is(err, transfer.ErrPaused) || done == 0 {
		t.Fatalf("Get: %v after %d bytes, want it paused after %d bytes", err, done, want)
	}
	w1, _ := writtenBytes(t)

	// Disk: the manifest once, the data received (pre-sized sparse file:
	// only written blocks count), the bitmap.
	dir := filepath.Join(v.Config.DownloadDir, ".partial", c.String())
	du := diskUsage(t, dir)
	duBound := uint64(len(mb)) + uint64(done) + 2<<20
	t.Logf("received %.1f MiB; partial download uses %.1f MiB on disk (bound %.1f)", mib(uint64(done)), mib(du), mib(duBound))
	if du > duBound {
		t.Errorf("the partial download uses %.1f MiB on disk, bound %.1f MiB", mib(du), mib(duBound))
	}
	if ents := downloadsEntries(t, v.Node); len(ents) != 1 || ents[0] != filepath.Join(".partial", c.String()) {
		t.Errorf("downloads folder holds %v, want only the paused partial download", ents)
	}
	// Writes: everything the process wrote, file and socket writes, the
	// fake provider's included (it sends the manifest and the chunks):
	// the manifest twice (sent, and saved once) plus a few times what was
	// received (sent, saved, and slack for the nodes' other writes).
	if haveIO {
		wrote := w1 - w0
		bound := 2*uint64(len(mb)) + 3*uint64(done) + 4<<20
		t.Logf("the process wrote %.1f MiB while %.1f MiB were received (bound %.1f MiB)", mib(wrote), mib(uint64(done)), mib(bound))
		if wrote > bound {
			t.Errorf("the process wrote %.1f MiB for %.1f MiB received (bound %.1f MiB): the resume state is not written incrementally",
				mib(wrote), mib(uint64(done)), mib(bound))
		}
	}
	// Memory: the manifest's per-chunk state (the bound the fetcher
	// states: ~70 bytes per chunk) and slack.
	const heapBound = chunks*70 + 24<<20
	rise := uint64(0)
	if heapDuring > heapBefore {
		rise = heapDuring - heapBefore
	}
	t.Logf("heap in use rose by %.1f MiB during the download (bound %.1f MiB)", mib(rise), mib(heapBound))
	if rise > heapBound {
		t.Errorf("heap in use rose by %.1f MiB, bound %.1f MiB", mib(rise), mib(heapBound))
	}
	v.stillServed(t)
}

// writtenBytes is what this process has written so far, files and
// sockets (wchar in /proc/self/io); ok is false where the system does not
// say.
func writtenBytes(t *testing.T) (n uint64, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Logf("no /proc/self/io (%v): bytes written are not measured, only disk use", err)
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "wchar: "); found {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n, true
		}
	}
	t.Fatal("no wchar in /proc/self/io")
	return 0, false
}

// diskUsage is the space the files under dir take on disk (their
// allocated blocks).
func diskUsage(t *testing.T, dir string) uint64 {
	t.Helper()
	var n uint64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += uint64(st.Blocks) * 512
		} else {
			n += uint64(fi.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
