package p2p

import (
	"context"
	"encoding/base32"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Bounds on the DHT provider records this node stores for others. The DHT
// stores whatever ADD_PROVIDER a peer sends, for any key, and a record
// lives for the DHT's provide validity (48 h, then the hourly GC removes
// it), so one peer could fill the disk with records for arbitrary keys.
// kad-dht does not let a node bring its own provider store, only its
// datastore: the bounds are kept by providerLimiter, the provider
// datastore, which drops a new record beyond them (the DHT answers the
// ADD_PROVIDER as usual and does not retry). A record already stored is
// always refreshed; this node's own records are not counted and never
// refused.
const (
	// MaxProviderRecordsPerPeer is how many provider records one peer may
	// have stored here: one per published file, so a peer sharing more
	// files is found through its announcements and catalogue beyond it.
	MaxProviderRecordsPerPeer = 10_000
	// MaxProviderRecords is how many provider records of other peers are
	// stored in all, about 30 MiB on disk.
	MaxProviderRecords = 200_000
)

// providerLimiter is the DHT's provider datastore: it passes everything
// to the wrapped datastore, counting the provider records (keys under
// records.ProvidersKeyPrefix, which end in the provider's peer ID) per
// peer, and drops a Put of a new record that would exceed
// MaxProviderRecordsPerPeer or MaxProviderRecords.
type providerLimiter struct {
	datastore.Batching
	self    peer.ID
	log     *slog.Logger
	perPeer int // MaxProviderRecordsPerPeer, lower in tests
	total   int // MaxProviderRecords, lower in tests

	mu      sync.Mutex
	count   map[peer.ID]int
	stored  int
	dropped int // since the last log line
}

// newProviderLimiter counts the provider records already in ds.
func newProviderLimiter(ctx context.Context, ds datastore.Batching, self peer.ID, log *slog.Logger) (*providerLimiter, error) {
	l := &providerLimiter{
		Batching: ds,
		self:     self,
		log:      log,
		perPeer:  MaxProviderRecordsPerPeer,
		total:    MaxProviderRecords,
		count:    make(map[peer.ID]int),
	}
	res, err := ds.Query(ctx, query.Query{Prefix: records.ProvidersKeyPrefix, KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("count DHT provider records: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("count DHT provider records: %w", r.Error)
		}
		if p, ok := l.counted(datastore.RawKey(r.Key)); ok {
			l.count[p]++
			l.stored++
		}
	}
	return l, nil
}

// providerOf returns the provider of a provider-record key.
func providerOf(k datastore.Key) (peer.ID, bool) {
	s := k.String()
	if !strings.HasPrefix(s, records.ProvidersKeyPrefix) {
		return "", false
	}
	// kad-dht's key: unpadded standard base32 of the peer ID's bytes.
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s[strings.LastIndexByte(s, '/')+1:])
	if err != nil {
		return "", false
	}
	p, err := peer.IDFromBytes(b)
	if err != nil {
		return "", false
	}
	return p, true
}

// counted returns the provider of k if k is a provider record of another
// peer: the records the bounds are about. This node's own records are
// neither counted nor refused.
func (l *providerLimiter) counted(k datastore.Key) (peer.ID, bool) {
	p, ok := providerOf(k)
	return p, ok && p != l.self
}

// admitLocked reports whether a provider record of p may be written:
// exists says whether it is already stored; extraPeer and extraTotal are
// records added by an uncommitted batch, counted as stored.
func (l *providerLimiter) admitLocked(p peer.ID, exists bool, extraPeer, extraTotal int) bool {
	if exists {
		return true
	}
	n, all := l.count[p]+extraPeer, l.stored+extraTotal
	if n >= l.perPeer || all >= l.total {
		if l.dropped++; l.dropped == 1 || l.dropped%1000 == 0 {
			l.log.Warn("DHT provider record refused: over the bound", "provider", p,
				"provider_records", n, "per_peer_max", l.perPeer,
				"stored", all, "max", l.total, "refused_so_far", l.dropped)
		}
		return false
	}
	return true
}

func (l *providerLimiter) Put(ctx context.Context, k datastore.Key, v []byte) error {
	p, ok := l.counted(k)
	if !ok {
		return l.Batching.Put(ctx, k, v)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	exists, err := l.Batching.Has(ctx, k)
	if err != nil {
		return err
	}
	if !l.admitLocked(p, exists, 0, 0) {
		return nil
	}
	if err := l.Batching.Put(ctx, k, v); err != nil {
		return err
	}
	if !exists {
		l.count[p]++
		l.stored++
	}
	return nil
}

func (l *providerLimiter) Delete(ctx context.Context, k datastore.Key) error {
	p, ok := l.counted(k)
	if !ok {
		return l.Batching.Delete(ctx, k)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	exists, err := l.Batching.Has(ctx, k)
	if err != nil {
		return err
	}
	if err := l.Batching.Delete(ctx, k); err != nil {
		return err
	}
	if exists {
		l.forgetLocked(p)
	}
	return nil
}

func (l *providerLimiter) forgetLocked(p peer.ID) {
	l.stored--
	if l.count[p]--; l.count[p] <= 0 {
		delete(l.count, p)
	}
}

// Batch returns a batch that applies the bounds when it is committed.
func (l *providerLimiter) Batch(ctx context.Context) (datastore.Batch, error) {
	return &providerBatch{l: l}, nil
}

// providerBatch buffers a batch's operations; Commit admits the Puts and
// counts the Deletes as Put and Delete do, and writes the result as one
// batch of the wrapped datastore.
type providerBatch struct {
	l   *providerLimiter
	ops []batchOp
}

type batchOp struct {
	key    datastore.Key
	value  []byte
	delete bool
}

func (b *providerBatch) Put(_ context.Context, k datastore.Key, v []byte) error {
	b.ops = append(b.ops, batchOp{key: k, value: v})
	return nil
}

func (b *providerBatch) Delete(_ context.Context, k datastore.Key) error {
	b.ops = append(b.ops, batchOp{key: k, delete: true})
	return nil
}

func (b *providerBatch) Commit(ctx context.Context) error {
	l := b.l
	l.mu.Lock()
	defer l.mu.Unlock()
	inner, err := l.Batching.Batch(ctx)
	if err != nil {
		return err
	}
	// What the batch does to each provider record, to count once it is
	// committed: +1 added, -1 removed (relative to what is stored now).
	change := make(map[datastore.Key]int)
	state := func(k datastore.Key) (bool, error) { // stored, as of the ops so far
		switch change[k] {
		case 1:
			return true, nil
		case -1:
			return false, nil
		}
		return l.Batching.Has(ctx, k)
	}
	pending := make(map[peer.ID]int) // records added by this batch so far
	added := 0
	for _, op := range b.ops {
		p, isProv := l.counted(op.key)
		if !isProv {
			if op.delete {
				err = inner.Delete(ctx, op.key)
			} else {
				err = inner.Put(ctx, op.key, op.value)
			}
			if err != nil {
				return err
			}
			continue
		}
		exists, err := state(op.key)
		if err != nil {
			return err
		}
		if op.delete {
			if err := inner.Delete(ctx, op.key); err != nil {
				return err
			}
			if exists {
				if change[op.key] == 1 {
					delete(change, op.key)
					pending[p]--
					added--
				} else {
					change[op.key] = -1
				}
			}
			continue
		}
		// Admit against what would be stored with this batch's additions.
		if !l.admitLocked(p, exists, pending[p], added) {
			continue
		}
		if err := inner.Put(ctx, op.key, op.value); err != nil {
			return err
		}
		if !exists {
			if change[op.key] == -1 {
				delete(change, op.key)
			} else {
				change[op.key] = 1
			}
			pending[p]++
			added++
		}
	}
	if err := inner.Commit(ctx); err != nil {
		return err
	}
	for k, c := range change {
		p, _ := l.counted(k)
		if c == 1 {
			l.count[p]++
			l.stored++
		} else {
			l.forgetLocked(p)
		}
	}
	return nil
}

// providerCount reports how many provider records p has stored here and
// how many other peers' records are stored in all.
func (l *providerLimiter) providerCount(p peer.ID) (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[p], l.stored
}
