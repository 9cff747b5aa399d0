package people

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// A node may say a name for itself (the --nick flag). It travels in the
// libp2p identify protocol's agent version, which every peer already
// exchanges, as "p2pshare/nick:NAME". It is the peer's claim, not an
// identity: anyone can say any name, so it is shown as the peer's own
// claim ("(says: bob)") and never resolves a command.
const agentPrefix = "p2pshare/nick:"

// AgentVersion is the agent version that says nick, which must be a
// valid name (ValidName).
func AgentVersion(nick string) (string, error) {
	if err := ValidName(nick); err != nil {
		return "", err
	}
	return agentPrefix + nick, nil
}

// SaidName reads the name a peer says for itself from its agent version;
// "" if it says none or one that is not a valid name (anything else a
// peer sends there is dropped, not shown).
func SaidName(agent string) string {
	nick, ok := strings.CutPrefix(agent, agentPrefix)
	if !ok || ValidName(nick) != nil {
		return ""
	}
	return nick
}

// SaidNameIn reads the name id says for itself from a peerstore (identify
// stores the agent version there); "" if none.
func SaidNameIn(ps peerstore.Peerstore, id peer.ID) string {
	v, err := ps.Get(id, "AgentVersion")
	if err != nil {
		return ""
	}
	s, _ := v.(string)
	return SaidName(s)
}
