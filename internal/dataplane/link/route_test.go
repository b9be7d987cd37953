package link_test

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// expectRoute checks that exactly one route to ip exists, on iface, as AddWorkloadRoute makes
// it, and that the neighbour entry for ip is permanent with mac (none if mac is nil).
func expectRoute(t *testing.T, iface string, ip net.IP, mac net.HardwareAddr) {
	t.Helper()
	l := mustLink(t, iface)
	bits := 128
	family := netlink.FAMILY_V6
	if ip.To4() != nil {
		bits, family = 32, netlink.FAMILY_V4
	}
	dst := &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
	linktest.Must(t, err)
	if len(routes) != 1 {
		t.Fatalf("routes to %s: %v, want exactly one", dst, routes)
	}
	r := routes[0]
	if r.LinkIndex != l.Attrs().Index || r.Protocol != link.RouteProtocol || r.Gw != nil ||
		(family == netlink.FAMILY_V4 && r.Scope != netlink.SCOPE_LINK) {
		t.Errorf("route %v: want dev %s proto 80 scope link", r, iface)
	}
	neighs, err := netlink.NeighList(l.Attrs().Index, family)
	linktest.Must(t, err)
	i := slices.IndexFunc(neighs, func(n netlink.Neigh) bool { return n.IP.Equal(ip) })
	switch {
	case mac == nil && i >= 0:
		t.Errorf("unexpected neighbour %v", neighs[i])
	case mac != nil && i < 0:
		t.Errorf("no neighbour entry for %s on %s", ip, iface)
	case mac != nil && (neighs[i].State != netlink.NUD_PERMANENT || neighs[i].HardwareAddr.String() != mac.String()):
		t.Errorf("neighbour %v, want permanent %s", neighs[i], mac)
	}
}

func TestWorkloadRoutes(t *testing.T) {
	mac1 := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	mac2 := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	ips := []net.IP{net.ParseIP("10.65.1.5").To4(), net.ParseIP("fd00:65::5")}
	inNewNS(t, func() {
		for _, v := range []link.Veth{
			{HostName: "calirt1", PeerName: "tmprt1", IPv6: true},
			{HostName: "calirt2", PeerName: "tmprt2", IPv6: true},
			{HostName: "other1", PeerName: "tmpo1", IPv6: true},
		} {
			_, err := link.CreateVeth(v, nil)
			linktest.Must(t, err)
		}
		linktest.Must(t, link.AddWorkloadRoute("other1", net.ParseIP("10.65.9.9"), nil))

		for _, ip := range ips {
			linktest.Must(t, link.AddWorkloadRoute("calirt1", ip, mac1))
			linktest.Must(t, link.AddWorkloadRoute("calirt1", ip, mac1))
			expectRoute(t, "calirt1", ip, mac1)
			linktest.Must(t, link.AddWorkloadRoute("calirt1", ip, mac2))
			expectRoute(t, "calirt1", ip, mac2)
		}
		got, err := link.ListWorkloadRoutes("cali")
		linktest.Must(t, err)
		if len(got) != 2 || !slices.ContainsFunc(got, routeTo("calirt1", ips[0])) ||
			!slices.ContainsFunc(got, routeTo("calirt1", ips[1])) {
			t.Errorf("ListWorkloadRoutes = %v, want %v on calirt1", got, ips)
		}

		// Replace semantics: the route follows the workload to another interface.
		linktest.Must(t, link.AddWorkloadRoute("calirt2", ips[0], nil))
		expectRoute(t, "calirt2", ips[0], nil)

		for _, ip := range ips {
			for _, iface := range []string{"calirt1", "calirt2"} {
				linktest.Must(t, link.DeleteWorkloadRoute(iface, ip))
				linktest.Must(t, link.DeleteWorkloadRoute(iface, ip))
			}
		}
		linktest.Must(t, link.DeleteWorkloadRoute("nosuch", ips[0]))
		if got, err := link.ListWorkloadRoutes("cali"); err != nil || len(got) != 0 {
			t.Errorf("after delete ListWorkloadRoutes = %v, %v", got, err)
		}
		neighs, err := netlink.NeighList(mustLink(t, "calirt1").Attrs().Index, netlink.FAMILY_ALL)
		linktest.Must(t, err)
		for _, n := range neighs {
			if n.State == netlink.NUD_PERMANENT {
				t.Errorf("neighbour left behind: %v", n)
			}
		}
	})
}

func TestAddWorkloadRouteErrors(t *testing.T) {
	inNewNS(t, func() {
		err := link.AddWorkloadRoute("nosuch", net.ParseIP("10.0.0.1"), nil)
		if err == nil || !strings.Contains(err.Error(), "nosuch") {
			t.Errorf("missing interface: %v", err)
		}
		_, err = link.CreateVeth(link.Veth{HostName: "calie", PeerName: "tmpe"}, nil)
		linktest.Must(t, err)
		if err := link.AddWorkloadRoute("calie", nil, nil); err == nil {
			t.Error("nil IP accepted")
		}
	})
}

func routeTo(iface string, ip net.IP) func(link.Route) bool {
	return func(r link.Route) bool { return r.Iface == iface && r.IP.Equal(ip) }
}
