package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/collection"
	"github.com/p2pshare/p2pshare/internal/manifest"
)

// ErrNotCollection: the CID names a file, not a collection.
var ErrNotCollection = errors.New("not a folder")

// errIsFile stops reading a manifest once its header shows a file.
var errIsFile = errors.New("a file")

// FetchCollection returns the document of the collection c, verified,
// without downloading its files (ls): from this node if it publishes c or
// has an interrupted download of it, otherwise from its providers
// (opt.Hints, opt.From, the Finder), asked in turn until ctx ends.
// ErrNotCollection if c names a file.
func (s *Service) FetchCollection(ctx context.Context, c cid.Cid, opt GetOptions) (*collection.Collection, error) {
	if err := manifest.CheckCID(c); err != nil {
		return nil, err
	}
	if cs, ok := s.cfg.Source.(CollectionSource); ok {
		if b, ok := cs.Collection(c, s.cfg.Host.ID()); ok {
			return collection.Verify(c, b)
		}
	}
	if cf, ok := s.resumeCollection(c); ok {
		return cf.coll, nil
	}
	backoff := s.cfg.RetryInterval
	var errs []error
	var notColl error
	for {
		var provs []peer.AddrInfo
		provs = append(provs, opt.Hints...)
		for _, id := range opt.From {
			provs = append(provs, peer.AddrInfo{ID: id})
		}
		if s.cfg.Finder != nil {
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			for ai := range s.cfg.Finder.FindProviders(fctx, c) {
				if len(opt.From) == 0 || containsPeer(opt.From, ai.ID) {
					provs = append(provs, ai)
				}
			}
			cancel()
		}
		seen := make(map[peer.ID]bool)
		for _, ai := range provs {
			if seen[ai.ID] || ai.ID == s.cfg.Host.ID() {
				continue
			}
			seen[ai.ID] = true
			coll, err := s.fetchDocFrom(ctx, ai, c)
			if err == nil {
				return coll, nil
			}
			if errors.Is(err, ErrNotCollection) {
				// An unverified header: another provider may say otherwise.
				notColl = err
				continue
			}
			errs = append(errs, fmt.Errorf("peer %s: %w", ai.ID, err))
			if ctx.Err() != nil {
				break
			}
		}
		if notColl != nil {
			return nil, notColl
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			if len(errs) > 0 {
				return nil, fmt.Errorf("%w: %w", ErrNoProviders, errors.Join(errs...))
			}
			return nil, fmt.Errorf("%w: %w", ErrNoProviders, context.Cause(ctx))
		}
		backoff = min(backoff*2, maxRetry)
		errs = nil
	}
}

// fetchDocFrom asks one provider for c's document.
func (s *Service) fetchDocFrom(ctx context.Context, ai peer.AddrInfo, c cid.Cid) (*collection.Collection, error) {
	cn, err := s.connect(ctx, ai, c)
	if err != nil {
		return nil, fmt.Errorf("open fetch stream: %w", err)
	}
	if err := cn.begin(); err != nil {
		cn.reset()
		return nil, err
	}
	_, _, err = cn.fetchManifest(func(manifest.Header) error { return errIsFile }, nil)
	var cf *collectionFound
	if errors.As(err, &cf) {
		cn.done()
		s.keep(cn)
		return cf.coll, nil
	}
	cn.reset()
	if errors.Is(err, errIsFile) {
		return nil, fmt.Errorf("%s: %w", c, ErrNotCollection)
	}
	return nil, err
}
