package routing

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/bgp"
)

func TestBGPPlan(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	v.nodes["c"].Spec.BGP.ASNumber = "1.10" // dotted: 65546
	p := v.bgpPlan()
	a, b, c := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.1.13")
	want := []bgp.Peer{
		{Addr: b, Port: 179, ASN: 64512, Source: a, Type: "node-to-node mesh", Name: "b", RestartTime: meshRestartTime},
		{Addr: c, Port: 179, ASN: 65546, Source: a, Type: "node-to-node mesh", Name: "c", RestartTime: meshRestartTime},
	}
	if p.ASN != 64512 || p.RouterID != a || p.ListenPort != 179 || !slices.Equal(p.Peers, want) {
		t.Errorf("plan %+v", p)
	}
	// a's own IPv4 block and the address it borrowed from b's block; not b's .5 in a's block.
	adverts := []netip.Prefix{netip.MustParsePrefix("198.19.0.0/26"), netip.MustParsePrefix("198.19.1.9/32")}
	if !slices.Equal(p.Advertise, adverts) || !slices.Equal(p.Pools, []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}) {
		t.Errorf("advertised %v, learnt routes in %v", p.Advertise, p.Pools)
	}
	// The unencapsulated IPv4 routes are BGP's now; the blackholes and IPv6 stay the reconciler's.
	routes := describe(v.compute())
	for _, gone := range []string{"198.19.1.0/26", "198.19.2.0/26", "198.19.0.5/32"} {
		if strings.Contains(routes, gone) {
			t.Errorf("direct route to %s with BGP on:\n%s", gone, routes)
		}
	}
	if want := "2001:db8:1::/122 via 2001:db8:ff::12\nblackhole 198.19.0.0/26\nblackhole 2001:db8:1::80/122"; routes != want {
		t.Errorf("routes with BGP:\n%s\nwant:\n%s", routes, want)
	}

	// A VXLAN pool is still routed by the reconciler; BGP programs nothing in it. A pool with
	// disableBGPExport is not advertised.
	v = threeHosts(api.EncapAlways)
	v.bgp = true
	if p := v.bgpPlan(); len(p.Pools) != 0 || len(p.Advertise) != 2 {
		t.Errorf("VXLAN pool: %+v", p)
	}
	v.pools[0].Spec.DisableBGPExport = true
	if p := v.bgpPlan(); len(p.Advertise) != 0 {
		t.Errorf("disableBGPExport: advertised %v", p.Advertise)
	}
}
