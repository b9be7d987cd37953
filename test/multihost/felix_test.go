package multihost

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// sourcePort is where the router answers with the source address it sees.
const sourcePort = 8080

// TestMixedDualStack is TestMixedCluster in both families, with Docker containers on dual-stack networks:
// host "ours" runs this plugin's dataplane, host "felix" the plugin with CALICO_DATAPLANE=none beside
// upstream Felix, both on segment A with natOutgoing pools in mode Never (direct routes, which IPv6
// needs). Reachability, the isolation of a second network, a GlobalNetworkPolicy and NAT outgoing give
// the same results whichever implementation enforces them. Then "ours" is handed to Felix and back, as the
// README says, with its containers running and TCP connections to one of them open: each time the same
// results, and the connections carry on.
func TestMixedDualStack(t *testing.T) {
	l := newLab(t, []hostSpec{{name: "ours", segment: 0, number: 11}, {name: "felix", segment: 0, number: 12, felix: true}})
	ours, felix := l.host("ours"), l.host("felix")
	l.setPools("Never") // Felix, started before, restarts on the new encapsulation (and is respawned)
	for _, pool := range []string{"lab4", "lab6"} {
		l.calicoctl("", "patch", "ippool", pool, "-p", `{"spec": {"natOutgoing": true}}`)
	}
	for _, h := range l.hosts {
		for _, network := range []string{"dsnet", "dsother"} {
			h.mustDocker("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam", "--ipv6", network)
		}
	}
	a, a2, b := ours.run("ours1", "dsnet"), ours.run("ours2", "dsnet"), felix.run("felix1", "dsnet")
	xa, xb := ours.run("xours", "dsother"), felix.run("xfelix", "dsother")
	for _, c := range []*container{a, a2, b, xa, xb} {
		if c.ip4 == "" || c.ip6 == "" {
			t.Fatalf("%s has addresses %q and %q, want one of each family", c.name, c.ip4, c.ip6)
		}
	}
	linktest.Serve(t, l.router, sourcePort)
	both := []bool{false, true}

	expectProgrammed(t, felix, a, felixStart)
	expectProgrammed(t, ours, b, converge)
	var conns []*linktest.Conn
	for i, c := range []struct {
		from *container
		v6   bool
	}{{b, false}, {b, true}, {a2, false}} {
		conns = append(conns, linktest.Connect(t, a.do, c.from.do, net.ParseIP(a.addr(c.v6)), 7000+i))
	}

	same := func(t *testing.T) {
		for _, v6 := range both {
			expectMatrix(t, []*container{a, a2, b}, v6)
			expectMatrix(t, []*container{xa, xb}, v6)
			// Each network's profile admits only its own members, enforced by the receiving host.
			for _, p := range [][2]*container{{xa, b}, {xb, a}, {a, xb}, {b, xa}} {
				expectNoPing(t, p[0], p[1].addr(v6))
			}
			// The router is outside the pools, with no route back to them.
			for _, c := range []*container{a, b} {
				expectSource(t, c, segments[0].gateway(v6).String(), c.host.addr(v6).String())
			}
		}
		// Denied between a and b in both directions and families, a2 keeps its paths. The rule matches
		// the containers' own addresses, so between hosts the sources stay unmasqueraded.
		var nets []string
		for _, c := range []*container{a, b} {
			nets = append(nets, c.ip4+"/32", c.ip6+"/128")
		}
		l.calicoctl(fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-a-b}
spec:
  order: 1
  selector: has(dsnet)
  ingress:
  - action: Deny
    source: {nets: [%[1]s]}
    destination: {nets: [%[1]s]}
  - action: Pass
`, strings.Join(nets, ", ")), "apply", "-f", "-")
		for _, v6 := range both {
			expectNoPing(t, a, b.addr(v6))
			expectNoPing(t, b, a.addr(v6))
			expectPing(t, a2, b.addr(v6))
			expectPing(t, b, a2.addr(v6))
		}
		l.calicoctl("", "delete", "globalnetworkpolicy", "deny-a-b")
		for _, v6 := range both {
			expectMatrix(t, []*container{a, b}, v6)
		}
		for _, c := range conns {
			c.RoundTrip(t)
		}
	}
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Mixed", same},
		{"ToFelix", func(t *testing.T) {
			ours.handOver(true)
			expectProgrammed(t, ours, b, felixStart)
			same(t)
		}},
		{"Back", func(t *testing.T) {
			ours.handOver(false)
			expectProgrammed(t, ours, b, converge)
			same(t)
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return
		}
	}
}

// expectProgrammed waits until h's firewall is Felix's or this dataplane's, as h.felix says (Felix leaves
// its chains when it stops), and h routes the remote container in both families directly to its host.
func expectProgrammed(t *testing.T, h *host, remote *container, timeout time.Duration) {
	t.Helper()
	waitHost(t, h, timeout, func() error {
		if felixChains, ourTable := dataplaneOf(h); ourTable == h.felix || h.felix && !felixChains {
			return fmt.Errorf("%s: Felix's chains %v, this dataplane's table %v", h.name, felixChains, ourTable)
		}
		for _, v6 := range []bool{false, true} {
			out, err := h.sh("ip route get " + remote.addr(v6))
			if want := " via " + remote.host.addr(v6).String() + " dev eth0 "; err != nil || !strings.Contains(out, want) {
				return fmt.Errorf("%s routes %s as %q, want %q (%v)", h.name, remote.addr(v6), out, want, err)
			}
		}
		return nil
	})
}

// expectSource waits until a TCP connection from c to a linktest.Serve server at ip arrives from source.
func expectSource(t *testing.T, c *container, ip, source string) {
	t.Helper()
	if err := waitFor(converge, func() error {
		seen, err := c.host.docker("exec", c.name, "nc", "-w", "1", ip, strconv.Itoa(sourcePort))
		if err != nil || seen != source {
			return fmt.Errorf("%s (%s) reached %s from %q, want %s (%v)", c.name, c.host.name, ip, seen, source, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
