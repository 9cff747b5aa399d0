package hostile

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/p2pshare/p2pshare/internal/node"
)

// pingOnce pings to from h once within d.
func pingOnce(h host.Host, to peer.ID, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := ping.Ping(ctx, h, to)
	res, ok := <-ch
	cancel()
	for range ch {
	}
	if !ok {
		return 0, ctx.Err()
	}
	return res.RTT, res.Error
}

// scopeLimit is the limit of a resource-manager scope, as the victim's
// resource manager sets it.
func scopeLimit(t *testing.T, s network.ResourceScope) rcmgr.Limit {
	t.Helper()
	l, ok := s.(rcmgr.ResourceScopeLimiter)
	if !ok {
		t.Fatalf("scope %T does not expose its limit", s)
	}
	return l.Limit()
}

// inbound is a resource-manager scope's inbound stream limit and the
// inbound streams in it now.
func inbound(t *testing.T, s network.ResourceScope) (limit, now int) {
	t.Helper()
	return scopeLimit(t, s).GetStreamLimit(network.DirInbound), s.Stat().NumStreamsInbound
}

// transientInbound is the victim's transient scope: its inbound stream
// limit and the inbound streams in it now.
func transientInbound(t *testing.T, n *node.Node) (limit, now int) {
	t.Helper()
	err := n.P2P.Host().Network().ResourceManager().ViewTransient(func(s network.ResourceScope) error {
		limit, now = inbound(t, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return limit, now
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
