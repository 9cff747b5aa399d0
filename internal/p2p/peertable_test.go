package p2p

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func newID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newTable(t *testing.T, ds datastore.Datastore) *PeerTable {
	t.Helper()
	pt, err := newPeerTable(context.Background(), ds, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestPeerTableSourceRules(t *testing.T) {
	tests := []struct {
		first, then, want Source
	}{
		{SourceInbound, SourceMDNS, SourceMDNS},      // a strong source replaces a weak one
		{SourceOutbound, SourceManual, SourceManual}, //
		{SourceInbound, SourceOutbound, SourceInbound},
		{SourceMDNS, SourceInbound, SourceMDNS}, // a weak one never replaces anything
		{SourceMDNS, SourceDHT, SourceMDNS},     // the first strong source stays
		{SourceBootstrap, SourceManual, SourceBootstrap},
	}
	for _, tt := range tests {
		t.Run(string(tt.first)+"_then_"+string(tt.then), func(t *testing.T) {
			pt := newTable(t, dssync.MutexWrap(datastore.NewMapDatastore()))
			id := newID(t)
			pt.observe(id, nil, tt.first)
			pt.observe(id, nil, tt.then)
			if p, _ := pt.Get(id); p.Source != tt.want {
				t.Errorf("source = %q, want %q", p.Source, tt.want)
			}
		})
	}
}

func TestPeerTablePersistsAndLoadsOffline(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	pt := newTable(t, ds)
	id := newID(t)
	addr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")
	pt.observe(id, []multiaddr.Multiaddr{addr, addr.Encapsulate(multiaddr.StringCast("/p2p/" + id.String()))}, SourceMDNS)
	pt.markOnline(id, 3*time.Millisecond)
	before, _ := pt.Get(id)
	if err := pt.close(); err != nil {
		t.Fatal(err)
	}

	after, ok := newTable(t, ds).Get(id)
	if !ok {
		t.Fatal("peer lost across reload")
	}
	if after.Online {
		t.Error("loaded peer is online before any keepalive")
	}
	if len(after.Addrs) != 1 || !after.Addrs[0].Equal(addr) {
		t.Errorf("addrs = %v, want [%v] (deduplicated, /p2p stripped)", after.Addrs, addr)
	}
	if after.Source != SourceMDNS || after.RTT != before.RTT ||
		!after.FirstSeen.Equal(before.FirstSeen) || !after.LastSeen.Equal(before.LastSeen) {
		t.Errorf("reloaded %+v, want the fields of %+v", after, before)
	}
}

func TestPeerTableListOrderAndEvents(t *testing.T) {
	pt := newTable(t, dssync.MutexWrap(datastore.NewMapDatastore()))
	clock := time.Unix(1_700_000_000, 0)
	pt.now = func() time.Time { clock = clock.Add(time.Second); return clock }

	events, stop := pt.Subscribe()
	defer stop()

	old, recent, offline := newID(t), newID(t), newID(t)
	for _, id := range []peer.ID{offline, old, recent} {
		pt.observe(id, nil, SourceInbound)
	}
	pt.markOnline(offline, time.Millisecond)
	pt.markOnline(old, time.Millisecond)
	pt.markOnline(recent, time.Millisecond)
	pt.markOffline(offline, context.DeadlineExceeded)

	var got []peer.ID
	for _, p := range pt.List() {
		got = append(got, p.ID)
	}
	want := []peer.ID{recent, old, offline}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("List order = %v, want %v (online first, then most recently seen)", got, want)
	}
	if p, _ := pt.Get(offline); p.LastError == "" {
		t.Error("failed ping left no LastError")
	}

	wantKinds := []EventKind{PeerAdded, PeerAdded, PeerAdded, PeerOnline, PeerOnline, PeerOnline, PeerOffline}
	for i, k := range wantKinds {
		select {
		case ev := <-events:
			if ev.Kind != k {
				t.Errorf("event %d = %v, want %v", i, ev.Kind, k)
			}
		default:
			t.Fatalf("event %d (%v) missing", i, k)
		}
	}
}

func TestPeerTableSubscribeNeverBlocks(t *testing.T) {
	pt := newTable(t, dssync.MutexWrap(datastore.NewMapDatastore()))
	_, stop := pt.Subscribe() // never read
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range subscriberBuffer * 3 {
			pt.observe(newID(t), nil, SourceInbound)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a full subscriber blocked the table")
	}
	if pt.Len() != subscriberBuffer*3 {
		t.Fatalf("Len = %d", pt.Len())
	}
}

// TestPeerTableRemovePersists: a removed row is gone from the table, its
// subscribers hear of it, and it does not come back on reload.
func TestPeerTableRemovePersists(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	pt := newTable(t, ds)
	gone, kept := newID(t), newID(t)
	pt.observe(gone, nil, SourceManual)
	pt.observe(kept, nil, SourceManual)
	events, stop := pt.Subscribe()
	defer stop()
	if !pt.Remove(gone) {
		t.Fatal("Remove of a present row reported none")
	}
	if pt.Remove(gone) {
		t.Error("Remove twice reported a row")
	}
	if ev := <-events; ev.Kind != PeerRemoved || ev.Peer.ID != gone {
		t.Errorf("event %v %s, want removed %s", ev.Kind, ev.Peer.ID, gone)
	}
	if err := pt.close(); err != nil {
		t.Fatal(err)
	}
	re := newTable(t, ds)
	if _, ok := re.Get(gone); ok {
		t.Error("removed row came back on reload")
	}
	if _, ok := re.Get(kept); !ok {
		t.Error("the other row was lost")
	}
}
