//go:build linux

// Command natprobe is the NAT lab's probe: tiny network programs that
// scripts/nat-lab.sh --self-test runs in the lab's namespaces to check that
// the lab behaves like real home NATs. See natlab.ProbeMain for the commands.
package main

import (
	"os"

	"github.com/p2pshare/p2pshare/internal/natlab"
)

func main() { os.Exit(natlab.ProbeMain(os.Args[1:])) }
