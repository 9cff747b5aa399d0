//go:build linux

// Package natlab gives Go tests a NAT lab: a miniature internet with public
// hosts and two homes behind NAT routers (cone or symmetric), built from
// network namespaces by scripts/nat-lab.sh, to test NAT traversal (AutoNAT,
// circuit relay v2, DCUtR hole punching) with real processes.
//
// Everything runs inside an unprivileged sandbox (user, network, mount and
// pid namespaces) that the test binary enters at start: a test package calls
// Main from its TestMain, which re-executes the test binary inside the
// sandbox. Each test then builds its own lab and runs programs in it:
//
//	func TestMain(m *testing.M) { natlab.Main(m) }
//
//	func TestPunch(t *testing.T) {
//		lab := natlab.Start(t, natlab.Options{NatA: natlab.Cone, NatB: natlab.Symmetric})
//		cmd := lab.Command(lab.A, "p2pshare", "--listen", "/ip4/"+lab.A.IP+"/udp/4001/quic-v1")
//		...
//	}
//
// A TestMain that needs its own set-up inside the sandbox (say, multicast on
// the sandbox's loopback, as cmd/node's end-to-end tests want) runs itself
// through SandboxCommand instead of calling Main; the sandbox sets
// NATLAB_SANDBOX=1 (see InSandbox) so the re-executed binary knows where it
// is. Labs are independent, so tests that use them may run in parallel.
//
// A program started by `scripts/nat-lab.sh -- CMD` finds its lab with
// FromEnv instead. Nothing here touches the machine's real network: the lab's
// addresses exist only on its veth links, and the script refuses to build a
// lab outside the sandbox or one with a route leading off the lab's links.
package natlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// NAT is the behaviour of a home router's NAT.
type NAT string

const (
	// Cone keeps a connection's source port whatever the destination
	// (endpoint-independent mapping), like most home routers: hole punching
	// works through it.
	Cone NAT = "cone"
	// Symmetric picks a new source port for every destination, so the port a
	// peer learns from a third party is useless and hole punching fails.
	Symmetric NAT = "symmetric"
)

// Options choose the NAT of each home. The zero value means Cone.
type Options struct {
	NatA, NatB NAT
}

// Host is one place in the lab where programs run.
type Host struct {
	NS string // network namespace name, for ip netns exec
	IP string // IPv4 address; for a router, its WAN (public) address
}

// Lab is a built NAT lab. See scripts/nat-lab.sh for the address plan.
type Lab struct {
	Options
	Prefix string // namespace name prefix, unique among the labs of a sandbox

	ISP        Host // the internet segment's bridge and default gateway
	Public     Host // a host with a public address
	Public2    Host // a second public host
	RouterA    Host // home A's NAT router; IP is its WAN address
	RouterB    Host
	A          Host // the host in home A, on a private address behind RouterA
	B          Host
	RouterALAN string // router A's LAN address, home A's default gateway
	RouterBLAN string

	NetInternet, NetA, NetB string // the subnets, in CIDR notation

	script string // the nat-lab.sh that built the lab; empty from FromEnv
}

// Command returns a command that runs name with args in h's network
// namespace. The caller starts it and must make sure it ends.
func (l *Lab) Command(h Host, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Verify re-runs the lab's isolation check, for tests that want to be sure
// nothing they did opened a way out of the lab.
func (l *Lab) Verify() error {
	script := l.script
	if script == "" {
		var err error
		if script, err = findScript(); err != nil {
			return err
		}
	}
	return runScript(script, "--verify", "--prefix", l.Prefix)
}

// sandboxEnv is set (by the script) in every process inside a sandbox.
const sandboxEnv = "NATLAB_SANDBOX"

// InSandbox reports whether this process runs inside a lab sandbox, where
// Start can build labs.
func InSandbox() bool { return os.Getenv(sandboxEnv) == "1" }

// Main is a TestMain for packages whose tests use Start: outside a sandbox
// it re-runs the test binary inside a fresh one and exits with its status;
// inside, it runs the tests. It also turns the test binary into the lab's
// probe when SelfProbe asks for it. If the sandbox cannot be made, the tests
// fail: they never run on the machine's real network.
func Main(m *testing.M) {
	if os.Getenv(probeEnv) == "1" {
		os.Exit(ProbeMain(os.Args[1:]))
	}
	if InSandbox() {
		os.Exit(m.Run())
	}
	cmd, err := SandboxCommand(os.Args[0], os.Args[1:]...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: natlab: %v\n", err)
		os.Exit(1)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "FAIL: natlab: the tests in a lab sandbox did not run to the end: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// SandboxCommand returns a command that runs name with args inside a fresh
// lab sandbox (scripts/nat-lab.sh --sandbox), for a TestMain that needs more
// set-up than Main does. Processes left in the sandbox die when name exits.
func SandboxCommand(name string, args ...string) (*exec.Cmd, error) {
	script, err := findScript()
	if err != nil {
		return nil, err
	}
	return exec.Command("bash", append([]string{script, "--sandbox", "--", name}, args...)...), nil
}

var labSeq atomic.Int64

// Start builds a new lab for t, fails t if it cannot, and tears the lab down
// (killing whatever still runs in it) when t ends. It needs the test binary
// to run inside a sandbox (see Main), and ip, nft and bash on PATH.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	if !InSandbox() {
		t.Fatal("natlab: not inside a lab sandbox: call natlab.Main from TestMain (or run under scripts/nat-lab.sh --sandbox)")
	}
	for _, tool := range []string{"bash", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("natlab: %s is needed to build the lab: %v", tool, err)
		}
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	opts = opts.withDefaults()
	prefix := fmt.Sprintf("l%d-", labSeq.Add(1))
	var out, log bytes.Buffer
	cmd := exec.Command("bash", script, "--up", "--prefix", prefix,
		"--nat-a", string(opts.NatA), "--nat-b", string(opts.NatB))
	cmd.Stdout, cmd.Stderr = &out, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("natlab: building the lab failed: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		if err := runScript(script, "--down", "--prefix", prefix); err != nil {
			t.Errorf("natlab: tearing the lab down: %v", err)
		}
	})
	t.Log(strings.TrimSpace(log.String()))
	env, err := parseEnv(out.Bytes())
	if err != nil {
		t.Fatalf("natlab: %v", err)
	}
	lab, err := fromVars(env)
	if err != nil {
		t.Fatalf("natlab: %v", err)
	}
	lab.script = script
	return lab
}

// FromEnv returns the lab described by the LAB_* environment variables that
// `scripts/nat-lab.sh -- CMD` gives CMD.
func FromEnv() (*Lab, error) {
	vars := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "LAB_") {
			vars[k] = v
		}
	}
	lab, err := fromVars(vars)
	if err != nil {
		return nil, fmt.Errorf("%w (is this running under scripts/nat-lab.sh -- CMD?)", err)
	}
	return lab, nil
}

func (o Options) withDefaults() Options {
	if o.NatA == "" {
		o.NatA = Cone
	}
	if o.NatB == "" {
		o.NatB = Cone
	}
	return o
}

// fromVars builds a Lab from the script's KEY=VALUE description.
func fromVars(v map[string]string) (*Lab, error) {
	var missing []string
	get := func(k string) string {
		s, ok := v[k]
		if !ok || s == "" {
			missing = append(missing, k)
		}
		return s
	}
	host := func(name string) Host { return Host{NS: get("LAB_NS_" + name), IP: get("LAB_IP_" + name)} }
	l := &Lab{
		Options: Options{NatA: NAT(get("LAB_NAT_A")), NatB: NAT(get("LAB_NAT_B"))},
		Prefix:  v["LAB_PREFIX"],
		ISP:     Host{NS: get("LAB_NS_INET"), IP: get("LAB_IP_ISP")},
		Public:  host("PUBLIC"),
		Public2: host("PUBLIC2"),
		RouterA: host("ROUTER_A"),
		RouterB: host("ROUTER_B"),
		A:       host("A"),
		B:       host("B"),

		RouterALAN:  get("LAB_IP_ROUTER_A_LAN"),
		RouterBLAN:  get("LAB_IP_ROUTER_B_LAN"),
		NetInternet: get("LAB_NET_INTERNET"),
		NetA:        get("LAB_NET_A"),
		NetB:        get("LAB_NET_B"),
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("lab description lacks %s", strings.Join(missing, ", "))
	}
	return l, nil
}

func parseEnv(b []byte) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			return nil, fmt.Errorf("unexpected line %q in the lab description", sc.Text())
		}
		vars[k] = v
	}
	return vars, sc.Err()
}

// findScript locates scripts/nat-lab.sh: $NATLAB_SCRIPT if set, else in the
// nearest directory above the working directory (go test runs a package's
// tests in its source directory) that has it.
func findScript() (string, error) {
	if s := os.Getenv("NATLAB_SCRIPT"); s != "" {
		return s, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("natlab: looking for scripts/nat-lab.sh: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		s := filepath.Join(dir, "scripts", "nat-lab.sh")
		if _, err := os.Stat(s); err == nil {
			return s, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("natlab: no scripts/nat-lab.sh in %s or above (set NATLAB_SCRIPT)", wd)
		}
	}
}

// runScript runs the script with args and returns an error carrying its
// stderr if it fails.
func runScript(script string, args ...string) error {
	var log bytes.Buffer
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(script), strings.Join(args, " "), err, strings.TrimSpace(log.String()))
	}
	return nil
}
