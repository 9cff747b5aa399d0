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
//	                  audience ("to", absent when public), other names of the
//	                  same content with their mtimes ("aliases", absent when
//	                  none; records written before have none)
//	/manifest/<cid>   the manifest bytes, so no rehash after a restart
//	/collection/<cid> JSON record of a published folder: name, time, mtimes
//	/document/<cid>   the folder's collection document
//
// A file of a published folder is a record like any other, its name the
// path inside the share folder ("photos/2024/a.jpg"), marked Indirect
// while it is published only because a folder lists it. One record per
// content ID: the same bytes in two folders, or under two paths, are
// hashed, stored and served once. The same bytes in two files of the share
// folder published directly are published under both names, one record
// (aliases.go).
//
// Manifests are verified against their CID once, at publish or at load,
// and then kept in memory (record.m): Open, called for every fetch
// request, only looks them up.
const (
	publishedPrefix = "/published"
	manifestPrefix  = "/manifest"
	collPrefix      = "/collection"
	docPrefix       = "/document"
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
	// Indirect: published only as a file of published folders (Name is
	// then a path); not listed in the catalogue, not provided on the DHT
	// on its own (the folder is), withdrawn with the last folder listing it.
	Indirect bool `json:"indirect,omitempty"`
	// To is who may see and fetch the entry; absent: public.
	To Audience `json:"to,omitzero"`
	// Aliases are the other names it is published under directly, with
	// their files' mtimes (aliases.go); never set when Indirect.
	Aliases []alias `json:"aliases,omitempty"`

	cid cid.Cid
	// m is the verified manifest of cid, shared read-only; nil only for a
	// Changed record whose manifest could not be loaded (never served).
	m *manifest.Manifest
}

func (r *record) entry() Entry {
	e := Entry{Name: r.Name, Size: r.Size, CID: r.cid, ChunkSize: r.ChunkSize, Published: r.Published, Audience: r.To.normalized()}
	for _, a := range r.Aliases {
		e.Aliases = append(e.Aliases, a.Name)
	}
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
			err = checkSharedPath(rec.Name)
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("index key %s: %w", r.Key, err))
			continue
		}
		if dropped := rec.checkAliases(); len(dropped) > 0 {
			bad = append(bad, fmt.Errorf("index key %s (%q): other names dropped: %q", r.Key, rec.Name, dropped))
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
	return indexWrite{put: put, manifests: manifests, del: del}.commit(ctx, ds)
}

// indexWrite is one change of the index, written in one batch and synced
// once, however many files it holds: a folder of 10,000 files costs one
// commit, not 10,000.
type indexWrite struct {
	put       []*record
	manifests map[cid.Cid][]byte // by put's CIDs
	del       []cid.Cid
	putColls  []*collRecord
	delColls  []cid.Cid
	// colls, if set, is the set of published folders after the change
	// (in memory only: see applyLocked).
	colls map[cid.Cid]*collRecord
}

func (w indexWrite) commit(ctx context.Context, ds datastore.Batching) error {
	b, err := ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("published index: %w", err)
	}
	for _, r := range w.put {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(ctx, publishedKey(r.cid), v); err != nil {
			return fmt.Errorf("published index: put %s: %w", r.cid, err)
		}
		if m, ok := w.manifests[r.cid]; ok {
			if err := b.Put(ctx, manifestKey(r.cid), m); err != nil {
				return fmt.Errorf("published index: put manifest %s: %w", r.cid, err)
			}
		}
	}
	for _, c := range w.del {
		if err := b.Delete(ctx, publishedKey(c)); err != nil {
			return fmt.Errorf("published index: delete %s: %w", c, err)
		}
		if err := b.Delete(ctx, manifestKey(c)); err != nil {
			return fmt.Errorf("published index: delete manifest %s: %w", c, err)
		}
	}
	for _, r := range w.putColls {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(ctx, collKey(r.cid), v); err != nil {
			return fmt.Errorf("published index: put folder %s: %w", r.cid, err)
		}
		if err := b.Put(ctx, docKey(r.cid), r.doc); err != nil {
			return fmt.Errorf("published index: put folder document %s: %w", r.cid, err)
		}
	}
	for _, c := range w.delColls {
		if err := b.Delete(ctx, collKey(c)); err != nil {
			return fmt.Errorf("published index: delete folder %s: %w", c, err)
		}
		if err := b.Delete(ctx, docKey(c)); err != nil {
			return fmt.Errorf("published index: delete folder document %s: %w", c, err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("published index: commit: %w", err)
	}
	prefixes := []string{publishedPrefix, manifestPrefix}
	if len(w.putColls)+len(w.delColls) > 0 {
		prefixes = append(prefixes, collPrefix, docPrefix)
	}
	for _, p := range prefixes {
		if err := ds.Sync(ctx, datastore.NewKey(p)); err != nil {
			return fmt.Errorf("published index: sync: %w", err)
		}
	}
	return nil
}
