//go:build linux

package natlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// A Check is one property the lab must have to stand in for real home NATs.
// The same checks run in `scripts/nat-lab.sh --self-test` and in this
// package's tests.
type Check struct {
	Name string
	Run  func(lab *Lab, p Probe) error
}

// Checks returns the checks for a lab with the given NATs: the homes reach
// the internet from their routers' addresses; a cone NAT keeps a socket's
// port for every destination and a symmetric one does not; nothing from the
// internet gets into a home or its router unsolicited; UDP hole punching
// between the homes works when both NATs are cone and fails otherwise.
func Checks(o Options) []Check {
	o = o.withDefaults()
	punch := "UDP hole punch between the homes fails (a NAT is symmetric)"
	if o.NatA == Cone && o.NatB == Cone {
		punch = "UDP hole punch between the homes works (both NATs cone)"
	}
	return []Check{
		{"homes reach the public hosts over TCP, seen from their router's WAN address", checkOutbound},
		{"home A's UDP leaves from router A's WAN address, " + mappingWord(o.NatA), func(l *Lab, p Probe) error {
			return checkMapping(l, p, l.A, l.RouterA, l.NatA)
		}},
		{"home B's UDP leaves from router B's WAN address, " + mappingWord(o.NatB), func(l *Lab, p Probe) error {
			return checkMapping(l, p, l.B, l.RouterB, l.NatB)
		}},
		{"unsolicited TCP from the internet reaches neither a home nor its router", checkUnsolicited},
		{"UDP from the other home to a home's NAT mapping is dropped unless the home sends to it", checkOneSided},
		{punch, checkPunch},
	}
}

func mappingWord(n NAT) string {
	if n == Symmetric {
		return "symmetric: a new port per destination"
	}
	return "cone: the same port for every destination"
}

// Ports the checks' servers use inside the lab.
const (
	portEcho       = "7000"
	portEcho2      = "7001"
	portListen     = "7003"
	portRendezvous = "3478"
)

// How long a connection that must fail is given: inside the lab an answer
// takes well under a millisecond, so a second of silence means "dropped".
const refusedTimeout = time.Second

func (p Probe) command(ctx context.Context, h Host, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, p.Path}, args...)...)
	cmd.Env = append(os.Environ(), p.Env...)
	return cmd
}

// run runs the probe in h and returns its output and exit status (exitOK or
// exitRefused); any other outcome is an error.
func (p Probe) run(h Host, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := p.command(ctx, h, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code != exitRefused {
		return "", 0, fmt.Errorf("probe %s in %s: %w: %s", strings.Join(args, " "), h.NS, err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), code, nil
}

// mustWork runs the probe and fails unless it succeeds.
func (p Probe) mustWork(h Host, args ...string) (string, error) {
	out, code, err := p.run(h, args...)
	if err == nil && code != exitOK {
		err = fmt.Errorf("probe %s in %s: the network refused, it should have worked", strings.Join(args, " "), h.NS)
	}
	return out, err
}

// mustBeRefused runs the probe and fails unless the network refused it.
func (p Probe) mustBeRefused(h Host, args ...string) error {
	out, code, err := p.run(h, args...)
	if err == nil && code != exitRefused {
		err = fmt.Errorf("probe %s in %s got through (%s), it should have been refused", strings.Join(args, " "), h.NS, out)
	}
	return err
}

// serve starts a probe server in h, waits until it listens, and returns a
// function that stops it.
func (p Probe) serve(h Host, args ...string) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := p.command(ctx, h, append([]string{"serve"}, args...)...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting a probe server in %s: %w", h.NS, err)
	}
	stop = func() {
		cancel()
		cmd.Wait()
	}
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if ok {
			return stop, nil
		}
	case <-time.After(10 * time.Second):
	}
	stop()
	return nil, fmt.Errorf("probe server %s in %s did not start: %s", strings.Join(args, " "), h.NS, strings.TrimSpace(errOut.String()))
}

// serveAll starts probe servers (each with the same args) in several hosts.
func (p Probe) serveAll(hosts []Host, args ...string) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for _, h := range hosts {
		s, err := p.serve(h, args...)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, s)
	}
	return stop, nil
}

func hostPort(ip, port string) string { return net.JoinHostPort(ip, port) }

func checkOutbound(lab *Lab, p Probe) error {
	stop, err := p.serveAll([]Host{lab.Public, lab.Public2}, "-tcp", ":"+portEcho)
	if err != nil {
		return err
	}
	defer stop()
	for _, home := range []struct{ host, router Host }{{lab.A, lab.RouterA}, {lab.B, lab.RouterB}} {
		for _, server := range []Host{lab.Public, lab.Public2} {
			seen, err := p.mustWork(home.host, "tcp", "-to", hostPort(server.IP, portEcho))
			if err != nil {
				return err
			}
			ip, _, err := net.SplitHostPort(seen)
			if err != nil {
				return fmt.Errorf("%s reported %q: %w", server.NS, seen, err)
			}
			if ip != home.router.IP {
				return fmt.Errorf("%s saw %s's connection come from %s, not from its router's WAN address %s", server.NS, home.host.NS, ip, home.router.IP)
			}
		}
	}
	return nil
}

// checkMapping sends UDP from one socket in home to four destinations (two
// ports on each public host) and looks at the source addresses they saw.
func checkMapping(lab *Lab, p Probe, home, router Host, nat NAT) error {
	stop, err := p.serveAll([]Host{lab.Public, lab.Public2}, "-udp", ":"+portEcho+",:"+portEcho2)
	if err != nil {
		return err
	}
	defer stop()
	var dests []string
	for _, server := range []Host{lab.Public, lab.Public2} {
		dests = append(dests, hostPort(server.IP, portEcho), hostPort(server.IP, portEcho2))
	}
	out, err := p.mustWork(home, "udp", "-to", strings.Join(dests, ","))
	if err != nil {
		return err
	}
	lines := strings.Split(out, "\n")
	if len(lines) != len(dests) {
		return fmt.Errorf("probe udp printed %q, want one line per destination", out)
	}
	ports := map[string]bool{}
	for _, l := range lines {
		dest, seen, _ := strings.Cut(l, " ")
		ip, port, err := net.SplitHostPort(seen)
		if err != nil {
			return fmt.Errorf("probe udp printed %q: %w", l, err)
		}
		if ip != router.IP {
			return fmt.Errorf("%s saw %s's UDP come from %s, not from its router's WAN address %s", dest, home.NS, ip, router.IP)
		}
		ports[port] = true
	}
	switch nat {
	case Cone:
		if len(ports) != 1 {
			return fmt.Errorf("cone NAT: one socket showed %d different source ports to %d destinations: %s", len(ports), len(dests), out)
		}
	case Symmetric:
		// fully-random draws each port at random: two of four equal by
		// chance is rare, three would mean the NAT is not symmetric.
		if len(ports) < len(dests)-1 {
			return fmt.Errorf("symmetric NAT: one socket showed only %d different source ports to %d destinations: %s", len(ports), len(dests), out)
		}
	}
	return nil
}

// checkUnsolicited: with servers listening in each home and on each router,
// which the home side can reach, nothing from the internet can connect to
// them, not even a host that routes the homes' private subnets via their
// routers, and the routers' WAN addresses take no connection either.
func checkUnsolicited(lab *Lab, p Probe) error {
	stop, err := p.serveAll([]Host{lab.A, lab.B, lab.RouterA, lab.RouterB}, "-tcp", ":"+portListen)
	if err != nil {
		return err
	}
	defer stop()
	homes := []struct {
		host, router Host
		lan, net     string
	}{{lab.A, lab.RouterA, lab.RouterALAN, lab.NetA}, {lab.B, lab.RouterB, lab.RouterBLAN, lab.NetB}}
	for _, h := range homes {
		// The servers are up: the home side reaches them.
		if _, err := p.mustWork(h.router, "tcp", "-to", hostPort(h.host.IP, portListen)); err != nil {
			return err
		}
		if _, err := p.mustWork(h.host, "tcp", "-to", hostPort(h.lan, portListen)); err != nil {
			return err
		}
	}
	// Each refusal takes the whole timeout, so they run side by side.
	refused := func(targets ...string) error {
		errs := make([]error, len(targets))
		var wg sync.WaitGroup
		for i, to := range targets {
			wg.Go(func() {
				errs[i] = p.mustBeRefused(lab.Public, "tcp", "-timeout="+refusedTimeout.String(), "-to", hostPort(to, portListen))
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	// The internet has no route to private addresses, and the routers take
	// no connection on their WAN addresses.
	if err := refused(lab.A.IP, lab.B.IP, lab.RouterA.IP, lab.RouterB.IP); err != nil {
		return err
	}
	// A neighbour on the segment that routes the homes' subnets via their
	// routers is stopped by the routers' filters. (The routes go via lab
	// routers, so the lab stays closed.)
	return withRoute(lab.Public, homes[0].net, homes[0].router.IP, func() error {
		return withRoute(lab.Public, homes[1].net, homes[1].router.IP, func() error {
			return refused(lab.A.IP, lab.B.IP)
		})
	})
}

// withRoute runs f while h routes subnet via gw.
func withRoute(h Host, subnet, gw string, f func() error) error {
	route := func(op string) error {
		out, err := exec.Command("ip", "-n", h.NS, "route", op, subnet, "via", gw).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip route %s %s via %s in %s: %w: %s", op, subnet, gw, h.NS, err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := route("add"); err != nil {
		return err
	}
	ferr := f()
	return errors.Join(ferr, route("del"))
}

// punchBoth runs the punch probe in both homes at once, with a fresh
// rendezvous server on the public host, and returns their exit statuses.
func punchBoth(lab *Lab, p Probe, timeout time.Duration, extraA []string) (codeA, codeB int, err error) {
	stop, err := p.serve(lab.Public, "-udp", ":"+portRendezvous)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	server := hostPort(lab.Public.IP, portRendezvous)
	args := func(name, peer string, extra []string) []string {
		return append([]string{"punch", "-server", server, "-name", name, "-peer", peer, "-timeout", timeout.String()}, extra...)
	}
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { _, codeA, errA = p.run(lab.A, args("a", "b", extraA)...) })
	wg.Go(func() { _, codeB, errB = p.run(lab.B, args("b", "a", nil)...) })
	wg.Wait()
	return codeA, codeB, errors.Join(errA, errB)
}

// checkOneSided: B sends to the address A's NAT uses towards the rendezvous
// server, while A sends nothing to B. A real home router drops that (the
// mapping only lets the server's replies in), so nothing gets through.
func checkOneSided(lab *Lab, p Probe) error {
	codeA, codeB, err := punchBoth(lab, p, 2*time.Second, []string{"-passive"})
	if err != nil {
		return err
	}
	if codeA != exitRefused || codeB != exitRefused {
		return fmt.Errorf("one-sided punch got through (exit status: passive A %d, B %d; want %d for both)", codeA, codeB, exitRefused)
	}
	return nil
}

// checkPunch: both homes learn each other's public address from the
// rendezvous server and send to it at the same time.
func checkPunch(lab *Lab, p Probe) error {
	want := exitRefused
	if lab.NatA == Cone && lab.NatB == Cone {
		want = exitOK
	}
	codeA, codeB, err := punchBoth(lab, p, 3*time.Second, nil)
	if err != nil {
		return err
	}
	if codeA != want || codeB != want {
		return fmt.Errorf("hole punch with NATs %s/%s: exit status A %d, B %d; want %d for both", lab.NatA, lab.NatB, codeA, codeB, want)
	}
	return nil
}
