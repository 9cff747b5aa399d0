package share

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// Datastore layout (the caller gives us our own namespace):
//
//	/published/<cid>  JSON record: name, size, mtime, sha256, chunk size, time,
//	                  audience ("to", absent when public)
//	/manifest/<cid>   the manifest bytes, so no rehash after a restart
//
// Manifests are verified against their CID once, at publish or at load,
// and then kept in memory (record.m): Open, called for every fetch
// request, only looks them up.
const (
	publishedPrefix = "/published"
	manifestPrefix  = "/manifest"
)

// record is one published file in the index.
type record struct {
	CID       string    `json:"cid"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	ModTime   int64     `json:"mtime_ns"` // of the file when hashed
	SHA256    []byte    `json:"sha256"`
	ChunkSize int       `json:"chunk_size"`
	Published time.Time `json:"published"`
	// Changed: the file on disk no longer matches; not served, not provided.
	Changed bool `json:"changed,omitempty"`
	// To is who may see and fetch the entry; absent: public.
	To Audience `json:"to,omitzero"`

	cid cid.Cid
	// m is the verified manifest of cid, shared read-only; nil only for a
	// Changed record whose manifest could not be loaded (never served).
	m *manifest.Manifest
}

func (r *record) entry() Entry {
	e := Entry{Name: r.Name, Size: r.Size, CID: r.cid, ChunkSize: r.ChunkSize, Published: r.Published, Audience: r.To.normalized()}
	copy(e.SHA256[:], r.SHA256)
	return e
}

func publishedKey(c cid.Cid) datastore.Key {
	return datastore.NewKey(publishedPrefix + "/" + c.String())
}
func manifestKey(c cid.Cid) datastore.Key { return datastore.NewKey(manifestPrefix + "/" + c.String()) }

// loadIndex reads every record; broken ones are skipped and reported.
func loadIndex(ctx context.Context, ds datastore.Datastore) (map[cid.Cid]*record, []error, error) {
	res, err := ds.Query(ctx, query.Query{Prefix: publishedPrefix})
	if err != nil {
		return nil, nil, fmt.Errorf("query published index: %w", err)
	}
	defer res.Close()
	out := make(map[cid.Cid]*record)
	var bad []error
	for r := range res.Next() {
		if r.Error != nil {
			return nil, nil, fmt.Errorf("read published index: %w", r.Error)
		}
		rec := new(record)
		if err := json.Unmarshal(r.Value, rec); err != nil {
			bad = append(bad, fmt.Errorf("index key %s: %w", r.Key, err))
			continue
		}
		c, err := cid.Decode(rec.CID)
		if err == nil {
			err = manifest.CheckCID(c)
		}
		if err == nil && len(rec.SHA256) != 32 {
			err = errors.New("bad sha256")
		}
		if err == nil {
			err = CheckName(rec.Name)
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("index key %s: %w", r.Key, err))
			continue
		}
		rec.cid = c
		rec.Published = rec.Published.UTC()
		rec.To = rec.To.normalized()
		m, err := loadManifest(ctx, ds, c)
		if err != nil && !rec.Changed {
			bad = append(bad, fmt.Errorf("index key %s (%q): %w", r.Key, rec.Name, err))
			continue
		}
		rec.m = m
		out[c] = rec
	}
	return out, bad, nil
}

// loadManifest reads the manifest of c and verifies it against c.
func loadManifest(ctx context.Context, ds datastore.Datastore, c cid.Cid) (*manifest.Manifest, error) {
	mb, err := ds.Get(ctx, manifestKey(c))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := manifest.Verify(c, mb)
	if err != nil {
		return nil, fmt.Errorf("stored manifest: %w", err)
	}
	return m, nil
}

// storeRecords writes put (with its manifest bytes, if given) and deletes
// del in one batch.
func storeRecords(ctx context.Context, ds datastore.Batching, put []*record, manifests map[cid.Cid][]byte, del []cid.Cid) error {
	b, err := ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("published index: %w", err)
	}
	for _, r := range put {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(ctx, publishedKey(r.cid), v); err != nil {
			return fmt.Errorf("published index: put %s: %w", r.cid, err)
		}
		if m, ok := manifests[r.cid]; ok {
			if err := b.Put(ctx, manifestKey(r.cid), m); err != nil {
				return fmt.Errorf("published index: put manifest %s: %w", r.cid, err)
			}
		}
	}
	for _, c := range del {
		if err := b.Delete(ctx, publishedKey(c)); err != nil {
			return fmt.Errorf("published index: delete %s: %w", c, err)
		}
		if err := b.Delete(ctx, manifestKey(c)); err != nil {
			return fmt.Errorf("published index: delete manifest %s: %w", c, err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("published index: commit: %w", err)
	}
	if err := ds.Sync(ctx, datastore.NewKey(publishedPrefix)); err != nil {
		return fmt.Errorf("published index: sync: %w", err)
	}
	return ds.Sync(ctx, datastore.NewKey(manifestPrefix))
}
