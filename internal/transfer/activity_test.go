package transfer

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// After a download, both ends know that file bytes moved with the other;
// a peer nothing was exchanged with is not active.
func TestActiveWithinAfterGet(t *testing.T) {
	srv := newNode(t)
	data := pattern(3*testChunk, 5)
	c := srv.publish(t, "a.bin", data, testChunk)
	cli := newNode(t)
	cli.fnd.set(addrInfo(srv.h))
	if cli.svc.ActiveWithin(srv.h.ID(), time.Hour) {
		t.Fatal("active before any transfer")
	}
	if _, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "a.bin"}); err != nil {
		t.Fatal(err)
	}
	if !cli.svc.ActiveWithin(srv.h.ID(), time.Minute) {
		t.Fatal("fetcher does not record bytes received from the provider")
	}
	if !srv.svc.ActiveWithin(cli.h.ID(), time.Minute) {
		t.Fatal("server does not record bytes sent to the fetcher")
	}
	if cli.svc.ActiveWithin(peer.ID("someone else"), time.Hour) {
		t.Fatal("a stranger is active")
	}
}
