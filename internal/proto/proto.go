// Package proto holds p2pshare's protocol IDs, wire messages and the limits
// that bound them. Messages are protobuf, varint-length-delimited with
// go-msgio/pbio, and every read is bounded by a named maximum before any
// allocation. File bytes never travel in these messages: they follow a
// FetchResponse as an internal/bbsaes sealed stream.
//
// Readers: pbio wraps its reader in a bufio.Reader. When protobuf messages
// and sealed streams share one libp2p stream, create a single
// bufio.Reader for the stream and give that same reader to both, so no
// bytes are lost to read-ahead (NewReader below does this).
package proto

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative p2pshare.proto"

import (
	"bufio"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	gproto "google.golang.org/protobuf/proto"
)

// Protocol IDs, the one place they are spelled out. Versioned: an
// incompatible change gets a new number.
const (
	// Prefix starts every p2pshare protocol ID and is the kad-dht protocol
	// prefix (the DHT speaks /p2pshare/kad/1.0.0). internal/p2p counts a
	// peer that speaks any protocol under it as a p2pshare peer.
	Prefix protocol.ID = "/p2pshare"

	// CatalogID is the catalog protocol (internal/share).
	CatalogID = Prefix + "/catalog/1"
	// FetchID is the file transfer protocol (internal/transfer).
	FetchID = Prefix + "/fetch/1"
	// InviteID is the invitation protocol: a PAKE over a one-time code
	// (internal/invite).
	InviteID = Prefix + "/invite/1"
	// DirectAnnounceID carries one Announcement to one peer over a direct
	// stream (internal/share): how entries published to a restricted
	// audience, which never go on AnnounceTopic, reach the peers allowed
	// to see them. The publisher is the stream's remote peer.
	DirectAnnounceID = Prefix + "/announce-direct/1"
	// AnnounceTopic is the GossipSub topic of publish and unpublish
	// announcements (internal/share).
	AnnounceTopic = string(Prefix) + "/announce/1"
)

// Limits, checked before allocation.
const (
	MaxNameLen          = 255
	MaxRequestSize      = 1 << 10 // FetchRequest, CatalogRequest
	MaxResponseSize     = 4 << 10 // FetchResponse
	MaxCatalogSize      = 8 << 20 // CatalogResponse
	MaxAnnouncementSize = 1 << 20 // Announcement
	MaxChunksPerRequest = 64
	// ReadBufferSize is the size of the one bufio.Reader kept per stream.
	ReadBufferSize = 128 << 10
)

// Reader reads delimited protobuf messages and exposes the buffered byte
// stream beneath them for the sealed streams that follow.
type Reader struct {
	*bufio.Reader
	max int
}

// NewReader returns a Reader over r whose messages are at most max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{Reader: bufio.NewReaderSize(r, ReadBufferSize), max: max}
}

// ReadMsg reads one delimited message into m.
func (r *Reader) ReadMsg(m gproto.Message) error {
	// pbio.NewDelimitedReader reuses r.Reader as its bufio.Reader because
	// it is already one of sufficient size, so nothing is read ahead
	// beyond what the bufio.Reader itself holds.
	return pbio.NewDelimitedReader(r.Reader, r.max).ReadMsg(m)
}

// WriteMsg writes one delimited message to w.
func WriteMsg(w io.Writer, m gproto.Message) error {
	return pbio.NewDelimitedWriter(w).WriteMsg(m)
}
