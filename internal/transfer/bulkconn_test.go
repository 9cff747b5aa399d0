package transfer

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dialOnly is a connection gater that lets its host dial only loopback
// addresses of one transport (TCP or QUIC), so that a test decides which
// connection each side makes. With meet set, a dial waits (a few seconds
// at most) until the other side's dial has started too: two hosts that
// dial each other at once end up with two connections, one each way, as
// two nodes that find each other by mDNS can.
type dialOnly struct {
	quic bool
	meet *meeting
}

// meeting is where two dials wait for each other.
type meeting struct {
	arrived [2]chan struct{}
	once    [2]sync.Once
}

func newMeeting() *meeting {
	return &meeting{arrived: [2]chan struct{}{make(chan struct{}), make(chan struct{})}}
}

func (g dialOnly) InterceptPeerDial(peer.ID) bool { return true }
func (g dialOnly) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	ok := manet.IsIPLoopback(a) && isQUIC(a) == g.quic && (g.quic || isDirectTCP(a))
	if ok && g.meet != nil {
		me, other := 0, 1
		if g.quic {
			me, other = 1, 0
		}
		g.meet.once[me].Do(func() { close(g.meet.arrived[me]) })
		select {
		case <-g.meet.arrived[other]:
		case <-time.After(5 * time.Second):
		}
	}
	return ok
}
func (g dialOnly) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g dialOnly) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g dialOnly) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

// newDualHost starts a host listening on loopback TCP and QUIC that dials
// only the transport gate allows.
func newDualHost(tb testing.TB, gate dialOnly) host.Host {
	tb.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(tls.ID, tls.New),
		libp2p.ConnectionGater(gate),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// connTransport names the transport of c: "tcp" or "quic".
func connTransport(c network.Conn) string {
	if isQUIC(c.RemoteMultiaddr()) {
		return "quic"
	}
	if isDirectTCP(c.RemoteMultiaddr()) {
		return "tcp"
	}
	return c.RemoteMultiaddr().String()
}

const holdProto = "/p2pshare-test/hold/1"

// dualConnected returns a fetcher and a provider node connected twice:
// over TCP (the fetcher dialled) and over QUIC (the provider dialled), with
// two streams open on the QUIC connection, so that libp2p's own choice
// for a new stream (the connection with the most streams) is QUIC.
func dualConnected(t *testing.T) (cli, srv *node, quicConn network.Conn) {
	t.Helper()
	meet := newMeeting()
	ch := newDualHost(t, dialOnly{quic: false, meet: meet})
	sh := newDualHost(t, dialOnly{quic: true, meet: meet})
	sh.SetStreamHandler(holdProto, func(s network.Stream) { io.Copy(io.Discard, s); s.Close() })
	ctx := ctxT(t, 30*time.Second)
	errs := make(chan error, 2)
	go func() { errs <- ch.Connect(ctx, addrInfo(sh)) }()
	go func() { errs <- sh.Connect(ctx, addrInfo(ch)) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var tcpConn network.Conn
	waitFor(t, 10*time.Second, "a TCP and a QUIC connection", func() bool {
		tcpConn, quicConn = nil, nil
		for _, c := range ch.Network().ConnsToPeer(sh.ID()) {
			switch connTransport(c) {
			case "tcp":
				tcpConn = c
			case "quic":
				quicConn = c
			}
		}
		return tcpConn != nil && quicConn != nil
	})
	for range 2 {
		s, err := quicConn.NewStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset() })
	}
	return newNodeOn(t, ch), newNodeOn(t, sh), quicConn
}

// keptTransport returns the transport of the fetch session cli kept with
// p after a download: the stream the download rode.
func keptTransport(t *testing.T, cli *node, p peer.ID) string {
	t.Helper()
	cli.svc.mu.Lock()
	defer cli.svc.mu.Unlock()
	l := cli.svc.idle[p]
	if len(l) != 1 {
		t.Fatalf("%d fetch sessions kept with the provider, want 1", len(l))
	}
	return connTransport(l[0].cn.st.Conn())
}

// With a TCP and a QUIC connection between fetcher and provider, the fetch
// stream rides TCP, though libp2p alone would open it on QUIC.
func TestFetchStreamPrefersTCP(t *testing.T) {
	cli, srv, _ := dualConnected(t)
	// The premise: left to itself, libp2p opens the stream on QUIC.
	s, err := cli.h.NewStream(ctxT(t, 10*time.Second), srv.h.ID(), holdProto)
	if err != nil {
		t.Fatal(err)
	}
	if got := connTransport(s.Conn()); got != "quic" {
		t.Fatalf("premise: libp2p opened a new stream on %s, want quic", got)
	}
	s.Close()

	data := pattern(5*testChunk+9, 71)
	c := srv.publish(t, "dual", data, testChunk)
	cli.fnd.set(addrInfo(srv.h))
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "dual.bin"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if got := keptTransport(t, cli, srv.h.ID()); got != "tcp" {
		t.Errorf("the fetch stream rode %s, want tcp", got)
	}
}

// With a QUIC connection only (as after a hole punch that made QUIC
// direct), the fetch stream rides it.
func TestFetchStreamQUICOnly(t *testing.T) {
	ch := newDualHost(t, dialOnly{quic: true})
	sh := newDualHost(t, dialOnly{quic: true})
	if err := ch.Connect(ctxT(t, 30*time.Second), addrInfo(sh)); err != nil {
		t.Fatal(err)
	}
	cli, srv := newNodeOn(t, ch), newNodeOn(t, sh)
	data := pattern(3*testChunk+1, 72)
	c := srv.publish(t, "quic", data, testChunk)
	cli.fnd.set(addrInfo(srv.h))
	res, err := cli.svc.Get(ctxT(t, time.Minute), c, GetOptions{Name: "quic.bin"})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
	if got := keptTransport(t, cli, srv.h.ID()); got != "quic" {
		t.Errorf("the fetch stream rode %s, want quic", got)
	}
	if n := len(ch.Network().ConnsToPeer(sh.ID())); n != 1 {
		t.Errorf("%d connections to the provider, want the one QUIC connection", n)
	}
}
