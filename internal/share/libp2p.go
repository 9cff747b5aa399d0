package share

import (
	"context"
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
)

// HostNetwork is the Network of a libp2p host. online reports a peer's
// liveness (internal/node passes the peer table's); nil: the host is
// connected to it.
func HostNetwork(h host.Host, online func(peer.ID) bool) Network {
	return hostNetwork{Host: h, online: online}
}

type hostNetwork struct {
	host.Host
	online func(peer.ID) bool
}

func (n hostNetwork) ConnectedPeers(pid protocol.ID) []peer.ID {
	var out []peer.ID
	for _, p := range n.Network().Peers() {
		if p == n.ID() {
			continue
		}
		if ps, err := n.Peerstore().SupportsProtocols(p, pid); err == nil && len(ps) > 0 {
			out = append(out, p)
		}
	}
	return out
}

func (n hostNetwork) Online(p peer.ID) bool {
	if n.online != nil {
		return n.online(p)
	}
	return n.Network().Connectedness(p) == network.Connected
}

func (n hostNetwork) Addrs(p peer.ID) []multiaddr.Multiaddr { return n.Peerstore().Addrs(p) }

// GossipSub is the Broadcast of a GossipSub router; nil gives nil (no
// announcements: peers then learn of changes through catalog pulls only).
func GossipSub(ps *pubsub.PubSub) Broadcast {
	if ps == nil {
		return nil
	}
	return gossipSub{ps}
}

type gossipSub struct{ ps *pubsub.PubSub }

func (g gossipSub) Join(name string, validate Validator) (Topic, error) {
	v := func(_ context.Context, via peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		origin := msg.GetFrom()
		if len(msg.GetSignature()) == 0 {
			origin = "" // pubsub checked the signature of a signed message
		}
		val, err := validate(origin, via, msg.GetData())
		if errors.Is(err, errIgnore) {
			return pubsub.ValidationIgnore
		}
		if err != nil {
			return pubsub.ValidationReject
		}
		msg.ValidatorData = val
		return pubsub.ValidationAccept
	}
	if err := g.ps.RegisterTopicValidator(name, v); err != nil {
		return nil, fmt.Errorf("register validator of topic %s: %w", name, err)
	}
	t, err := g.ps.Join(name)
	if err != nil {
		g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join topic %s: %w", name, err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		t.Close()
		g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("subscribe to topic %s: %w", name, err)
	}
	return &gossipTopic{ps: g.ps, name: name, t: t, sub: sub}, nil
}

type gossipTopic struct {
	ps   *pubsub.PubSub
	name string
	t    *pubsub.Topic
	sub  *pubsub.Subscription
}

func (g *gossipTopic) Publish(ctx context.Context, data []byte) error { return g.t.Publish(ctx, data) }

func (g *gossipTopic) Next(ctx context.Context) (peer.ID, any, error) {
	msg, err := g.sub.Next(ctx)
	if err != nil {
		return "", nil, err
	}
	return msg.GetFrom(), msg.ValidatorData, nil
}

func (g *gossipTopic) Close() error {
	g.sub.Cancel()
	var errs []error
	// If the PubSub was shut down first, the topic went with it.
	if err := g.t.Close(); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("close topic %s: %w", g.name, err))
	}
	if err := g.ps.UnregisterTopicValidator(g.name); err != nil {
		errs = append(errs, fmt.Errorf("unregister validator of topic %s: %w", g.name, err))
	}
	return errors.Join(errs...)
}
