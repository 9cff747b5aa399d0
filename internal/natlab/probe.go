//go:build linux

package natlab

// The probe: tiny network programs that the self-test runs in the lab's
// namespaces to see what the NATs do, before any libp2p is involved. They
// are one binary (cmd/natprobe, or a test binary through Main and
// SelfProbe) with subcommands, and only ever talk to the addresses they are
// given, which inside the lab are lab addresses.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Exit codes of the probe. exitRefused means the network said no (no
// connection, no reply, no punch), which some checks expect; exitError means
// the probe itself could not do its job.
const (
	exitOK      = 0
	exitError   = 1
	exitRefused = 3
)

// probeEnv makes Main run the probe instead of the tests.
const probeEnv = "NATLAB_PROBE"

// Probe is how to run the probe: Path with Env added to the environment.
type Probe struct {
	Path string
	Env  []string
}

// SelfProbe returns the running binary as the probe: cmd/natprobe, or a test
// binary whose TestMain calls Main.
func SelfProbe() (Probe, error) {
	exe, err := os.Executable()
	if err != nil {
		return Probe{}, fmt.Errorf("natlab: finding the probe binary: %w", err)
	}
	// A race-enabled binary waits a second at exit by default (GORACE
	// atexit_sleep_ms), which a probe run dozens of times cannot afford.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return Probe{Path: exe, Env: []string{probeEnv + "=1", "GORACE=" + gorace}}, nil
}

const probeUsage = `usage: natprobe COMMAND [FLAGS]
  serve -tcp ADDR,... -udp ADDR,...   reply to each TCP connection and UDP
        datagram with "seen ADDR", the source address it saw; UDP "register
        NAME PEER" datagrams are for rendezvous (see punch). Prints "ready".
  tcp -to ADDR [-timeout D]           connect, print the address the server saw
  udp -to ADDR,... [-timeout D]       from one UDP socket, probe each server in
        turn and print "SERVER SEEN-ADDR" lines
  punch -server ADDR -name N -peer P [-timeout D] [-passive]
        learn the peer's public address from the rendezvous server, then send
        to it from the same socket while it sends to us; succeeds when packets
        went both ways (-passive: only listen, must receive nothing)
  selftest                            run the lab checks (under nat-lab.sh)
Exit status: 0 ok, 3 the network refused (no connection, reply or punch),
1 other errors.`

// ProbeMain runs the probe with args (a subcommand and its flags) and
// returns its exit status.
func ProbeMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, probeUsage)
		return exitError
	}
	cmds := map[string]func([]string) int{
		"serve":    probeServe,
		"tcp":      probeTCP,
		"udp":      probeUDP,
		"punch":    probePunch,
		"selftest": probeSelfTest,
	}
	f, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "natprobe: unknown command %q\n%s\n", args[0], probeUsage)
		return exitError
	}
	return f(args[1:])
}

func fail(code int, format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "natprobe: "+format+"\n", a...)
	return code
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func probeServe(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	tcpAddrs := fs.String("tcp", "", "TCP addresses to listen on, comma-separated")
	udpAddrs := fs.String("udp", "", "UDP addresses to listen on, comma-separated")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if *tcpAddrs == "" && *udpAddrs == "" {
		return fail(exitError, "serve: give -tcp or -udp")
	}
	errs := make(chan error, 1)
	for _, a := range list(*tcpAddrs) {
		ln, err := net.Listen("tcp4", a)
		if err != nil {
			return fail(exitError, "serve: %v", err)
		}
		go func() { errs <- serveTCP(ln) }()
	}
	rv := newRendezvous()
	for _, a := range list(*udpAddrs) {
		pc, err := net.ListenPacket("udp4", a)
		if err != nil {
			return fail(exitError, "serve: %v", err)
		}
		go func() { errs <- serveUDP(pc, rv) }()
	}
	fmt.Println("ready")
	return fail(exitError, "serve: %v", <-errs)
}

func serveTCP(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		fmt.Fprintf(c, "seen %s\n", c.RemoteAddr())
		c.Close()
	}
}

// rendezvous pairs punching peers: it records the address each name was
// seen from, as the NAT mapped it for the server.
type rendezvous struct {
	mu   sync.Mutex
	seen map[string]string
}

func newRendezvous() *rendezvous { return &rendezvous{seen: map[string]string{}} }

func serveUDP(pc net.PacketConn, rv *rendezvous) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		reply := "seen " + from.String()
		if f := strings.Fields(string(buf[:n])); len(f) == 3 && f[0] == "register" {
			rv.mu.Lock()
			rv.seen[f[1]] = from.String()
			peer, ok := rv.seen[f[2]]
			rv.mu.Unlock()
			if !ok {
				continue // the peer will be told when it registers; we resend
			}
			reply = "peer " + peer
		}
		if _, err := pc.WriteTo([]byte(reply), from); err != nil {
			return err
		}
	}
}

func probeTCP(args []string) int {
	fs := flag.NewFlagSet("tcp", flag.ContinueOnError)
	to := fs.String("to", "", "server address")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	c, err := net.DialTimeout("tcp4", *to, *timeout)
	if err != nil {
		return fail(exitRefused, "tcp: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	seen, ok := strings.CutPrefix(strings.TrimSpace(line), "seen ")
	if err != nil || !ok {
		return fail(exitError, "tcp: no proper reply from %s: %q %v", *to, line, err)
	}
	fmt.Println(seen)
	return exitOK
}

// resendEvery is how often the UDP probes resend while waiting for an
// answer: UDP may lose a packet, and a punch needs packets to keep coming.
const resendEvery = 100 * time.Millisecond

func probeUDP(args []string) int {
	fs := flag.NewFlagSet("udp", flag.ContinueOnError)
	to := fs.String("to", "", "server addresses, comma-separated")
	timeout := fs.Duration("timeout", 2*time.Second, "give up on a server after")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	pc, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		return fail(exitError, "udp: %v", err)
	}
	defer pc.Close()
	for _, s := range list(*to) {
		server, err := net.ResolveUDPAddr("udp4", s)
		if err != nil {
			return fail(exitError, "udp: %v", err)
		}
		reply, err := exchange(pc, server, "probe", *timeout)
		if err != nil {
			return fail(exitRefused, "udp: %v", err)
		}
		seen, ok := strings.CutPrefix(reply, "seen ")
		if !ok {
			return fail(exitError, "udp: unexpected reply %q from %s", reply, s)
		}
		fmt.Println(s, seen)
	}
	return exitOK
}

// exchange sends msg to server until a datagram comes back from it, and
// returns that datagram.
func exchange(pc net.PacketConn, server *net.UDPAddr, msg string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := pc.WriteTo([]byte(msg), server); err != nil {
			return "", err
		}
		pc.SetReadDeadline(earliest(deadline, time.Now().Add(resendEvery)))
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return "", err
			}
			if from.String() == server.String() {
				return string(buf[:n]), nil
			}
		}
	}
	return "", fmt.Errorf("no reply from %s within %v", server, timeout)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// lingerAfterPunch is how long a punch that succeeded keeps answering: the
// peer may still wait for our acknowledgement.
const lingerAfterPunch = time.Second

func probePunch(args []string) int {
	fs := flag.NewFlagSet("punch", flag.ContinueOnError)
	serverAddr := fs.String("server", "", "rendezvous server address")
	name := fs.String("name", "", "our name at the rendezvous")
	peerName := fs.String("peer", "", "the peer's name at the rendezvous")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to punch")
	passive := fs.Bool("passive", false, "never send to the peer, only listen")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if *name == "" || *peerName == "" {
		return fail(exitError, "punch: give -name and -peer")
	}
	server, err := net.ResolveUDPAddr("udp4", *serverAddr)
	if err != nil {
		return fail(exitError, "punch: %v", err)
	}
	pc, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		return fail(exitError, "punch: %v", err)
	}
	defer pc.Close()

	// The rendezvous answers once both peers have registered; they start
	// within moments of each other, so a few seconds is plenty.
	reply, err := exchange(pc, server, "register "+*name+" "+*peerName, 10*time.Second)
	if err != nil {
		return fail(exitError, "punch: rendezvous: %v", err)
	}
	peerStr, ok := strings.CutPrefix(reply, "peer ")
	if !ok {
		return fail(exitError, "punch: unexpected rendezvous reply %q", reply)
	}
	peer, err := net.ResolveUDPAddr("udp4", peerStr)
	if err != nil {
		return fail(exitError, "punch: rendezvous gave %q: %v", peerStr, err)
	}

	// Punch: send "hello" to the peer's address until we have heard from it
	// (the way in is open) and it has acknowledged one of ours (the way out
	// is open); answer each hello with an ack.
	var heard, acked bool
	deadline := time.Now().Add(*timeout)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if !*passive {
			if _, err := pc.WriteTo([]byte("hello"), peer); err != nil {
				return fail(exitError, "punch: %v", err)
			}
		}
		pc.SetReadDeadline(earliest(deadline, time.Now().Add(resendEvery)))
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return fail(exitError, "punch: %v", err)
			}
			if from.String() != peer.String() {
				continue // a late rendezvous reply
			}
			heard = true
			switch string(buf[:n]) {
			case "hello":
				if _, err := pc.WriteTo([]byte("ack"), peer); err != nil {
					return fail(exitError, "punch: %v", err)
				}
			case "ack":
				acked = true
			}
		}
		if heard && (acked || *passive) {
			break
		}
	}
	if *passive {
		if heard {
			fmt.Println("received from", peer)
			return exitOK
		}
		return fail(exitRefused, "punch: nothing from %s (passive) in %v", peer, *timeout)
	}
	if !heard || !acked {
		return fail(exitRefused, "punch: no way through to %s in %v (heard from it: %v, acknowledged: %v)", peer, *timeout, heard, acked)
	}
	lingerAnswering(pc, peer)
	fmt.Println("punched", peer)
	return exitOK
}

// lingerAnswering acknowledges the peer's hellos for a while after our punch
// succeeded, so that the peer gets its acknowledgement too.
func lingerAnswering(pc net.PacketConn, peer *net.UDPAddr) {
	pc.SetReadDeadline(time.Now().Add(lingerAfterPunch))
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if from.String() == peer.String() && string(buf[:n]) == "hello" {
			pc.WriteTo([]byte("ack"), peer)
		}
	}
}

func probeSelfTest(args []string) int {
	if len(args) != 0 {
		return fail(exitError, "selftest takes no arguments")
	}
	lab, err := FromEnv()
	if err != nil {
		return fail(exitError, "selftest: %v", err)
	}
	probe, err := SelfProbe()
	if err != nil {
		return fail(exitError, "selftest: %v", err)
	}
	failed := 0
	for _, c := range Checks(lab.Options) {
		start := time.Now()
		if err := c.Run(lab, probe); err != nil {
			failed++
			fmt.Printf("FAIL %s: %v\n", c.Name, err)
			continue
		}
		fmt.Printf("ok   %s (%.1fs)\n", c.Name, time.Since(start).Seconds())
	}
	if failed > 0 {
		return fail(exitError, "selftest: %d check(s) failed", failed)
	}
	return exitOK
}
