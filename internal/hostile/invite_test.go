package hostile

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio/pbio"
	"github.com/multiformats/go-varint"

	"github.com/p2pshare/p2pshare/internal/invite"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// Class 12 (invitations): a peer that speaks the invitation protocol
// wrongly — oversized or malformed PAKE messages, streams held open
// without a word — neither crashes the inviter nor keeps an honest
// acceptor out.

// inviteStream opens an invitation stream from h to victim.
func inviteStream(t *testing.T, h host.Host, victim *node.Node) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, victim.P2P.ID(), proto.InviteID)
	if err != nil {
		t.Fatalf("open invitation stream: %v", err)
	}
	s.SetDeadline(time.Now().Add(15 * time.Second))
	return s
}

// hostileHello sends a Hello with pake as its PAKE message and returns the
// inviter's reply status.
func hostileHello(t *testing.T, h host.Host, victim *node.Node, nameplate string, pake []byte) invite.Status {
	t.Helper()
	s := inviteStream(t, h, victim)
	defer s.Close()
	if err := proto.WriteMsg(s, &invite.Hello{Nameplate: nameplate, Pake: pake}); err != nil {
		t.Fatalf("send hello: %v", err)
	}
	var rep invite.Reply
	if err := pbio.NewDelimitedReader(s, 4<<10).ReadMsg(&rep); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return rep.Status
}

func TestHostileInvitation(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newNode(t, "honest", nil)
	att := newAttacker(t)
	connect(t, att, victim)

	target, err := victim.Invite.Create(invite.Options{Name: "target"})
	if err != nil {
		t.Fatal(err)
	}

	// An announced length of 1 GiB: refused before any allocation, the
	// stream dropped without a reply.
	s := inviteStream(t, att, victim)
	s.Write(varint.ToUvarint(1 << 30))
	s.Write(make([]byte, 1024))
	if b, _ := io.ReadAll(s); len(b) != 0 {
		t.Fatalf("an oversized message got a reply: %q", b)
	}
	s.Reset()

	// Malformed PAKE messages for a pending invitation: refused cleanly
	// (each counts as an attempt: it is one).
	for _, msg := range [][]byte{[]byte("null"), []byte(`{"Role":0}`), []byte("\xff\x00")} {
		if st := hostileHello(t, att, victim, target.Nameplate, msg); st != invite.Status_BAD_REQUEST {
			t.Fatalf("malformed PAKE message %q: status %v", msg, st)
		}
	}
	var burnt bool
	for _, inv := range victim.Invite.List() {
		if inv.Nameplate == target.Nameplate {
			burnt = inv.State == invite.Burnt
		}
	}
	if !burnt {
		t.Fatalf("%d malformed attempts did not burn the code", invite.MaxAttempts)
	}
	// A nameplate that is not one.
	if st := hostileHello(t, att, victim, "../../x", []byte("{}")); st != invite.Status_BAD_REQUEST {
		t.Fatalf("bad nameplate: status %v", st)
	}

	// Streams held open after half a message: the attacker gets a few
	// slots, no more, and the honest acceptor still gets through (the
	// acceptor does not retry a peer that reset its stream, so this fails
	// if the attacker can fill the slots).
	var held []network.Stream
	for range 20 {
		s := inviteStream(t, att, victim)
		s.Write([]byte{0x10}) // a Hello of 16 bytes, never sent
		held = append(held, s)
	}
	defer func() {
		for _, s := range held {
			s.Reset()
		}
	}()
	inv, err := victim.Invite.Create(invite.Options{Name: "honest"})
	if err != nil {
		t.Fatal(err)
	}
	connect(t, honest.P2P.Host(), victim)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := honest.Invite.Accept(ctx, inv.Code, "victim")
	if err != nil {
		t.Fatalf("honest accept while an attacker holds streams: %v", err)
	}
	if res.Peer != victim.P2P.ID() {
		t.Fatalf("accepted %s", res.Peer)
	}
	if _, ok := victim.P2P.Peers().Get(honest.P2P.ID()); !ok {
		t.Fatal("the invited peer is not in the inviter's peer table")
	}
	// The honest acceptor got through while the attacker still held
	// streams; most of the attacker's were refused at once.
	refused := 0
	for _, s := range held {
		s.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			refused++
		}
	}
	if refused < len(held)/2 {
		t.Fatalf("the inviter kept %d of one peer's %d idle streams", len(held)-refused, len(held))
	}
}
