package p2p

import (
	"context"
	"encoding/base32"
	"log/slog"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// provKey is kad-dht's datastore key for a provider record of key k.
func provKey(k string, p peer.ID) datastore.Key {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	return datastore.RawKey(records.ProvidersKeyPrefix + enc.EncodeToString([]byte(k)) + "/" + enc.EncodeToString([]byte(p)))
}

func TestProviderLimiterBounds(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(datastore.NewMapDatastore())
	self, a, b := newID(t), newID(t), newID(t)
	open := func() *providerLimiter {
		l, err := newProviderLimiter(ctx, store, self, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		l.perPeer, l.total = 3, 5
		return l
	}
	l := open()
	has := func(k datastore.Key) bool {
		ok, err := store.Has(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// Per peer: the fourth new record of a is dropped; a refresh of a
	// stored one is not.
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		if err := l.Put(ctx, provKey(k, a), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	if has(provKey("k4", a)) {
		t.Error("a's fourth record was stored")
	}
	if err := l.Put(ctx, provKey("k1", a), []byte{2}); err != nil || !has(provKey("k1", a)) {
		t.Errorf("refresh of a stored record: %v", err)
	}
	// In a batch, as the DHT writes them: b's records count towards the
	// total, which stops at 5; this node's own records are never refused.
	batch, err := l.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		batch.Put(ctx, provKey(k, b), []byte{1})
		batch.Put(ctx, provKey(k, self), []byte{1})
	}
	batch.Put(ctx, datastore.NewKey("/other/key"), []byte{1}) // not a provider record: untouched
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, all := l.providerCount(b); n != 2 || all != 5 {
		t.Errorf("after the batch: b has %d, %d in all; want 2 (total bound 5 reached), 5", n, all)
	}
	if !has(provKey("k3", self)) {
		t.Error("this node's own record was refused")
	}
	if !has(datastore.NewKey("/other/key")) {
		t.Error("a key outside the provider records was not written")
	}
	// Deleting (the DHT's expiry) frees room.
	if err := l.Delete(ctx, provKey("k1", a)); err != nil {
		t.Fatal(err)
	}
	del, _ := l.Batch(ctx)
	del.Delete(ctx, provKey("k2", a))
	del.Delete(ctx, provKey("nope", a)) // not stored: no change
	if err := del.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, all := l.providerCount(a); n != 1 || all != 3 {
		t.Errorf("after deletes: a has %d, %d in all; want 1, 3", n, all)
	}
	if err := l.Put(ctx, provKey("k9", b), []byte{1}); err != nil || !has(provKey("k9", b)) {
		t.Errorf("b's record after room was freed: %v", err)
	}
	// The counts survive a restart.
	want, wantAll := l.providerCount(b)
	if n, all := open().providerCount(b); n != want || all != wantAll {
		t.Errorf("after reopening: b has %d, %d in all; want %d, %d", n, all, want, wantAll)
	}
}
