package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// The catalog protocol (proto.CatalogID): the client (the Directory's
// pulls) sends one CatalogRequest and closes its side; the server (the
// Library) answers with one CatalogResponse listing everything it publishes
// that the asking peer may see (audience.go) and closes. The stream
// authenticates both peers: every entry is attributed to the answering
// one, and the answer is filtered for the asking one.
const (
	catalogServiceName = "p2pshare.catalog"
	// catalogTimeout bounds a whole exchange, on both sides.
	catalogTimeout = 30 * time.Second
)

// handleCatalog answers a catalog request, in the style of go-libp2p's
// ping: a service scope, a deadline, bounded reads, reset on any error.
func (l *Library) handleCatalog(st network.Stream) {
	if err := st.Scope().SetService(catalogServiceName); err != nil {
		l.log.Debug("catalog: attach stream to service scope", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	if err := st.SetDeadline(time.Now().Add(catalogTimeout)); err != nil {
		st.Reset()
		return
	}
	var req proto.CatalogRequest
	if err := proto.NewReader(st, proto.MaxRequestSize).ReadMsg(&req); err != nil {
		l.log.Debug("catalog: bad request", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	resp := l.catalogResponse(st.Conn().RemotePeer())
	size := gproto.Size(resp)
	if err := st.Scope().ReserveMemory(size, network.ReservationPriorityLow); err != nil {
		l.log.Debug("catalog: reserve memory", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(size)
	if err := proto.WriteMsg(st, resp); err != nil {
		l.log.Debug("catalog: write response", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	st.Close()
}

// catalogResponse lists our published entries that are still served and
// that p may see, one per name (aliases.go), cut to fit
// proto.MaxCatalogSize.
func (l *Library) catalogResponse(p peer.ID) *proto.CatalogResponse {
	l.mu.Lock()
	es := l.listedLocked(true)
	l.mu.Unlock()
	es = slices.DeleteFunc(es, func(e Entry) bool { return !l.allows(e.Audience, p) })
	sortEntries(es)
	resp := &proto.CatalogResponse{}
	size := 0
	for _, e := range es {
		pes := toWireAll(e) // one entry per name, never cut apart
		n := wireSize(pes)
		if size+n > proto.MaxCatalogSize-16 {
			l.log.Warn("catalog too large; some published files are not listed", "listed", len(resp.Entries), "published", len(es))
			break
		}
		size += n
		resp.Entries = append(resp.Entries, pes...)
	}
	return resp
}

func toWire(e Entry) *proto.CatalogEntry {
	if e.Collection {
		return &proto.CatalogEntry{Name: e.Name, Size: uint64(e.Size), Cid: e.CID.Bytes(),
			PublishedUnix: e.Published.Unix(), Collection: true, Files: uint64(e.Files)}
	}
	return &proto.CatalogEntry{
		Name:          e.Name,
		Size:          uint64(e.Size),
		Cid:           e.CID.Bytes(),
		Sha256:        e.SHA256[:],
		PublishedUnix: e.Published.Unix(),
		ChunkSize:     uint32(e.ChunkSize),
	}
}

// fromWire checks one entry received from a peer.
func fromWire(pe *proto.CatalogEntry) (Entry, error) {
	c, err := cid.Cast(pe.GetCid())
	if err != nil {
		return Entry{}, fmt.Errorf("bad CID: %w", err)
	}
	if err := manifest.CheckCID(c); err != nil {
		return Entry{}, err
	}
	if err := CheckName(pe.GetName()); err != nil {
		return Entry{}, err
	}
	if pe.GetCollection() {
		return collectionFromWire(pe, c)
	}
	if len(pe.GetSha256()) != 32 {
		return Entry{}, fmt.Errorf("sha256 of %d bytes", len(pe.GetSha256()))
	}
	cs := pe.GetChunkSize()
	if cs < manifest.MinChunkSize || cs > manifest.MaxChunkSize {
		return Entry{}, fmt.Errorf("chunk size %d out of range", cs)
	}
	if pe.GetSize() > uint64(manifest.MaxChunks)*uint64(cs) {
		return Entry{}, fmt.Errorf("size %d too large", pe.GetSize())
	}
	e := Entry{
		Name:      pe.GetName(),
		Size:      int64(pe.GetSize()),
		CID:       c,
		ChunkSize: int(cs),
		Published: time.Unix(pe.GetPublishedUnix(), 0),
	}
	copy(e.SHA256[:], pe.GetSha256())
	return e, nil
}

// collectionFromWire checks a folder's entry: a file count and a total
// size a collection document can have, no hash or chunk size.
func collectionFromWire(pe *proto.CatalogEntry, c cid.Cid) (Entry, error) {
	if len(pe.GetSha256()) != 0 || pe.GetChunkSize() != 0 {
		return Entry{}, errors.New("folder with a file hash or chunk size")
	}
	if pe.GetFiles() > collection.MaxEntries {
		return Entry{}, fmt.Errorf("folder of %d files, more than %d", pe.GetFiles(), collection.MaxEntries)
	}
	if pe.GetSize() > math.MaxInt64 {
		return Entry{}, fmt.Errorf("folder size %d too large", pe.GetSize())
	}
	return Entry{
		Name:       pe.GetName(),
		Size:       int64(pe.GetSize()),
		CID:        c,
		Published:  time.Unix(pe.GetPublishedUnix(), 0),
		Collection: true,
		Files:      int(pe.GetFiles()),
	}, nil
}

// fetchCatalog asks p for its catalog. Invalid entries are dropped (and
// reported in bad); a malformed response is an error.
func (d *Directory) fetchCatalog(ctx context.Context, p peer.ID) (entries []Entry, bad int, err error) {
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	// A peer behind NAT may be reachable only through a relay until the
	// hole punch: a catalog is small enough for a limited circuit.
	ctx = network.WithAllowLimitedConn(ctx, "catalog")
	st, err := d.net.NewStream(ctx, p, proto.CatalogID)
	if err != nil {
		return nil, 0, err
	}
	if err := st.Scope().SetService(catalogServiceName); err != nil {
		st.Reset()
		return nil, 0, err
	}
	deadline, _ := ctx.Deadline()
	if err := st.SetDeadline(deadline); err != nil {
		st.Reset()
		return nil, 0, err
	}
	if err := proto.WriteMsg(st, &proto.CatalogRequest{}); err != nil {
		st.Reset()
		return nil, 0, fmt.Errorf("send request: %w", err)
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return nil, 0, err
	}
	entries, bad, err = readCatalog(st)
	if err != nil {
		st.Reset()
		return nil, 0, err
	}
	st.Close()
	return entries, bad, nil
}

// readCatalog reads one CatalogResponse (at most proto.MaxCatalogSize)
// from a peer and checks its entries: invalid ones are dropped and
// counted in bad; a malformed response is an error. The entries of one
// CID (one per name) come back as one (groupByCID).
func readCatalog(r io.Reader) (entries []Entry, bad int, err error) {
	var resp proto.CatalogResponse
	if err := proto.NewReader(r, proto.MaxCatalogSize).ReadMsg(&resp); err != nil {
		return nil, 0, fmt.Errorf("read response: %w", err)
	}
	for _, pe := range resp.GetEntries() {
		e, err := fromWire(pe)
		if err != nil {
			bad++
			continue
		}
		entries = append(entries, e)
	}
	return groupByCID(entries), bad, nil
}
