package link_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// Learnt routes inside the pools are made exactly what BGP says, with next hops across a router resolved
// through it, except through an ignored interface; a route of the same protocol outside the pools (another
// BGP daemon's) stays.
func TestSyncLearnedRoutes(t *testing.T) {
	ns := linktest.NewNS(t, "learnt")
	linktest.MustDo(t, ns, func() {
		l := upVeth(t, "eth0", "198.18.0.11/24")
		// The default route through the router.
		linktest.Must(t, netlink.RouteAdd(&netlink.Route{Gw: netip.MustParseAddr("198.18.0.1").AsSlice(), LinkIndex: l.Attrs().Index}))
		foreign, _ := netlink.ParseIPNet("10.50.0.0/16")
		linktest.Must(t, netlink.RouteAdd(&netlink.Route{Dst: foreign, Gw: netip.MustParseAddr("198.18.0.1").AsSlice(),
			LinkIndex: l.Attrs().Index, Protocol: link.LearnedProtocol}))
		upVeth(t, "docker9", "198.18.5.1/24")

		pools := []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}
		want := []link.LearnedRoute{
			{Dst: netip.MustParsePrefix("198.19.1.0/26"), Via: netip.MustParseAddr("198.18.0.12")}, // same subnet
			{Dst: netip.MustParsePrefix("198.19.2.0/26"), Via: netip.MustParseAddr("198.18.1.13")}, // behind the router
			{Dst: netip.MustParsePrefix("198.19.3.0/26"), Via: netip.MustParseAddr("198.18.5.7")},  // on an ignored interface
		}
		ignored := []string{"kube-ipvs*", "docker*"}
		for range 2 { // idempotent
			err := link.SyncLearnedRoutes(want, pools, ignored)
			if err == nil || !strings.Contains(err.Error(), `route 198.19.3.0/26 via 198.18.5.7: the next hop is on docker9, an ignored interface ("docker*")`) {
				t.Errorf("a next hop on an ignored interface: %v", err)
			}
		}
		out, err := linktest.Exec(ns, "ip", "route", "show", "proto", "bird")
		linktest.Must(t, err)
		for _, line := range []string{"198.19.1.0/26 via 198.18.0.12 dev eth0", "198.19.2.0/26 via 198.18.0.1 dev eth0", "10.50.0.0/16 via 198.18.0.1"} {
			if !strings.Contains(out, line) {
				t.Errorf("routes lack %q:\n%s", line, out)
			}
		}
		if strings.Contains(out, "198.19.3.0") {
			t.Errorf("a route through an ignored interface:\n%s", out)
		}

		linktest.Must(t, link.SyncLearnedRoutes(want[:1], pools, ignored))
		out, err = linktest.Exec(ns, "ip", "route", "show", "proto", "bird")
		linktest.Must(t, err)
		if strings.Contains(out, "198.19.2.0/26") || !strings.Contains(out, "10.50.0.0/16") {
			t.Errorf("after the withdrawal:\n%s", out)
		}
	})
}

// upVeth makes a veth pair, both ends up, the one called name with addr.
func upVeth(t *testing.T, name, addr string) netlink.Link {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	linktest.Must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: name + "peer"}))
	for _, n := range []string{name, name + "peer"} {
		l, err := netlink.LinkByName(n)
		linktest.Must(t, err)
		linktest.Must(t, netlink.LinkSetUp(l))
	}
	l, err := netlink.LinkByName(name)
	linktest.Must(t, err)
	a, err := netlink.ParseAddr(addr)
	linktest.Must(t, err)
	linktest.Must(t, netlink.AddrAdd(l, a))
	return l
}
