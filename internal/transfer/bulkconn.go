package transfer

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
)

// The transport a fetch stream rides. Two peers are often connected more
// than once: over TCP and over QUIC (both dialled each other, or a hole
// punch added a connection), and libp2p opens a new stream on the
// connection with the most streams, whatever its transport. For file
// bytes the transport matters: on the two-core machine of
// cmd/p2pbench/findings.md, a bare QUIC stream (quic-go: one UDP datagram
// of ~1,400 bytes per packet, each sealed, sent and acknowledged on its
// own) carries about half of what TCP with TLS and yamux does, and a get
// over QUIC costs the two nodes about 1.7 times the CPU per byte. So a
// fetch stream is opened on a direct TCP connection when there is one,
// and otherwise where libp2p chooses: a hole-punched QUIC connection, the
// only direct one, is used as before, and so is a relayed one that Reach
// allowed.

// bulkConn returns the connection to open a fetch stream on when libp2p's
// own choice should be overridden: a live, direct (not relayed), unlimited
// TCP connection to p. Nil when there is none.
func bulkConn(h host.Host, p peer.ID) network.Conn {
	for _, c := range h.Network().ConnsToPeer(p) {
		if c.IsClosed() || c.Stat().Limited || !isDirectTCP(c.RemoteMultiaddr()) {
			continue
		}
		return c
	}
	return nil
}

// isDirectTCP reports whether a is a TCP address, not through a relay
// (nor a WebSocket, which rides TCP but frames every message).
func isDirectTCP(a ma.Multiaddr) bool {
	tcp := false
	for _, c := range a {
		switch c.Code() {
		case ma.P_TCP:
			tcp = true
		case ma.P_CIRCUIT, ma.P_WS, ma.P_WSS, ma.P_WEBTRANSPORT, ma.P_QUIC, ma.P_QUIC_V1:
			return false
		}
	}
	return tcp
}

// newFetchStream opens a stream for protocol pid to p: on bulkConn if
// there is one, otherwise as h.NewStream does (which connects if needed).
// On bulkConn the protocol is negotiated before the stream is returned,
// by ctx's deadline.
func newFetchStream(ctx context.Context, h host.Host, p peer.ID, pid protocol.ID) (network.Stream, error) {
	c := bulkConn(h, p)
	if c == nil {
		return h.NewStream(ctx, p, pid)
	}
	st, err := c.NewStream(ctx)
	if err != nil {
		// The connection went away meanwhile: let libp2p choose.
		return h.NewStream(ctx, p, pid)
	}
	if err := st.SetProtocol(pid); err != nil {
		st.Reset()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	if err := msmux.SelectProtoOrFail(pid, st); err != nil {
		st.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("failed to negotiate protocol: %w", err)
	}
	st.SetDeadline(time.Time{})
	return st, nil
}
