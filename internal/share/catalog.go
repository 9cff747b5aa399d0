package share

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	gproto "google.golang.org/protobuf/proto"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// The catalog protocol (proto.CatalogID): the client sends one
// CatalogRequest and closes its side; the server answers with one
// CatalogResponse listing everything it publishes and closes. The stream
// authenticates the answering peer, so every entry is attributed to it.
const (
	catalogServiceName = "p2pshare.catalog"
	// catalogTimeout bounds a whole exchange, on both sides.
	catalogTimeout = 30 * time.Second
	// maxConcurrentPulls bounds catalog pulls running at once.
	maxConcurrentPulls = 8
)

// handleCatalog answers a catalog request, in the style of go-libp2p's
// ping: a service scope, a deadline, bounded reads, reset on any error.
func (s *Service) handleCatalog(st network.Stream) {
	if err := st.Scope().SetService(catalogServiceName); err != nil {
		s.log.Debug("catalog: attach stream to service scope", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	if err := st.SetDeadline(time.Now().Add(catalogTimeout)); err != nil {
		st.Reset()
		return
	}
	var req proto.CatalogRequest
	if err := proto.NewReader(st, proto.MaxRequestSize).ReadMsg(&req); err != nil {
		s.log.Debug("catalog: bad request", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	resp := s.catalogResponse()
	size := gproto.Size(resp)
	if err := st.Scope().ReserveMemory(size, network.ReservationPriorityLow); err != nil {
		s.log.Debug("catalog: reserve memory", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(size)
	if err := proto.WriteMsg(st, resp); err != nil {
		s.log.Debug("catalog: write response", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	st.Close()
}

// catalogResponse lists our published entries that are still served, cut
// to fit proto.MaxCatalogSize.
func (s *Service) catalogResponse() *proto.CatalogResponse {
	s.mu.Lock()
	var es []Entry
	for _, r := range s.index {
		if !r.Changed {
			es = append(es, r.entry())
		}
	}
	s.mu.Unlock()
	sortEntries(es)
	resp := &proto.CatalogResponse{}
	size := 0
	for _, e := range es {
		pe := toWire(e)
		n := gproto.Size(pe) + 8 // field tag and length prefix, generously
		if size+n > proto.MaxCatalogSize-16 {
			s.log.Warn("catalog too large; some published files are not listed", "listed", len(resp.Entries), "published", len(es))
			break
		}
		size += n
		resp.Entries = append(resp.Entries, pe)
	}
	return resp
}

func toWire(e Entry) *proto.CatalogEntry {
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

// fetchCatalog asks p for its catalog. Invalid entries are dropped (and
// reported in bad); a malformed response is an error.
func (s *Service) fetchCatalog(ctx context.Context, p peer.ID) (entries []Entry, bad int, err error) {
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, proto.CatalogID)
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
	var resp proto.CatalogResponse
	if err := proto.NewReader(st, proto.MaxCatalogSize).ReadMsg(&resp); err != nil {
		st.Reset()
		return nil, 0, fmt.Errorf("read response: %w", err)
	}
	st.Close()
	for _, pe := range resp.GetEntries() {
		e, err := fromWire(pe)
		if err != nil {
			bad++
			continue
		}
		entries = append(entries, e)
	}
	return entries, bad, nil
}

// pull fetches p's catalog and makes it p's complete list.
func (s *Service) pull(ctx context.Context, p peer.ID) error {
	since := s.remote.Now() // before the request: announcements after it win
	entries, bad, err := s.fetchCatalog(ctx, p)
	if err != nil {
		return fmt.Errorf("catalog of %s: %w", p, err)
	}
	if bad > 0 {
		s.log.Warn("catalog: dropped invalid entries", "peer", p, "dropped", bad, "kept", len(entries))
	}
	s.replaceCatalog(p, since, entries)
	s.log.Debug("catalog pulled", "peer", p, "entries", len(entries))
	return nil
}

// pullBackground pulls p's catalog unless a pull of p is already running.
func (s *Service) pullBackground(p peer.ID, sem chan struct{}) {
	s.pullMu.Lock()
	if s.pulling[p] {
		s.pullMu.Unlock()
		return
	}
	s.pulling[p] = true
	s.pullMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.pullMu.Lock()
			delete(s.pulling, p)
			s.pullMu.Unlock()
		}()
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-s.ctx.Done():
			return
		}
		if err := s.pull(s.ctx, p); err != nil && s.ctx.Err() == nil {
			s.log.Debug("catalog pull failed", "err", err)
		}
	}()
}

// supportsCatalog reports whether p advertised the catalog protocol.
func (s *Service) supportsCatalog(p peer.ID) bool {
	ps, err := s.h.Peerstore().SupportsProtocols(p, proto.CatalogID)
	return err == nil && len(ps) > 0
}

// catalogPeers lists connected peers that speak the catalog protocol.
func (s *Service) catalogPeers() []peer.ID {
	var out []peer.ID
	for _, p := range s.h.Network().Peers() {
		if p != s.h.ID() && s.supportsCatalog(p) {
			out = append(out, p)
		}
	}
	return out
}

// eventLoop pulls the catalog of every peer that completes identify and
// supports the protocol, and reports online changes to Changes waiters.
// pulls are started from here and from pullLoop, sharing one semaphore.
func (s *Service) eventLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev, ok := <-s.evSub.Out():
			if !ok {
				return
			}
			switch ev := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if slices.Contains(ev.Protocols, proto.CatalogID) {
					s.pullBackground(ev.Peer, s.pullSem)
				}
			case event.EvtPeerConnectednessChanged:
				s.remote.mu.Lock()
				_, known := s.remote.peers[ev.Peer]
				if known {
					s.remote.notifyLocked()
				}
				s.remote.mu.Unlock()
			}
		}
	}
}

// pullLoop pulls the catalogs of connected peers at start and every
// CatalogInterval, so changes missed while announcements were lost are
// caught up.
func (s *Service) pullLoop() {
	t := time.NewTicker(s.cfg.CatalogInterval)
	defer t.Stop()
	for {
		for _, p := range s.catalogPeers() {
			s.pullBackground(p, s.pullSem)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh pulls the catalog of every connected peer that speaks the
// catalog protocol now, and waits for them. The error joins the peers
// that failed; the others are updated regardless.
func (s *Service) Refresh(ctx context.Context) error {
	peers := s.catalogPeers()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentPulls)
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.pull(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
