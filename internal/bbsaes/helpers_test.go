package bbsaes

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

var (
	sharedKeyOnce sync.Once
	sharedKey     *Key
	sharedKeyErr  error
)

// testKey returns one 2048-bit BBS key per test binary: generating one takes
// a noticeable fraction of a second.
func testKey(t testing.TB) *Key {
	t.Helper()
	sharedKeyOnce.Do(func() { sharedKey, sharedKeyErr = GenerateKey(rand.Reader, DefaultModulusBits) })
	if sharedKeyErr != nil {
		t.Fatal(sharedKeyErr)
	}
	return sharedKey
}

// identity is a libp2p identity for tests.
type identity struct {
	priv crypto.PrivKey
	id   peer.ID
}

func newIdentity(t testing.TB) identity {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return identity{priv, id}
}

const testProtocol = protocol.ID("/p2pshare/test/1.0.0")

func configs(t testing.TB, a, b identity) (initCfg, respCfg Config) {
	return Config{ProtocolID: testProtocol, LocalKey: a.priv, RemotePeer: b.id},
		Config{ProtocolID: testProtocol, LocalKey: b.priv, RemotePeer: a.id, BBSKey: testKey(t)}
}

type result struct {
	s   *Session
	err error
}

// handshake runs Initiate on one end of a net.Pipe and Respond on the other.
// A side that fails closes its end so the other side's I/O returns. The
// connections are closed when the test ends.
func handshake(t testing.TB, initCfg, respCfg Config) (si, sr *Session, ci, cr net.Conn, erri, errr error) {
	t.Helper()
	ci, cr = net.Pipe()
	t.Cleanup(func() { ci.Close(); cr.Close() })
	ch := make(chan result, 1)
	go func() {
		s, err := Respond(context.Background(), cr, respCfg)
		if err != nil {
			cr.Close()
		}
		ch <- result{s, err}
	}()
	si, erri = Initiate(context.Background(), ci, initCfg)
	if erri != nil {
		ci.Close()
	}
	res := <-ch
	return si, res.s, ci, cr, erri, res.err
}

// sessionPair returns two sessions that share a key, via a real handshake.
func sessionPair(t testing.TB) (*Session, *Session) {
	t.Helper()
	a, b := newIdentity(t), newIdentity(t)
	ic, rc := configs(t, a, b)
	si, sr, _, _, erri, errr := handshake(t, ic, rc)
	if erri != nil || errr != nil {
		t.Fatalf("handshake: initiator %v, responder %v", erri, errr)
	}
	return si, sr
}
