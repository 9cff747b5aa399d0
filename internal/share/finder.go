package share

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Who has a CID: the Directory is internal/transfer's Finder.
const (
	// findPeerTimeout bounds the DHT lookup of an announced provider's
	// addresses.
	findPeerTimeout = 10 * time.Second
	// dhtProviders is how many providers one DHT search asks for.
	dhtProviders = 20
)

// FindProviders finds providers of c: first those that announced it to us
// or listed it in their catalog (online ones first), then whatever the
// DHT knows. This node is never among them; no peer comes twice. The
// channel closes when the search ends or ctx does.
func (d *Directory) FindProviders(ctx context.Context, c cid.Cid) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		seen := map[peer.ID]bool{d.net.ID(): true}
		send := func(ai peer.AddrInfo) bool {
			if seen[ai.ID] {
				return true
			}
			seen[ai.ID] = true
			select {
			case out <- ai:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, id := range d.Providers(c) {
			ai := peer.AddrInfo{ID: id, Addrs: d.net.Addrs(id)}
			if len(ai.Addrs) == 0 {
				// Announced through gossip by a peer we never met: ask
				// the DHT where it is.
				if d.routing == nil {
					continue
				}
				lookup, cancel := context.WithTimeout(ctx, findPeerTimeout)
				found, err := d.routing.FindPeer(lookup, id)
				cancel()
				if err != nil {
					continue
				}
				ai = found
			}
			if !send(ai) {
				return
			}
		}
		if d.routing == nil {
			return
		}
		for ai := range d.routing.FindProvidersAsync(ctx, c, dhtProviders) {
			if !send(ai) {
				return
			}
		}
	}()
	return out
}
