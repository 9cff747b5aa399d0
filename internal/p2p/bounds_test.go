package p2p

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func TestFilterAdvertised(t *testing.T) {
	ma := multiaddr.StringCast
	advertised := []multiaddr.Multiaddr{
		ma("/ip4/8.8.4.4/tcp/4001"),      // public
		ma("/ip4/192.168.1.20/tcp/22"),   // the victim's LAN
		ma("/ip4/127.0.0.1/tcp/631"),     // the victim itself
		ma("/ip4/0.0.0.0/tcp/5432"),      // the victim itself, too
		ma("/ip6/::/tcp/5432"),           //
		ma("/dns4/example.com/tcp/4001"), // not an IP: public by name
	}
	tests := []struct {
		remote string
		want   []string
	}{
		{"/ip4/1.2.3.4/tcp/5000", []string{"/ip4/8.8.4.4/tcp/4001", "/dns4/example.com/tcp/4001"}},
		{"/ip4/192.168.1.7/tcp/5000", []string{"/ip4/8.8.4.4/tcp/4001", "/ip4/192.168.1.20/tcp/22", "/dns4/example.com/tcp/4001"}},
		{"/ip4/127.0.0.1/tcp/5000", []string{"/ip4/8.8.4.4/tcp/4001", "/ip4/192.168.1.20/tcp/22", "/ip4/127.0.0.1/tcp/631", "/dns4/example.com/tcp/4001"}},
		{"", []string{"/ip4/8.8.4.4/tcp/4001", "/dns4/example.com/tcp/4001"}}, // no connection
	}
	for _, tt := range tests {
		var remote multiaddr.Multiaddr
		if tt.remote != "" {
			remote = ma(tt.remote)
		}
		var got []string
		for _, a := range filterAdvertised(advertised, remote) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("from %q: kept %v, want %v", tt.remote, got, tt.want)
		}
	}
}

// A full table evicts the row that matters least: offline before online,
// never-exchanged before exchanged, least recently seen first; rows named
// by the user are kept like exchanged ones.
func TestPeerTableEviction(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(datastore.NewMapDatastore())
	pt, err := newPeerTable(ctx, store, slog.New(slog.DiscardHandler), 4)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_000_000, 0)
	pt.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	ids := make([]peer.ID, 8)
	for i := range ids {
		ids[i] = newID(t)
	}
	exchanged, manual, online, oldOffline := ids[0], ids[1], ids[2], ids[3]
	pt.observe(exchanged, nil, SourceInbound)
	pt.markOnline(exchanged, 0)
	pt.markExchanged(exchanged)
	pt.markOffline(exchanged, nil) // offline, but we exchanged files with it
	pt.observe(manual, nil, SourceManual)
	pt.observe(oldOffline, nil, SourceInbound)
	pt.markOnline(oldOffline, 0)
	pt.markOffline(oldOffline, nil)
	pt.observe(online, nil, SourceInbound)
	pt.markOnline(online, 0)
	events, stop := pt.Subscribe()
	defer stop()

	// Each newcomer takes a row: first the offline, never-exchanged
	// peer's, then the newcomer's own predecessor (offline, never seen),
	// and the online one's only when nothing less useful is left.
	pt.observe(ids[4], nil, SourceInbound)
	if _, ok := pt.Get(oldOffline); ok {
		t.Error("the long-offline, never-exchanged peer was kept")
	}
	if ev := <-events; ev.Kind != PeerRemoved || ev.Peer.ID != oldOffline {
		t.Errorf("event %v %s, want removed %s", ev.Kind, ev.Peer.ID, oldOffline)
	}
	pt.observe(ids[5], nil, SourceInbound)
	if _, ok := pt.Get(ids[4]); ok {
		t.Error("an offline newcomer was kept over an online peer")
	}
	pt.markOnline(ids[5], 0)
	pt.observe(ids[6], nil, SourceInbound)
	pt.markOnline(ids[6], 0)
	pt.observe(ids[7], nil, SourceInbound)
	for _, id := range []peer.ID{exchanged, manual} {
		if _, ok := pt.Get(id); !ok {
			t.Errorf("valued peer %s evicted", id)
		}
	}
	if pt.Len() != 4 {
		t.Errorf("%d rows, bound 4", pt.Len())
	}
	// Evicted rows leave the datastore too; a reload keeps the bound.
	if err := pt.close(); err != nil {
		t.Fatal(err)
	}
	again, err := newPeerTable(ctx, store, slog.New(slog.DiscardHandler), 3)
	if err != nil {
		t.Fatal(err)
	}
	if again.Len() != 3 {
		t.Errorf("reloaded with bound 3: %d rows", again.Len())
	}
	if p, ok := again.Get(exchanged); !ok || p.LastExchange.IsZero() {
		t.Error("the exchanged peer, or when we last exchanged files with it, was not kept")
	}
}
