package invite

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/proto"
)

func TestAccept(t *testing.T) {
	checkLeaks(t)
	a, b := newNode(t), newNode(t)
	connect(t, a.h, b.h)

	inv := a.invite(t, Options{Name: "bob", Group: "friends"})
	if inv.State != Pending || inv.AttemptsLeft != MaxAttempts {
		t.Fatalf("new invitation: %+v", inv)
	}
	// Typed by a person: other case, spaces for dashes.
	typed := strings.ToUpper(strings.ReplaceAll(inv.Code, "-", " "))
	res, err := b.accept(t, typed, "alice", testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if res.Peer != a.h.ID() || res.Note != "" {
		t.Fatalf("accept: %+v", res)
	}
	if got := b.contacts.list(); !slices.Equal(got, []contact{{a.h.ID(), "alice", ""}}) {
		t.Fatalf("acceptor's contacts: %v", got)
	}
	if got := b.records(); !slices.Equal(got, []peer.ID{a.h.ID()}) {
		t.Fatalf("acceptor recorded %v", got)
	}
	// The inviter names the peer once its Result is sent.
	pollUntil(t, "inviter's contact", func() bool { return len(a.contacts.list()) == 1 })
	if got := a.contacts.list(); !slices.Equal(got, []contact{{b.h.ID(), "bob", "friends"}}) {
		t.Fatalf("inviter's contacts: %v", got)
	}
	if got := a.records(); !slices.Equal(got, []peer.ID{b.h.ID()}) {
		t.Fatalf("inviter recorded %v", got)
	}
	got := a.get(t, inv.Nameplate)
	if got.State != Accepted || got.Peer != b.h.ID() {
		t.Fatalf("inviter's invitation after accept: %+v", got)
	}
}

func TestWrongCode(t *testing.T) {
	checkLeaks(t)
	a, b := newNode(t), newNode(t)
	connect(t, a.h, b.h)
	inv := a.invite(t, Options{Name: "bob"})

	_, err := b.accept(t, wrongCode(t, inv.Code), "", testTimeout)
	if !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	if !strings.Contains(err.Error(), "2 tries left") {
		t.Fatalf("error does not say how many tries are left: %v", err)
	}
	if got := a.get(t, inv.Nameplate); got.State != Pending || got.AttemptsLeft != MaxAttempts-1 {
		t.Fatalf("after a wrong code: %+v", got)
	}
	if len(a.contacts.list())+len(b.contacts.list())+len(a.records())+len(b.records()) != 0 {
		t.Fatal("a wrong code added a contact or recorded a peer")
	}
	// The person retypes it right: one wrong try does not burn the code.
	if _, err := b.accept(t, inv.Code, "", testTimeout); err != nil {
		t.Fatalf("right code after a wrong one: %v", err)
	}
}

func TestBurntAfterMaxAttempts(t *testing.T) {
	checkLeaks(t)
	a, b := newNode(t), newNode(t)
	connect(t, a.h, b.h)
	inv := a.invite(t, Options{})
	for i := range MaxAttempts {
		if _, err := b.accept(t, wrongCode(t, inv.Code), "", testTimeout); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	pollUntil(t, "the code burnt", func() bool { return a.get(t, inv.Nameplate).State == Burnt })
	if _, err := b.accept(t, inv.Code, "", testTimeout); !errors.Is(err, ErrBurnt) {
		t.Fatalf("right code after %d wrong ones: %v", MaxAttempts, err)
	}
	if len(a.contacts.list())+len(b.contacts.list()) != 0 {
		t.Fatal("a burnt code added a contact")
	}
}

func TestExpired(t *testing.T) {
	checkLeaks(t)
	clk := &clock{t: time.Now()}
	a := newNode(t, func(c *Config) { c.now = clk.now })
	b := newNode(t)
	connect(t, a.h, b.h)
	inv := a.invite(t, Options{TTL: 5 * time.Minute})
	if !inv.Expires.Equal(clk.now().Add(5 * time.Minute)) {
		t.Fatalf("expires %v", inv.Expires)
	}
	clk.add(5 * time.Minute)
	_, err := b.accept(t, inv.Code, "", testTimeout)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("expired code: %v", err)
	}
	if got := a.get(t, inv.Nameplate); got.State != Expired {
		t.Fatalf("listed as %s", got.State)
	}
	// Ended invitations are forgotten after a while; then the nameplate
	// is unknown.
	clk.add(keepEnded + time.Minute)
	if l := a.s.List(); len(l) != 0 {
		t.Fatalf("still listed after %v: %+v", keepEnded, l)
	}
	if _, err := b.accept(t, inv.Code, "", time.Second); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forgotten code: %v", err)
	}
}

func TestCodeUsedTwice(t *testing.T) {
	checkLeaks(t)
	a, b, c := newNode(t), newNode(t), newNode(t)
	connect(t, a.h, b.h)
	connect(t, a.h, c.h)
	inv := a.invite(t, Options{Name: "bob"})
	if _, err := b.accept(t, inv.Code, "", testTimeout); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		if _, err := n.accept(t, inv.Code, "", testTimeout); !errors.Is(err, ErrUsed) {
			t.Fatalf("code used twice: %v", err)
		}
	}
	if len(c.contacts.list()) != 0 {
		t.Fatal("a used code added a contact")
	}
	pollUntil(t, "inviter's contact", func() bool { return len(a.contacts.list()) > 0 })
	if got := a.contacts.list(); len(got) != 1 || got[0].p != b.h.ID() {
		t.Fatalf("inviter's contacts: %v", got)
	}
}

func TestCancel(t *testing.T) {
	checkLeaks(t)
	a, b := newNode(t), newNode(t)
	connect(t, a.h, b.h)
	inv := a.invite(t, Options{})
	if err := a.s.Cancel(inv.Nameplate); err != nil {
		t.Fatal(err)
	}
	if err := a.s.Cancel(inv.Code); err == nil || !strings.Contains(err.Error(), "canceled already") {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := b.accept(t, inv.Code, "", testTimeout); !errors.Is(err, ErrCanceled) {
		t.Fatalf("canceled code: %v", err)
	}
}

// A contact name refused by Contacts (when it can tell) is refused before
// any code exists or is used.
func TestContactChecked(t *testing.T) {
	checkLeaks(t)
	a := newNode(t)
	a.contacts.refuse = errors.New(`name "bob" is taken`)
	if _, err := a.s.Create(Options{Name: "bob"}); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("create with a refused name: %v", err)
	}
	if l := a.s.List(); len(l) != 0 {
		t.Fatalf("an invitation was made: %+v", l)
	}
	if _, err := a.s.Accept(context.Background(), "42-"+wordList[0]+"-"+wordList[1]+"-"+wordList[2], "bob"); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("accept with a refused name: %v", err)
	}
}

// Nodes that share no connection meet through the DHT: the inviter
// provides a key derived from the nameplate alone.
func TestRendezvousThroughDHT(t *testing.T) {
	checkLeaks(t)
	dht := newFakeDHT()
	var a, b *node
	a = newNode(t, func(c *Config) { c.Routing = dht.view(c.Host) })
	b = newNode(t, func(c *Config) { c.Routing = dht.view(c.Host) })
	inv := a.invite(t, Options{Name: "bob"})
	select {
	case k := <-dht.provided:
		other := Code{Nameplate: inv.Nameplate, Words: []string{wordList[1], wordList[2], wordList[3]}}
		if k != rendezvousKey(other.Nameplate) {
			t.Fatalf("provided %s, want the nameplate's key", k)
		}
	case <-time.After(testTimeout):
		t.Fatal("invitation not provided")
	}
	if b.h.Network().Connectedness(a.h.ID()) == network.Connected {
		t.Fatal("test setup: the nodes are connected already")
	}
	res, err := b.accept(t, inv.Code, "alice", testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if res.Peer != a.h.ID() {
		t.Fatalf("accepted %s, want %s", res.Peer, a.h.ID())
	}
}

// A peer that holds no such invitation answers UNKNOWN, and Accept goes
// on to the one that does.
func TestAcceptSkipsOtherPeers(t *testing.T) {
	checkLeaks(t)
	a, b, other := newNode(t), newNode(t), newNode(t)
	connect(t, a.h, b.h)
	connect(t, other.h, b.h)
	other.invite(t, Options{}) // a different invitation
	inv := a.invite(t, Options{})
	if res, err := b.accept(t, inv.Code, "", testTimeout); err != nil || res.Peer != a.h.ID() {
		t.Fatalf("accept: %+v, %v", res, err)
	}
	if _, err := b.accept(t, "77-"+wordList[5]+"-"+wordList[6]+"-"+wordList[7], "", 300*time.Millisecond); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a nameplate nobody has: %v", err)
	}
}

func TestRateLimitPerPeer(t *testing.T) {
	checkLeaks(t)
	a := newNode(t, func(c *Config) { c.peerRate, c.peerBurst = 1e-6, 1 })
	b, c := newNode(t), newNode(t)
	connect(t, a.h, b.h)
	connect(t, a.h, c.h)
	inv := a.invite(t, Options{})
	if _, err := b.accept(t, wrongCode(t, inv.Code), "", testTimeout); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("first try: %v", err)
	}
	// b is out of tries for a while, even with the right code, and its
	// refused tries cost the invitation nothing.
	if _, err := b.accept(t, inv.Code, "", 500*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Fatalf("second try: %v", err)
	}
	if got := a.get(t, inv.Nameplate); got.AttemptsLeft != MaxAttempts-1 || got.State != Pending {
		t.Fatalf("after a refused try: %+v", got)
	}
	// Another peer is not held back by b.
	if _, err := c.accept(t, inv.Code, "", testTimeout); err != nil {
		t.Fatalf("another peer: %v", err)
	}
}

func TestRateLimitGlobal(t *testing.T) {
	checkLeaks(t)
	a := newNode(t, func(c *Config) { c.globalRate, c.globalBurst = 1e-6, 1 })
	b, c := newNode(t), newNode(t)
	connect(t, a.h, b.h)
	connect(t, a.h, c.h)
	inv := a.invite(t, Options{})
	if _, err := b.accept(t, wrongCode(t, inv.Code), "", testTimeout); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("first try: %v", err)
	}
	if _, err := c.accept(t, inv.Code, "", 500*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second peer past the global limit: %v", err)
	}
	if got := a.get(t, inv.Nameplate); got.AttemptsLeft != MaxAttempts-1 {
		t.Fatalf("a refused try was counted: %+v", got)
	}
	// A nameplate lookup is not a PAKE run: it is not held back.
	if _, err := c.accept(t, "77-"+wordList[5]+"-"+wordList[6]+"-"+wordList[7], "", 300*time.Millisecond); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown nameplate: %v", err)
	}
}

// A peer in the middle that relays every byte between the acceptor and
// the inviter (the acceptor believes it is the inviter) cannot splice the
// two: each side binds the peer IDs it sees, so the confirmations fail,
// and nobody is added.
func TestSpliceFails(t *testing.T) {
	checkLeaks(t)
	a, b := newNode(t), newNode(t)
	m := loopbackHost(t)
	relayed := make(chan struct{}, 4)
	m.SetStreamHandler(proto.InviteID, func(in network.Stream) {
		defer in.Close()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		out, err := m.NewStream(ctx, a.h.ID(), proto.InviteID)
		if err != nil {
			in.Reset()
			return
		}
		defer out.Close()
		relayed <- struct{}{}
		done := make(chan struct{})
		go func() { io.Copy(out, in); out.CloseWrite(); close(done) }()
		io.Copy(in, out)
		in.CloseWrite()
		<-done
	})
	connect(t, m, a.h)
	connect(t, b.h, m)
	if b.h.Network().Connectedness(a.h.ID()) == network.Connected {
		t.Fatal("test setup: acceptor and inviter are connected")
	}
	inv := a.invite(t, Options{Name: "bob"})
	_, err := b.accept(t, inv.Code, "alice", testTimeout)
	if !errors.Is(err, ErrWrongCode) {
		t.Fatalf("spliced exchange: %v", err)
	}
	select {
	case <-relayed:
	default:
		t.Fatal("the middle peer relayed nothing: the test tested nothing")
	}
	if len(a.contacts.list())+len(b.contacts.list())+len(a.records())+len(b.records()) != 0 {
		t.Fatal("a spliced exchange added a contact")
	}
	if got := a.get(t, inv.Nameplate); got.State != Pending || got.AttemptsLeft != MaxAttempts-1 {
		t.Fatalf("invitation after the splice: %+v", got)
	}
	// The real acceptor, directly, still gets in.
	connect(t, b.h, a.h)
	m.RemoveStreamHandler(proto.InviteID)
	m.Network().ClosePeer(b.h.ID())
	if res, err := b.accept(t, inv.Code, "alice", testTimeout); err != nil || res.Peer != a.h.ID() {
		t.Fatalf("direct accept after the splice: %+v, %v", res, err)
	}
}
