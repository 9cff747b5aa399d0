// Package p2p is the network layer of a p2pshare node: the libp2p host
// (TCP and QUIC, TLS before Noise, yamux), the node's persistent identity,
// the leveldb datastore shared by every package, peer discovery (mDNS on
// the LAN, a Kademlia DHT with the "/p2pshare" protocol prefix, bootstrap
// peers), GossipSub, and the peer table with its keepalive.
//
// The peer table is the successor of the original system's node list with
// alive flags: every p2pshare peer ever seen stays in it, persisted in the
// datastore under "/peers", and a keepalive pings each one every
// Config.Keepalive to keep its Online flag, LastSeen and RTT true.
//
// What it is not: it knows nothing of files, catalogs or the encryption
// layer. Those live in internal/share and internal/bbsaes, which use the
// Host, DHT, PubSub and Datastore exposed here.
package p2p
