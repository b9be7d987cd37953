package dataplane

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

func gnp(name string, order float64, selector string, types []string, ingress, egress []api.Rule) *api.GlobalNetworkPolicy {
	p := &api.GlobalNetworkPolicy{Spec: api.PolicySpec{Order: &order, Selector: selector, Types: types,
		Ingress: ingress, Egress: egress}}
	p.Name = name
	return p
}

func protocol(name string) *api.Protocol {
	p, err := api.ProtocolFromString(name)
	if err != nil {
		panic(err)
	}
	return &p
}

// Networks, policy, labels, and the agent going away and coming back: the connectivity matrix of three
// workloads over TCP, UDP and ICMP, IPv4 and IPv6, at each step.
func TestPolicy(t *testing.T) {
	r := newRig(t, Config{})
	r.put(networkProfile("net-a"))
	r.put(networkProfile("net-b"))
	r.addWorkload("a1", 1, []string{"net-a"}, nil)
	r.addWorkload("a2", 2, []string{"net-a"}, nil)
	r.addWorkload("b1", 3, []string{"net-b"}, nil)
	all := []string{"a1", "a2", "b1"}

	// The networks' profiles: each network talks within itself only, in both directions.
	sameNet := paths("a1>a2 a2>a1")
	r.expectReach(all, sameNet)

	// A policy that applies to net-a lets b1 in on TCP 8080 only; the tier's end then drops the rest,
	// until a Pass hands it to the profiles again.
	webIn := []api.Rule{{Action: api.ActionAllow, Protocol: protocol("TCP"),
		Source:      api.EntityRule{Selector: "has(net-b)"},
		Destination: api.EntityRule{Ports: []api.Port{{MinPort: 8000, MaxPort: 8100}}}}}
	r.put(gnp("b-to-a-web", 10, "has(net-a)", []string{"Ingress"}, webIn, nil))
	bToAWeb := paths("b1>a1 b1>a2", "tcp4", "tcp6")
	r.expectReach(all, bToAWeb)
	pass := gnp("a-rest", 20, "has(net-a)", []string{"Ingress"}, []api.Rule{{Action: api.ActionPass}}, nil)
	r.put(pass)
	r.expectReach(all, sameNet, bToAWeb)

	// Labels: a quarantined workload may not reach others; marking a2 changes one set member.
	r.put(gnp("quarantine", 5, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionDeny,
		Source: api.EntityRule{Selector: "role == 'quarantined'"}}}, nil))
	r.relabel("a2", map[string]string{"role": "quarantined"})
	r.expectReach(all, paths("a1>a2"), bToAWeb)
	r.relabel("a2", nil)
	r.expectReach(all, sameNet, bToAWeb)

	// Egress, ICMP type, ipVersion: net-a may not send IPv6 echo requests; Pass keeps the rest.
	v6 := 6
	echo := 128
	r.put(gnp("no-ping6", 1, "has(net-a)", []string{"Egress"}, nil, []api.Rule{
		{Action: api.ActionDeny, IPVersion: &v6, Protocol: protocol("ICMPv6"), ICMP: &api.ICMPFields{Type: &echo}},
		{Action: api.ActionPass}}))
	noPing6 := paths("a1>a2 a2>a1", "tcp4", "udp4", "icmp4", "tcp6", "udp6")
	r.expectReach(all, noPing6, bToAWeb)

	// The agent dies (nothing cleaned up): the kernel keeps enforcing the last policy, an established
	// connection keeps flowing, and a change made meanwhile is applied when it is back.
	conn := r.connect("a1", "a2", 9090)
	r.kill()
	r.del(pass)
	r.expectReach(all, noPing6, bToAWeb)
	r.start()
	r.expectReach(all, bToAWeb)
	conn.RoundTrip(t)
}

// A restart rewrites the whole table in one transaction: an allowed flow probed all along never fails.
func TestRestartKeepsAllowedTraffic(t *testing.T) {
	r := newRig(t, Config{})
	r.put(networkProfile("net-a"))
	r.addWorkload("a1", 1, []string{"net-a"}, nil)
	r.addWorkload("a2", 2, []string{"net-a"}, nil)
	r.expectReach([]string{"a1", "a2"}, paths("a1>a2 a2>a1"))

	var probes, failures atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !probe(r.wl["a1"], r.wl["a2"], "tcp4") {
				failures.Add(1)
			}
			probes.Add(1)
		}
	}()
	for range 3 {
		r.kill()
		r.start()
	}
	close(stop)
	<-done
	if failures.Load() > 0 {
		t.Errorf("%d of %d probes failed across agent restarts", failures.Load(), probes.Load())
	}
	t.Logf("%d probes across 3 restarts", probes.Load())
}

// natOutgoing: traffic from the pool to an "outside" network that has no route back to the pools leaves
// with the host's address; traffic between pool addresses keeps its source.
func TestNATOutgoing(t *testing.T) {
	r := newRig(t, Config{})
	outside := r.plugOutside()
	pool4, pool6 := natPools()
	r.put(pool4)
	r.put(pool6)
	r.put(networkProfile("net-a"))
	a1 := r.addWorkload("a1", 1, []string{"net-a"}, nil)
	a2 := r.addWorkload("a2", 2, []string{"net-a"}, nil)
	expectSources(t, a1, a2, outside, 5*time.Second)

	// Without natOutgoing the outside cannot answer.
	pool4.Spec.NATOutgoing = false
	pool4.ResourceVersion = ""
	r.put(pool4)
	linktest.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if seen, err := linktest.Probe(a1.NS, "tcp", outside.IPv4, probePort); err == nil {
			return fmt.Errorf("outside reached, seeing source %s", seen)
		}
		return nil
	})
}

// natPools are pools with natOutgoing holding the rig's workload addresses.
func natPools() (pool4, pool6 *api.IPPool) {
	pool4 = &api.IPPool{Spec: api.IPPoolSpec{CIDR: "10.65.0.0/24", NATOutgoing: true}}
	pool4.Name = "pool4"
	pool6 = &api.IPPool{Spec: api.IPPoolSpec{CIDR: "fd00:65::/64", NATOutgoing: true}}
	pool6.Name = "pool6"
	return pool4, pool6
}

// Addresses of the outside network plugOutside makes: the host's end, and the outside's.
const (
	outsideHost4, outsideHost6 = "203.0.113.254", "2001:db8:113::fe"
)

// expectSources waits until TCP from workload from reaches the outside network from the host's addresses
// there (masqueraded) and workload to from its own (not masqueraded), in both families.
func expectSources(t testing.TB, from, to *workload, outside linktest.Workload, within time.Duration) {
	t.Helper()
	for _, tc := range []struct {
		to         net.IP
		wantSource string
	}{
		{outside.IPv4, outsideHost4},
		{outside.IPv6, outsideHost6},
		{to.IPv4, from.IPv4.String()},
		{to.IPv6, from.IPv6.String()},
	} {
		linktest.Eventually(t, within, 50*time.Millisecond, func() error {
			seen, err := linktest.Probe(from.NS, "tcp", tc.to, probePort)
			if err == nil && seen != tc.wantSource {
				err = fmt.Errorf("%s saw source %s, want %s", tc.to, seen, tc.wantSource)
			}
			return err
		})
	}
}

// plugOutside connects a new namespace, serving probes, to the host over a veth, with the host's addresses
// on its end and no route back to the pools.
func (r *rig) plugOutside() linktest.Workload {
	r.t.Helper()
	w := linktest.Workload{NS: linktest.NewNS(r.t, "out"), HostIface: "outside0",
		IPv4: net.ParseIP("203.0.113.1"), IPv6: net.ParseIP("2001:db8:113::1")}
	peer := "peer-out"
	for _, args := range [][]string{
		{"ip", "link", "add", w.HostIface, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", w.NS},
		{"ip", "addr", "add", outsideHost4 + "/24", "dev", w.HostIface},
		{"ip", "addr", "add", outsideHost6 + "/64", "dev", w.HostIface, "nodad"},
		{"ip", "link", "set", w.HostIface, "up"},
	} {
		out, err := linktest.Exec(r.host, args...)
		linktest.Must(r.t, fmtErr(out, err))
	}
	for _, args := range [][]string{
		{"ip", "addr", "add", w.IPv4.String() + "/24", "dev", peer},
		{"ip", "addr", "add", w.IPv6.String() + "/64", "dev", peer, "nodad"},
		{"ip", "link", "set", peer, "up"},
		{"ip", "link", "set", "lo", "up"},
	} {
		out, err := linktest.Exec(w.NS, args...)
		linktest.Must(r.t, fmtErr(out, err))
	}
	linktest.Serve(r.t, w.NS, probePort)
	return w
}

func fmtErr(out string, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// Stale state goes: routes of an endpoint deleted behind the driver's back, and a veth named as the
// driver names them that no endpoint claims, once it has been unclaimed for the grace period (and not
// before).
func TestStaleStateRemoved(t *testing.T) {
	r := newRig(t, Config{ResyncInterval: 500 * time.Millisecond, StaleInterfaceGrace: time.Second})
	r.put(networkProfile("net-a"))
	a1 := r.addWorkload("a1", 1, []string{"net-a"}, nil)
	a2 := r.addWorkload("a2", 2, []string{"net-a"}, nil)
	r.expectReach([]string{"a1", "a2"}, paths("a1>a2 a2>a1"))

	orphanSeen := time.Now()
	orphan := linktest.Workload{NS: linktest.NewNS(t, "wl"), HostIface: api.LibnetworkInterface(endpointID("orphan")),
		IPv4: net.ParseIP("10.65.0.9"), IPv6: net.ParseIP("fd00:65::9")}
	linktest.Plug(t, r.host, orphan)

	r.del(a2.wep)
	linktest.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		out, err := linktest.Exec(r.host, "ip", "route", "show", "dev", a2.HostIface)
		if err == nil && out != "" {
			return fmt.Errorf("routes of a deleted endpoint remain:\n%s", out)
		}
		return nil
	})
	if err := linktest.Ping(a1.NS, a2.IPv4); err == nil {
		t.Error("a deleted endpoint is still reachable")
	}
	linktest.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		_, err := linktest.Exec(r.host, "ip", "link", "show", orphan.HostIface)
		if err == nil {
			return fmt.Errorf("%s still present", orphan.HostIface)
		}
		return nil
	})
	if gone := time.Since(orphanSeen); gone < time.Second {
		t.Errorf("orphan deleted after %v, before its grace period", gone)
	}
	// a2's own interface lost its endpoint too, and goes the same way.
	linktest.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if _, err := linktest.Exec(r.host, "ip", "link", "show", a2.HostIface); err == nil {
			return fmt.Errorf("%s still present", a2.HostIface)
		}
		return nil
	})
}

// connect opens a connection from one workload to an echo server started in the other, and checks it.
func (r *rig) connect(from, to string, port int) *linktest.Conn {
	r.t.Helper()
	return linktest.Connect(r.t, r.wl[to].Do, r.wl[from].Do, r.wl[to].IPv4, port)
}
