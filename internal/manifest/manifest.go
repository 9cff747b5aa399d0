// Package manifest defines p2pshare's content IDs. A file is cut into
// fixed-size chunks; its manifest lists the SHA-256 of every chunk and of
// the whole file in one fixed byte layout; the content ID is
// CIDv1(raw, sha2-256(manifest bytes)). Same bytes and chunk size, same CID,
// whoever publishes.
//
// A fetcher checks a manifest against its CID with Verify, then every chunk
// against the manifest with VerifyChunk as it arrives. The package does no
// I/O beyond reading the file it is asked to hash.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Layout of a manifest (all integers big-endian):
//
//	[0:4]   magic "p2pm"
//	[4]     format version (1)
//	[5:8]   zero
//	[8:16]  file size in bytes
//	[16:20] chunk size in bytes
//	[20:24] number of chunks = ceil(size / chunk size)
//	[24:56] SHA-256 of the whole file
//	[56:]   SHA-256 of every chunk, in order
const (
	Version          = 1
	headerLen        = 56
	DefaultChunkSize = 1 << 20
	MinChunkSize     = 1 << 10
	MaxChunkSize     = 16 << 20
	// MaxChunks bounds a manifest to 64 MiB (2 TiB at the default chunk size).
	MaxChunks = 2 << 20
	// MaxSize is the largest manifest Parse accepts, checked before allocation.
	MaxSize = headerLen + MaxChunks*sha256.Size
)

var magic = [4]byte{'p', '2', 'p', 'm'}

// Errors callers branch on.
var (
	ErrMalformed   = errors.New("manifest: malformed")
	ErrCIDMismatch = errors.New("manifest: does not match its content ID")
	ErrBadCID      = errors.New("manifest: not a p2pshare content ID (want CIDv1 raw sha2-256)")
)

// Hash is a SHA-256 digest.
type Hash = [sha256.Size]byte

// Manifest describes one file's content.
type Manifest struct {
	Size      int64
	ChunkSize int
	FileHash  Hash
	Chunks    []Hash
}

// NumChunks is the number of chunks a file of size bytes has.
func NumChunks(size int64, chunkSize int) int {
	if size <= 0 {
		return 0
	}
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// ChunkLen is the length in bytes of chunk i.
func (m *Manifest) ChunkLen(i int) int {
	if i < 0 || i >= len(m.Chunks) {
		return 0
	}
	if i == len(m.Chunks)-1 {
		return int(m.Size - int64(i)*int64(m.ChunkSize))
	}
	return m.ChunkSize
}

// ChunkOffset is the byte offset of chunk i in the file.
func (m *Manifest) ChunkOffset(i int) int64 { return int64(i) * int64(m.ChunkSize) }

// VerifyChunk reports whether data is exactly chunk i.
func (m *Manifest) VerifyChunk(i int, data []byte) bool {
	return i >= 0 && i < len(m.Chunks) && len(data) == m.ChunkLen(i) && sha256.Sum256(data) == m.Chunks[i]
}

// Marshal returns the manifest's fixed byte layout.
func (m *Manifest) Marshal() []byte {
	b := make([]byte, headerLen+len(m.Chunks)*sha256.Size)
	copy(b[0:4], magic[:])
	b[4] = Version
	binary.BigEndian.PutUint64(b[8:16], uint64(m.Size))
	binary.BigEndian.PutUint32(b[16:20], uint32(m.ChunkSize))
	binary.BigEndian.PutUint32(b[20:24], uint32(len(m.Chunks)))
	copy(b[24:56], m.FileHash[:])
	for i, h := range m.Chunks {
		copy(b[headerLen+i*sha256.Size:], h[:])
	}
	return b
}

// CID is the manifest's content ID.
func (m *Manifest) CID() cid.Cid { return CIDOf(m.Marshal()) }

// CIDOf is the content ID of manifest bytes b.
func CIDOf(b []byte) cid.Cid {
	mh, err := multihash.Sum(b, multihash.SHA2_256, -1)
	if err != nil {
		panic(err) // sha2-256 is always registered
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// CheckCID reports whether c has the form p2pshare uses, so that a peer
// cannot make us accept a weaker hash function.
func CheckCID(c cid.Cid) error {
	p := c.Prefix()
	if !c.Defined() || p.Version != 1 || p.Codec != cid.Raw || p.MhType != multihash.SHA2_256 || p.MhLength != sha256.Size {
		return ErrBadCID
	}
	return nil
}

// Verify checks manifest bytes b against content ID c and parses them.
func Verify(c cid.Cid, b []byte) (*Manifest, error) {
	if err := CheckCID(c); err != nil {
		return nil, err
	}
	if !CIDOf(b).Equals(c) {
		return nil, ErrCIDMismatch
	}
	return Parse(b)
}

// HeaderLen is the length of a manifest's header, which ParseHeader
// decodes: a fetcher reads it first and checks what it announces before
// it reads (and allocates room for) the chunk hashes.
const HeaderLen = headerLen

// Header is what a manifest's header announces: the file's size, chunk
// size, number of chunks and SHA-256.
type Header struct {
	Size      int64
	ChunkSize int
	NumChunks int
	FileHash  Hash
}

// Len is the length in bytes of the whole manifest the header announces.
func (h Header) Len() int { return headerLen + h.NumChunks*sha256.Size }

// ParseHeader decodes the first HeaderLen bytes of a manifest, checking
// every field it holds. It says nothing about the chunk hashes that follow
// (nor about the content ID: the whole manifest is needed for that).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < headerLen {
		return Header{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if !bytes.Equal(b[0:4], magic[:]) {
		return Header{}, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if b[4] != Version || b[5]|b[6]|b[7] != 0 {
		return Header{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[4])
	}
	size := binary.BigEndian.Uint64(b[8:16])
	chunkSize := binary.BigEndian.Uint32(b[16:20])
	n := binary.BigEndian.Uint32(b[20:24])
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return Header{}, fmt.Errorf("%w: chunk size %d", ErrMalformed, chunkSize)
	}
	if size > uint64(MaxChunks)*uint64(chunkSize) || n > MaxChunks {
		return Header{}, fmt.Errorf("%w: file too large", ErrMalformed)
	}
	if int(n) != NumChunks(int64(size), int(chunkSize)) {
		return Header{}, fmt.Errorf("%w: %d chunks for %d bytes", ErrMalformed, n, size)
	}
	h := Header{Size: int64(size), ChunkSize: int(chunkSize), NumChunks: int(n)}
	copy(h.FileHash[:], b[24:56])
	return h, nil
}

// Parse decodes manifest bytes, checking every field.
func Parse(b []byte) (*Manifest, error) {
	if len(b) < headerLen || len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if len(b) != h.Len() {
		return nil, fmt.Errorf("%w: length %d for %d chunks", ErrMalformed, len(b), h.NumChunks)
	}
	m := &Manifest{Size: h.Size, ChunkSize: h.ChunkSize, FileHash: h.FileHash, Chunks: make([]Hash, h.NumChunks)}
	for i := range m.Chunks {
		copy(m.Chunks[i][:], b[headerLen+i*sha256.Size:])
	}
	return m, nil
}
