// Package hostile holds the hostile-peer tests: real p2pshare nodes
// (internal/node, real libp2p hosts on loopback) attacked by libp2p hosts
// that speak p2pshare's protocols wrongly on purpose, or by swarms of
// throwaway identities. Each test names the class of attack it covers,
// runs the attack, and asserts that an honest peer is still served, that
// memory and disk stay within stated bounds, and that nothing is lost.
//
// The package has no code outside its tests; this file only documents it.
package hostile
