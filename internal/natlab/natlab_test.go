//go:build linux

package natlab

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestLabBehavesLikeRealNATs builds a lab for each NAT combination and runs
// the self-test checks in it.
func TestLabBehavesLikeRealNATs(t *testing.T) {
	probe, err := SelfProbe()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{Cone, Cone}, {Symmetric, Symmetric}, {Cone, Symmetric}} {
		t.Run(string(o.NatA)+"-"+string(o.NatB), func(t *testing.T) {
			t.Parallel() // the labs are independent, and the checks mostly wait
			lab := Start(t, o)
			if lab.NatA != o.NatA || lab.NatB != o.NatB {
				t.Fatalf("lab has NATs %s/%s, asked for %s/%s", lab.NatA, lab.NatB, o.NatA, o.NatB)
			}
			for _, c := range Checks(o) {
				t.Run(c.Name, func(t *testing.T) {
					if err := c.Run(lab, probe); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

func ipIn(t *testing.T, h Host, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", h.NS}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s in %s: %v: %s", strings.Join(args, " "), h.NS, err, out)
	}
}

// TestVerifyRefusesWaysOut: a route that leaves the lab's plan, or an
// interface the lab did not make, makes the isolation check fail.
func TestVerifyRefusesWaysOut(t *testing.T) {
	lab := Start(t, Options{})
	if err := lab.Verify(); err != nil {
		t.Fatalf("fresh lab: %v", err)
	}
	cases := []struct {
		name      string
		add, del  []string
		wantInErr string
	}{
		{"route via a gateway", []string{"route", "add", "8.8.8.0/24", "via", lab.ISP.IP}, []string{"route", "del", "8.8.8.0/24"}, "route via a gateway"},
		{"static route on a lab link", []string{"route", "add", "8.8.4.0/24", "dev", "eth0"}, []string{"route", "del", "8.8.4.0/24"}, "not a connected one"},
		{"foreign interface", []string{"link", "add", "name", "stray", "type", "veth", "peer", "name", "stray2"}, []string{"link", "del", "stray"}, "unexpected interface 'stray"},
	}
	for _, c := range cases {
		ipIn(t, lab.Public, c.add...)
		err := lab.Verify()
		ipIn(t, lab.Public, c.del...)
		if err == nil || !strings.Contains(err.Error(), c.wantInErr) {
			t.Errorf("%s: Verify returned %v, want an error about %q", c.name, err, c.wantInErr)
		}
	}
	if err := lab.Verify(); err != nil {
		t.Fatalf("after removing the strays: %v", err)
	}
}

// TestScriptRefusesOutsideItsSandbox: the lab's building commands run only
// in the namespace the sandbox marked, never in another one (here a lab
// namespace stands in for the machine's).
func TestScriptRefusesOutsideItsSandbox(t *testing.T) {
	lab := Start(t, Options{})
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"--up", "--down", "--verify"} {
		out, err := lab.Command(lab.Public, "bash", script, mode, "--prefix", "other-").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refusing to touch this namespace") {
			t.Errorf("%s in a namespace that is not the sandbox's: err %v, output %q; want a refusal", mode, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil || bytes.Contains(out, []byte("other-")) {
		t.Errorf("ip netns list: %v %s", err, out)
	}
}

// TestRunMode runs `nat-lab.sh --nat-a symmetric -- CMD` (in a sandbox of
// its own, nested in this one) and checks what CMD is given.
func TestRunMode(t *testing.T) {
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, "--nat-a", "symmetric", "--", "sh", "-c",
		`env && ip netns exec "$LAB_NS_A" ip -4 -o addr show dev eth0`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	vars := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "LAB_") {
			vars[k] = v
		}
	}
	lab, err := fromVars(vars)
	if err != nil {
		t.Fatal(err)
	}
	if lab.NatA != Symmetric || lab.NatB != Cone {
		t.Errorf("NATs %s/%s, want symmetric/cone", lab.NatA, lab.NatB)
	}
	if !strings.Contains(string(out), " inet "+lab.A.IP+"/24 ") {
		t.Errorf("home A's eth0 does not have %s:\n%s", lab.A.IP, out)
	}
}

func TestFromEnvNamesWhatIsMissing(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "LAB_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("LAB_NAT_A", "cone")
	_, err := FromEnv()
	if err == nil || !strings.Contains(err.Error(), "LAB_NS_PUBLIC") || strings.Contains(err.Error(), "LAB_NAT_A") {
		t.Fatalf("FromEnv without a lab: %v", err)
	}
}
