//go:build !linux

package main

import "errors"

// cmdNAT needs the NAT lab (network namespaces, nftables): Linux only.
func cmdNAT([]string) error {
	return errors.New("nat: the NAT lab needs Linux (network namespaces and nftables)")
}
