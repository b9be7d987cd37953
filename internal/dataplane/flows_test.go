package dataplane

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// flowPort is the source port of the test's UDP flows: sending from it again is the same flow.
const flowPort = 40000

// A released address loses its conntrack entries, whether the driver removes its endpoint
// (DeleteEndpoint, the endpoint collector) or the endpoint just goes from the datastore; other
// addresses keep theirs. A new workload given the address does not inherit an answered UDP flow:
// its policy decides the flow's next packet.
func TestReleasedAddressLosesItsFlows(t *testing.T) {
	r := newRig(t, Config{})
	r.put(networkProfile("net-a"))
	closed := &api.Profile{Spec: api.ProfileSpec{Egress: []api.Rule{{Action: api.ActionAllow}}}}
	closed.Name = "closed"
	r.put(closed)
	a1 := r.addWorkload("a1", 1, []string{"net-a"}, nil)
	var peers []*workload
	for i, name := range []string{"a2", "a3", "a4"} {
		peers = append(peers, r.addWorkload(name, i+2, []string{"net-a"}, nil))
	}
	a2, a3, a4 := peers[0], peers[1], peers[2]
	for _, w := range peers {
		for _, ip := range []net.IP{w.IPv4, w.IPv6} {
			linktest.Must(t, udpFrom(a1, ip))
		}
	}
	r.expectFlows(map[*workload]bool{a2: true, a3: true, a4: true})

	// The driver: interface deleted, EndpointDown, endpoint deleted.
	linktest.MustDo(t, r.host, func() { linktest.Must(t, link.DeleteLink(a2.HostIface)) })
	linktest.Must(t, r.agent.EndpointDown(context.Background(), a2.wep))
	r.expectFlows(map[*workload]bool{a2: false, a3: true, a4: true})
	r.del(a2.wep)

	// Deleted from the datastore alone (calicoctl, another host's collector): the watch releases it.
	r.del(a3.wep)
	r.expectFlows(map[*workload]bool{a2: false, a3: false, a4: true})

	// a2's address on a workload that admits nothing: a1's flow to it, answered before, is new again.
	c := r.addWorkload("c", 2, []string{"closed"}, nil)
	for _, ip := range []net.IP{c.IPv4, c.IPv6} {
		if err := udpFrom(a1, ip); err == nil {
			t.Errorf("a1's old UDP flow to %s reaches the workload that got the address", ip)
		}
	}
	linktest.Must(t, udpFrom(a1, a4.IPv4))
}

// udpFrom sends a datagram from a workload's flowPort to a Serve server and waits for the answer.
func udpFrom(w *workload, to net.IP) error {
	var err error
	if doErr := linktest.Do(w.NS, func() {
		var c *net.UDPConn
		if c, err = net.DialUDP("udp", &net.UDPAddr{Port: flowPort}, &net.UDPAddr{IP: to, Port: probePort}); err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(linktest.ProbeTimeout))
		if _, err = c.Write([]byte("?")); err == nil {
			_, err = c.Read(make([]byte, 64))
		}
	}); doErr != nil {
		return doErr
	}
	return err
}

// expectFlows checks, for each workload, whether the host's conntrack table holds entries of its
// addresses, both families (true) or none (false).
func (r *rig) expectFlows(want map[*workload]bool) {
	r.t.Helper()
	for w, has := range want {
		for _, ip := range []net.IP{w.IPv4, w.IPv6} {
			if n := r.flowsWith(ip); (n > 0) != has {
				r.t.Errorf("%d conntrack entries of %s (%s), want some: %v", n, ip, w.HostIface, has)
			}
		}
	}
}

// flowsWith counts the host's conntrack entries in which ip takes any part.
func (r *rig) flowsWith(ip net.IP) int {
	n := 0
	linktest.MustDo(r.t, r.host, func() {
		for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
			flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, family)
			linktest.Must(r.t, err)
			for _, f := range flows {
				for _, end := range []net.IP{f.Forward.SrcIP, f.Forward.DstIP, f.Reverse.SrcIP, f.Reverse.DstIP} {
					if end.Equal(ip) {
						n++
						break
					}
				}
			}
		}
	})
	return n
}
