package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// naive computes the manifest the slow, obvious way.
func naive(data []byte, chunkSize int) *Manifest {
	m := &Manifest{Size: int64(len(data)), ChunkSize: chunkSize, FileHash: sha256.Sum256(data)}
	for off := 0; off < len(data); off += chunkSize {
		m.Chunks = append(m.Chunks, sha256.Sum256(data[off:min(off+chunkSize, len(data))]))
	}
	if m.Chunks == nil {
		m.Chunks = []Hash{}
	}
	return m
}

func TestBuildMatchesNaive(t *testing.T) {
	const cs = 4 << 10
	for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 7*cs + 13, 64 * cs} {
		data := randomBytes(size, uint64(size))
		got, err := Build(context.Background(), bytes.NewReader(data), int64(size), cs)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		want := naive(data, cs)
		if !bytes.Equal(got.Marshal(), want.Marshal()) {
			t.Fatalf("size %d: manifest differs from the naive one", size)
		}
		for i := range got.Chunks {
			off := got.ChunkOffset(i)
			if !got.VerifyChunk(i, data[off:off+int64(got.ChunkLen(i))]) {
				t.Fatalf("size %d: chunk %d does not verify", size, i)
			}
		}
	}
}

func TestBuildShortFile(t *testing.T) {
	data := randomBytes(5000, 1)
	_, err := Build(context.Background(), bytes.NewReader(data), 9000, 4096)
	if err == nil {
		t.Fatal("a file shorter than announced was hashed without error")
	}
}

func TestMarshalParseVerify(t *testing.T) {
	data := randomBytes(10000, 2)
	m := naive(data, 4096)
	b := m.Marshal()
	c := m.CID()
	if err := CheckCID(c); err != nil {
		t.Fatal(err)
	}
	got, err := Verify(c, b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), b) {
		t.Fatal("round trip changed the manifest")
	}
	// Same bytes, same CID.
	if !naive(data, 4096).CID().Equals(c) {
		t.Fatal("CID is not deterministic")
	}
	// Any flipped bit breaks the CID.
	for i := 0; i < len(b)*8; i += 37 {
		bad := bytes.Clone(b)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := Verify(c, bad); !errors.Is(err, ErrCIDMismatch) {
			t.Fatalf("bit %d flipped: got %v, want ErrCIDMismatch", i, err)
		}
	}
	// A chunk with a flipped bit does not verify.
	chunk := bytes.Clone(data[:4096])
	chunk[100] ^= 4
	if m.VerifyChunk(0, chunk) {
		t.Fatal("a corrupted chunk verified")
	}
	if m.VerifyChunk(0, data[:4095]) || m.VerifyChunk(3, data[:1]) || m.VerifyChunk(-1, nil) {
		t.Fatal("a chunk of the wrong length or index verified")
	}
}

func TestCheckCIDRejectsOtherForms(t *testing.T) {
	b := naive(randomBytes(100, 3), 4096).Marshal()
	for name, mk := range map[string]func() cid.Cid{
		"v0": func() cid.Cid { mh, _ := multihash.Sum(b, multihash.SHA2_256, -1); return cid.NewCidV0(mh) },
		"dag-pb": func() cid.Cid {
			mh, _ := multihash.Sum(b, multihash.SHA2_256, -1)
			return cid.NewCidV1(cid.DagProtobuf, mh)
		},
		"identity": func() cid.Cid { mh, _ := multihash.Sum(b, multihash.IDENTITY, -1); return cid.NewCidV1(cid.Raw, mh) },
		"sha1":     func() cid.Cid { mh, _ := multihash.Sum(b, multihash.SHA1, -1); return cid.NewCidV1(cid.Raw, mh) },
		"undef":    func() cid.Cid { return cid.Undef },
	} {
		if _, err := Verify(mk(), b); !errors.Is(err, ErrBadCID) {
			t.Errorf("%s: got %v, want ErrBadCID", name, err)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	good := naive(randomBytes(9000, 4), 4096).Marshal()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":          nil,
		"short header":   good[:20],
		"bad magic":      mod(func(b []byte) []byte { b[0] = 'x'; return b }),
		"bad version":    mod(func(b []byte) []byte { b[4] = 2; return b }),
		"reserved set":   mod(func(b []byte) []byte { b[6] = 1; return b }),
		"chunk size 0":   mod(func(b []byte) []byte { b[16], b[17], b[18], b[19] = 0, 0, 0, 0; return b }),
		"wrong count":    mod(func(b []byte) []byte { b[23] = 2; return b }),
		"truncated hash": good[:len(good)-1],
		"trailing bytes": append(bytes.Clone(good), 0),
		"size too large": mod(func(b []byte) []byte { b[8] = 0x7f; return b }),
		"huge count":     mod(func(b []byte) []byte { b[20] = 0xff; return b }),
	}
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(naive(randomBytes(9000, 5), 4096).Marshal())
	f.Add(naive(nil, 1<<20).Marshal())
	f.Add([]byte("p2pm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(), b) {
			t.Fatal("accepted manifest does not round-trip")
		}
	})
}

func TestParseHeader(t *testing.T) {
	data := randomBytes(3*4096+5, 7)
	m := naive(data, 4096)
	b := m.Marshal()
	h, err := ParseHeader(b[:HeaderLen])
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != m.Size || h.ChunkSize != m.ChunkSize || h.NumChunks != len(m.Chunks) || h.FileHash != m.FileHash || h.Len() != len(b) {
		t.Fatalf("header %+v of a manifest of %d bytes", h, len(b))
	}
	if _, err := ParseHeader(b[:HeaderLen-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short header: %v", err)
	}
	// A header whose chunk count disagrees with its size is refused,
	// before any chunk hash is read.
	bad := append([]byte(nil), b[:HeaderLen]...)
	bad[23]++
	if _, err := ParseHeader(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("header with a wrong chunk count: %v", err)
	}
}
