// Package p2p is the network layer of a p2pshare node: the libp2p host
// (TCP and QUIC, TLS before Noise, yamux, with its resource and connection
// managers), the node's persistent identity, the leveldb datastore, peer
// discovery (mDNS on the LAN, a Kademlia DHT in server mode with the
// proto.Prefix protocol prefix, bootstrap peers), GossipSub, and the peer
// table with its keepalive.
//
// The peer table is the successor of the original system's node list with
// alive flags: every p2pshare peer ever seen stays in it, persisted in the
// datastore under "/peers". A keepalive round every Config.Keepalive pings
// the online peers, and the offline ones less and less often (the wait
// doubles, up to maxOfflineBackoff), to keep each peer's Online flag,
// LastSeen and RTT true; host events (a peer identified, its last
// connection closed) trigger a ping at once.
//
// What it is not: it knows nothing of files, catalogs or the encryption
// layer. internal/share (catalogs, announcements) uses the Host, DHT,
// PubSub and a part of the Datastore exposed here; internal/transfer (the
// file transfers, encrypted with internal/bbsaes) uses the Host. The only
// thing p2p knows of them is their protocol IDs (internal/proto): which
// peers speak p2pshare, and which streams get the resource limits of
// bulk transfers.
package p2p
