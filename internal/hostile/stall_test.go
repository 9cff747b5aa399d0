package hostile

// Class 8, stalls: a provider that claims a CID and never answers must not
// hold a download up for long (the manifest is asked of every provider at
// once, with a short timeout); a provider that answers that it does not
// have the file (NOT_SERVED) or that it changed (CHANGED) must end a
// download nobody else serves with that reason, instead of leaving it
// waiting forever; a provider that is only silent is still waited for.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/proto"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// newStaller is a fake provider that completes the handshake, reads every
// request and never answers.
func newStaller(t *testing.T) *fakeProvider {
	t.Helper()
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	return newFakeProvider(t, func(*fakeProvider, network.Stream, *bbsaes.Session, *proto.FetchRequest) error {
		<-quit
		return errors.New("test over")
	})
}

// waitAsked waits until fp has been asked for a manifest n times in all,
// or d has passed.
func waitAsked(fp *fakeProvider, n int32, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for fp.manifestReqs.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Three providers claim the file and never answer; the honest provider's
// addresses become known only once the first of them holds a manifest
// request. Every silent provider is asked at once, each gives up after a
// few seconds, and the honest provider, found at the next search, serves
// the file: well within one 30 s I/O timeout. (Before, one silent provider
// held the only manifest slot for 30 s, then the next.)
func TestSilentProvidersDoNotHoldManifest(t *testing.T) {
	victim := newNode(t, "victim", nil)
	honest := newNode(t, "honest", nil)
	c, data := publishRandom(t, honest, "wanted.bin", 2<<20+11)
	stallers := []*fakeProvider{newStaller(t), newStaller(t), newStaller(t)}
	var hints []peer.AddrInfo
	for _, s := range stallers {
		hints = append(hints, s.addrInfo())
	}
	// No addresses: the victim cannot reach it until the test says so.
	hints = append(hints, peer.AddrInfo{ID: honest.P2P.ID()})

	type result struct {
		res *transfer.Result
		err error
	}
	out := make(chan result, 1)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	go func() {
		res, err := victim.Transfer.Get(ctx, c, transfer.GetOptions{Hints: hints})
		out <- result{res, err}
	}()
	asked := func() bool {
		for _, s := range stallers {
			if s.manifestReqs.Load() > 0 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); !asked(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no silent provider was asked for the manifest")
		}
	}
	// Asked in parallel: all three hold a manifest request at once.
	for i, s := range stallers {
		if !waitAsked(s, 1, 3*time.Second) {
			t.Errorf("silent provider %d was not asked for the manifest while another held a request", i)
		}
	}
	victim.P2P.Host().Peerstore().AddAddrs(honest.P2P.ID(), honest.P2P.Host().Addrs(), time.Hour)
	r := <-out
	took := time.Since(start)
	t.Logf("got the file in %v", took.Round(time.Millisecond))
	if r.err != nil {
		t.Fatalf("Get with three silent providers: %v (after %v)", r.err, took)
	}
	if took > 20*time.Second {
		t.Errorf("Get took %v", took)
	}
	got, err := os.ReadFile(r.res.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs (%v)", err)
	}
}

// A provider that is only silent (it may come back) is waited for, not
// given up on, even beside one that answers NOT_SERVED: the Get asks it
// again after the manifest timeout and is still running when its context
// ends (paused), and leaves nothing in the downloads folder.
func TestSilentProviderIsWaitedFor(t *testing.T) {
	victim := newNode(t, "victim", nil)
	bystander := newNode(t, "bystander", nil) // has no file
	owner := newNode(t, "owner", nil)
	c, _ := publishRandom(t, owner, "x.bin", 1<<20+1)
	staller := newStaller(t)
	_, err := getFrom(victim, c, 12*time.Second, nil, staller.addrInfo(),
		peer.AddrInfo{ID: bystander.P2P.ID(), Addrs: bystander.P2P.Host().Addrs()})
	if !errors.Is(err, transfer.ErrPaused) && !errors.Is(err, transfer.ErrNoProviders) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get from a silent provider: %v, want it still waiting when its context ended", err)
	}
	if n := staller.manifestReqs.Load(); n < 2 {
		t.Errorf("the silent provider was asked %d times in 12 s, want it asked again after the manifest timeout", n)
	}
	if ents := downloadsEntries(t, victim); len(ents) != 0 {
		t.Errorf("downloads folder holds %v", ents)
	}
}

// `get NAME --from PEER` where PEER does not have the file: PEER is asked
// (whether or not a search lists it), answers NOT_SERVED, and the Get
// ends with that answer, naming PEER. The owner's file is still served.
func TestGetFromPeerWithoutFile(t *testing.T) {
	victim := newNode(t, "victim", nil)
	bystander := newNode(t, "bystander", nil)
	owner := newNode(t, "owner", nil)
	c, data := publishRandom(t, owner, "y.bin", 1<<20+2)
	connect(t, victim.P2P.Host(), bystander)
	connect(t, victim.P2P.Host(), owner)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := victim.Transfer.Get(ctx, c, transfer.GetOptions{Name: "y.bin", From: []peer.ID{bystander.P2P.ID()}})
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	refusedBy(t, err, bystander, "NOT_SERVED")
	if ents := downloadsEntries(t, victim); len(ents) != 0 {
		t.Errorf("downloads folder holds %v", ents)
	}
	mustFetch(t, victim, owner, c, data, 30*time.Second)
}

// A get of a file its publisher has edited since it published it: the
// publisher answers CHANGED (or NOT_SERVED, once it has withdrawn it), and
// the Get ends with that answer instead of waiting forever. Nothing is
// left in the downloads folder, and the publisher's other file is still
// served.
func TestGetOfEditedFile(t *testing.T) {
	victim := newNode(t, "victim", nil)
	publisher := newNode(t, "publisher", nil)
	c, _ := publishRandom(t, publisher, "draft.txt", 64<<10)
	other, otherData := publishRandom(t, publisher, "final.txt", 1<<20+3)
	if err := os.WriteFile(filepath.Join(publisher.Config.ShareDir, "draft.txt"), []byte("edited after publishing"), 0o644); err != nil {
		t.Fatal(err)
	}
	connect(t, victim.P2P.Host(), publisher)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := victim.Transfer.Get(ctx, c, transfer.GetOptions{Name: "draft.txt", From: []peer.ID{publisher.P2P.ID()}})
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	refusedBy(t, err, publisher, "CHANGED", "NOT_SERVED")
	if ents := downloadsEntries(t, victim); len(ents) != 0 {
		t.Errorf("downloads folder holds %v", ents)
	}
	mustFetch(t, victim, publisher, other, otherData, 30*time.Second)
}

// refusedBy checks that a Get ended with p's answer, one of answers.
func refusedBy(t *testing.T, err error, p *node.Node, answers ...string) {
	t.Helper()
	if err == nil || errors.Is(err, transfer.ErrPaused) || errors.Is(err, transfer.ErrNoProviders) {
		t.Fatalf("Get: %v, want it ended with the provider's answer", err)
	}
	if !strings.Contains(err.Error(), p.P2P.ID().String()) {
		t.Errorf("the error does not name the provider %s: %v", p.P2P.ID(), err)
	}
	for _, a := range answers {
		if strings.Contains(err.Error(), a) {
			return
		}
	}
	t.Errorf("the error does not give the provider's answer (%v): %v", answers, err)
}
