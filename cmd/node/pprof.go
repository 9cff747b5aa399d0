package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
)

// pprofEnv names a loopback address (host:port) on which the node serves
// Go's profiling endpoints (/debug/pprof/...), for the benchmarks
// (p2pbench transfer -profile). Unset, nothing is served. Only a loopback
// address is accepted: the endpoints are unauthenticated.
const pprofEnv = "P2PSHARE_PPROF"

// pprofBlockEnv, set to 1 alongside pprofEnv, also records blocking and
// mutex contention (off-CPU time), which costs a little on every channel
// operation and lock.
const pprofBlockEnv = "P2PSHARE_PPROF_BLOCK"

func init() {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "p2pshare: %s=%q: want a loopback host:port; not serving profiles\n", pprofEnv, addr)
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "p2pshare: %s: %v; not serving profiles\n", pprofEnv, err)
		return
	}
	if os.Getenv(pprofBlockEnv) == "1" {
		runtime.SetBlockProfileRate(10000) // one event per 10 µs blocked
		runtime.SetMutexProfileFraction(10)
	}
	// A mux of its own: net/http/pprof also registers on
	// http.DefaultServeMux, which nothing in the node serves.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go http.Serve(ln, mux)
}
