package repl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/share"
)

// Class 6 (terminal injection): what peers say reaches the terminal
// escaped. The sequences: set the window title, clear the screen.
const evilSeq = "\x1b]0;pwned\x07\x1b[2J"

// A peer advertising an address with escape sequences (multiaddr accepts
// them in a DNS name) is listed by peers with them escaped.
func TestPeersEscapesPeerAddresses(t *testing.T) {
	n, err := p2p.Open(context.Background(), p2p.Config{
		DataDir:     t.TempDir(),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Keepalive:   -1,
		Logger:      slog.New(slog.DiscardHandler),
		DHTOptions:  []dht.Option{dht.DisableAutoRefresh()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	evil, err := multiaddr.NewMultiaddr("/dns4/" + evilSeq + ".example/tcp/4001")
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.AddrsFactory(func(as []multiaddr.Multiaddr) []multiaddr.Multiaddr { return append(as, evil) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// Speaking a p2pshare protocol makes it a row of the peer table.
	h.SetStreamHandler(proto.CatalogID, func(s network.Stream) { s.Reset() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, ok := n.Peers().Get(h.ID())
		if ok && slices.ContainsFunc(p.Addrs, func(a multiaddr.Multiaddr) bool { return a.Equal(evil) }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer table did not record the peer's advertised address: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}

	s, err := share.New(context.Background(), share.Config{
		Network:   share.HostNetwork(n.Host(), nil),
		Datastore: dssync.MutexWrap(datastore.NewMapDatastore()),
		ShareDir:  t.TempDir(),
		OnChange:  share.OnChangeIgnore,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r := New(Deps{Node: n, Share: s})
	var out bytes.Buffer
	if _, failed := r.Exec(context.Background(), "peers --wide", &out); failed {
		t.Fatalf("peers failed: %s", out.String())
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Fatalf("peers printed raw escape sequences: %q", out.String())
	}
	if !strings.Contains(out.String(), `\u001b]0;pwned\u0007\u001b[2J`) {
		t.Fatalf("peers does not show the address escaped: %q", out.String())
	}
}

// An error quoting a peer (a refusal message, say) is printed escaped,
// its line breaks kept.
func TestErrorsAreEscaped(t *testing.T) {
	r := New(Deps{})
	r.byName["peer-error"] = &command{name: "peer-error", run: func(context.Context, *call, []string) error {
		return errors.New("refused: NOT_SERVED (" + evilSeq + ")\n  second line")
	}}
	var out bytes.Buffer
	r.Exec(context.Background(), "peer-error", &out)
	got := out.String()
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Fatalf("an error printed raw escape sequences: %q", got)
	}
	if want := "error: peer-error: refused: NOT_SERVED (\\u001b]0;pwned\\u0007\\u001b[2J)\n  second line\n"; got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/1.2.3.4/tcp/1": "/ip4/1.2.3.4/tcp/1",
		"a\x1b[2Jb":          `a\u001b[2Jb`,
		"x\u202egnp.exe":     `x\u202egnp.exe`,
		"zero\u200bwidth":    `zero\u200bwidth`,
		"line\u2028sep":      `line\u2028sep`,
		"c1\u009bcontrol":    `c1\u009bcontrol`,
		"bad\xffutf8":        `bad\ufffdutf8`,
		"ünïcode 名前 is fine": "ünïcode 名前 is fine",
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
