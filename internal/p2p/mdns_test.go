package p2p

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// mdnsNetnsEnv marks the copy of the test binary that runs inside the
// private network namespace.
const mdnsNetnsEnv = "P2PSHARE_TEST_MDNS_NETNS"

// mdnsNetnsScript prepares the namespace's loopback for multicast, then
// runs the test binary ($0) again inside it.
const mdnsNetnsScript = `set -e
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
exec "$0" -test.run '^TestMDNS$' -test.count=1 -test.v`

// TestMDNS runs two nodes with mDNS on inside an unprivileged network
// namespace whose only interface is loopback, so no multicast packet can
// reach the machine's real network. Outside the namespace it re-executes
// itself there with unshare; it fails, never skips, if it cannot.
func TestMDNS(t *testing.T) {
	if os.Getenv(mdnsNetnsEnv) != "1" {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Fatalf("mDNS test needs unshare(1) to create a private network namespace: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, unshare, "-rn", "sh", "-c", mdnsNetnsScript, os.Args[0])
		cmd.Env = append(os.Environ(), mdnsNetnsEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mDNS test in a network namespace failed: %v\n%s", err, out)
		}
		t.Logf("inside the namespace:\n%s", out)
		return
	}

	// Refuse to multicast anywhere but a lone loopback.
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback == 0 {
			t.Fatalf("interface %s present: not in a private network namespace, refusing to run mDNS", ifc.Name)
		}
	}

	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := func() Config {
		c := testConfig(t, t.TempDir())
		c.MDNS = true
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
		return c
	}
	a := openNode(t, cfg())
	b := openNode(t, cfg())

	mdnsOnline := func(p PeerInfo) bool { return p.Online && p.Source == SourceMDNS }
	pa := waitPeer(t, ctx, a, b.ID(), "online via mDNS", mdnsOnline)
	pb := waitPeer(t, ctx, b, a.ID(), "online via mDNS", mdnsOnline)
	t.Logf("a sees b at %v; b sees a at %v", pa.Addrs, pb.Addrs)

	// Found by mDNS, connected, and so in each other's DHT routing table.
	poll(t, ctx, "DHT routing tables", func() bool {
		return a.DHT().RoutingTable().Find(b.ID()) != "" && b.DHT().RoutingTable().Find(a.ID()) != ""
	})
}

// mdnsOffEnv marks the copy of the test binary that runs in a namespace
// whose loopback has no multicast, so mDNS cannot start.
const mdnsOffEnv = "P2PSHARE_TEST_MDNS_OFF_NETNS"

// A node asked for mDNS where no interface can multicast still starts (it
// can reach peers by bootstrap and connect) and reports why LAN discovery
// is off.
func TestMDNSUnavailableIsNotFatal(t *testing.T) {
	if os.Getenv(mdnsOffEnv) != "1" {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Fatalf("test needs unshare(1) to create a private network namespace: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		script := `set -e
ip link set lo up
exec "$0" -test.run '^TestMDNSUnavailableIsNotFatal$' -test.count=1 -test.v`
		cmd := exec.CommandContext(ctx, unshare, "-rn", "sh", "-c", script, os.Args[0])
		cmd.Env = append(os.Environ(), mdnsOffEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("test in a network namespace failed: %v\n%s", err, out)
		}
		t.Logf("inside the namespace:\n%s", out)
		return
	}
	checkLeaks(t)
	c := testConfig(t, t.TempDir())
	c.MDNS = true
	c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	n := openNode(t, c)
	if n.MDNSError() == nil {
		t.Fatal("mDNS reported as running with no multicast interface")
	}
	if len(n.Addrs()) == 0 {
		t.Fatal("node without mDNS has no addresses")
	}
}
