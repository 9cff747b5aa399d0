package transfer

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A provider still waiting for a worker slot when a round ends (more were
// found than MaxProviders) must be usable in the next round (after
// finish found damaged chunks): the round's end marks it failed, so a
// search that finds it again queues it.
func TestRoundEndRequeuesWaitingProvider(t *testing.T) {
	g := &getter{
		s:     &Service{cfg: Config{Host: newHost(t, false), MaxProviders: 1, RetryInterval: time.Second}},
		ctx:   t.Context(),
		ready: make(chan struct{}),
	}
	g.swarm = newSwarm(g)
	sw := g.swarm
	p := peer.ID("waiting-provider")

	sw.begin()
	sw.add(peer.AddrInfo{ID: p})
	if !slices.Contains(sw.pending, p) {
		t.Fatal("a new provider is not queued")
	}
	sw.end()

	sw.begin()
	defer sw.end()
	sw.add(peer.AddrInfo{ID: p})
	if !slices.Contains(sw.pending, p) {
		t.Fatalf("provider left waiting by the last round is not queued again (status %d)", sw.provs[p].status)
	}
}
