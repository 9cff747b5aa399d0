// Package p2p is the network layer of a p2pshare node: the libp2p host
// (TCP and QUIC, TLS before Noise, yamux, with its resource and connection
// managers), the node's persistent identity, the leveldb datastore, peer
// discovery (mDNS on the LAN, a Kademlia DHT in server mode with the
// proto.Prefix protocol prefix, bootstrap peers), GossipSub, and the peer
// table with its keepalive.
//
// The peer table is the successor of the original system's node list with
// alive flags: p2pshare peers seen, persisted in the datastore under
// "/peers", up to Config.MaxPeers rows (identities cost nothing to make:
// when it is full, the row that matters least goes, see evictionOrder),
// each with the addresses identify accepted, less those the peer has no
// business giving (filterAdvertised). A keepalive round every
// Config.Keepalive pings the online peers, and the offline ones less and
// less often (the wait doubles, up to maxOfflineBackoff), to keep each
// peer's Online flag, LastSeen and RTT true; host events (a peer
// identified, its last connection closed) trigger a ping at once. Rounds
// are bounded, and the peers we exchange files with are pinged in a lane
// of their own, so unreachable rows cannot delay them.
//
// Hostile peers are bounded throughout: the resource manager makes one
// peer, and one IP address, a small share of every scope (limits.go), and
// the DHT stores a bounded number of provider records per peer
// (providers.go).
//
// What it is not: it knows nothing of files, catalogs or the encryption
// layer. internal/share (catalogs, announcements) uses the Host, DHT,
// PubSub and a part of the Datastore exposed here; internal/transfer (the
// file transfers, encrypted with internal/bbsaes) uses the Host. The only
// thing p2p knows of them is their protocol IDs (internal/proto): which
// peers speak p2pshare, and which streams get the resource limits of
// bulk transfers.
package p2p
