package p2p

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A peer whose inbound streams keep being refused is banned past
// maxRefusalsPerWindow refusals in a window: its connections are closed,
// its streams and new connections refused until the ban ends. Another
// peer is unaffected, and refusals spread over windows do not add up.
func TestRefusalBan(t *testing.T) {
	rm, err := newResourceManager(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	now := time.Unix(1_000_000, 0)
	rm.now = func() time.Time { return now }
	closed := make(chan peer.ID, 4)
	rm.setClosePeer(func(p peer.ID) { closed <- p })

	flooder, other := peer.ID("flooder"), peer.ID("other")
	var held []network.StreamManagementScope
	defer func() {
		for _, s := range held {
			s.Done()
		}
	}()
	for range maxNegotiatingPerPeer {
		s, err := rm.OpenStream(flooder, network.DirInbound)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	refuse := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := rm.OpenStream(flooder, network.DirInbound); !errors.Is(err, network.ErrResourceLimitExceeded) {
				t.Fatalf("stream %d beyond the negotiation cap: err %v, want a resource limit error", i+1, err)
			}
		}
	}
	// Just under the limit in one window, then the window ends: no ban.
	refuse(maxRefusalsPerWindow)
	now = now.Add(refusalWindow)
	refuse(maxRefusalsPerWindow)
	select {
	case p := <-closed:
		t.Fatalf("%s closed after %d refusals in a window; the limit is %d", p, maxRefusalsPerWindow, maxRefusalsPerWindow)
	default:
	}
	refuse(1)
	select {
	case p := <-closed:
		if p != flooder {
			t.Fatalf("closed %s, want the flooder", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flooder's connections were not closed")
	}
	for _, s := range held {
		s.Done()
	}
	held = nil
	if _, err := rm.OpenStream(flooder, network.DirInbound); err == nil {
		t.Fatal("a banned peer's stream was accepted")
	}
	addr := ma.StringCast("/ip4/127.0.0.2/tcp/4001")
	c, err := rm.OpenConnection(network.DirInbound, true, addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetPeer(flooder); err == nil {
		t.Error("a banned peer's connection was accepted")
	}
	c.Done()
	s, err := rm.OpenStream(other, network.DirInbound)
	if err != nil {
		t.Fatalf("another peer's stream refused: %v", err)
	}
	s.Done()

	now = now.Add(banDuration)
	s, err = rm.OpenStream(flooder, network.DirInbound)
	if err != nil {
		t.Fatalf("stream after the ban ended: %v", err)
	}
	s.Done()
	c, err = rm.OpenConnection(network.DirInbound, true, addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetPeer(flooder); err != nil {
		t.Errorf("connection after the ban ended: %v", err)
	}
	c.Done()
}
