package routing

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/bgp"
)

func TestBGPPlan(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	asn := api.ASNumber(65546)
	v.nodes["c"].Spec.BGP.ASNumber = &asn
	p := v.bgpPlan()
	a, b, c := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.1.13")
	want := []bgp.Peer{
		{Addr: b, Port: 179, ASN: 64512, Source: a, Type: "node-to-node mesh", Name: "b", RestartTime: 120},
		{Addr: c, Port: 179, ASN: 65546, Source: a, Type: "node-to-node mesh", Name: "c", RestartTime: 120},
		// b has IPv6 as a has, c has not
		{Addr: netip.MustParseAddr("2001:db8:ff::12"), Port: 179, ASN: 64512, Source: netip.MustParseAddr("2001:db8:ff::11"),
			Type: "node-to-node mesh", Name: "b", RestartTime: 120},
	}
	if p.ASN != 64512 || p.RouterID != a || p.ListenPort != 179 || !slices.Equal(p.Peers, want) {
		t.Errorf("plan %+v", p)
	}
	// a's own blocks and the address it borrowed from b's block; not b's .5 in a's block.
	adverts := []netip.Prefix{netip.MustParsePrefix("198.19.0.0/26"), netip.MustParsePrefix("198.19.1.9/32"),
		netip.MustParsePrefix("2001:db8:1::80/122")}
	pools := []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16"), netip.MustParsePrefix("2001:db8:1::/48")}
	if p.NextHop6.String() != "2001:db8:ff::11" || !slices.Equal(p.Advertise, adverts) || !slices.Equal(p.Pools, pools) {
		t.Errorf("advertised %v, learnt routes in %v", p.Advertise, p.Pools)
	}
	// The unencapsulated pools' routes are BGP's now; the blackholes stay the reconciler's.
	routes := describe(v.compute())
	for _, gone := range []string{"198.19.1.0/26", "198.19.2.0/26", "198.19.0.5/32"} {
		if strings.Contains(routes, gone) {
			t.Errorf("direct route to %s with BGP on:\n%s", gone, routes)
		}
	}
	if want := "blackhole 198.19.0.0/26\nblackhole 2001:db8:1::80/122"; routes != want {
		t.Errorf("routes with BGP:\n%s\nwant:\n%s", routes, want)
	}

	// A VXLAN pool is still routed by the reconciler; BGP programs nothing in it. A pool with
	// disableBGPExport is not advertised.
	v = threeHosts(api.EncapAlways)
	v.bgp = true
	if p := v.bgpPlan(); len(p.Pools) != 1 || p.Pools[0].Addr().Is4() || len(p.Advertise) != 3 {
		t.Errorf("VXLAN pool: %+v", p)
	}
	v.pools[0].Spec.DisableBGPExport = true
	if p := v.bgpPlan(); len(p.Advertise) != 1 || p.Advertise[0].Addr().Is4() {
		t.Errorf("disableBGPExport: advertised %v", p.Advertise)
	}
}

// BGPConfiguration and BGPPeers as calico/node's confd reads them.
func TestBGPPlanPeers(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	v.nodes["a"].Labels = map[string]string{"rack": "r1"}
	v.nodes["c"].Labels = map[string]string{"rr": "yes"}
	off, asn, restart, ttl := false, api.ASNumber(65000), api.Duration(300*time.Second), uint8(2)
	v.bgpConfig = bgpView{
		def:  &api.BGPConfigurationSpec{NodeToNodeMeshEnabled: &off, ASNumber: &asn},
		node: &api.BGPConfigurationSpec{ListenPort: 1179, BindMode: "NodeIP"},
		peers: []*api.BGPPeer{
			bgpPeer("tor", api.BGPPeerSpec{PeerIP: "198.18.0.1", ASNumber: 64513, MaxRestartTime: &restart, TTLSecurity: &ttl}),
			bgpPeer("rack", api.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerSelector: "has(rr)", SourceAddress: api.SourceAddressNone}),
			bgpPeer("other-node", api.BGPPeerSpec{Node: "b", PeerIP: "198.18.9.9:1790", ASNumber: 1}),
			bgpPeer("ipv6", api.BGPPeerSpec{PeerIP: "[2001:db8::1]:179", ASNumber: 1}),
		},
	}
	p := v.bgpPlan()
	a := netip.MustParseAddr("198.18.0.11")
	want := []bgp.Peer{
		{Addr: netip.MustParseAddr("198.18.0.1"), ASN: 64513, Source: a, Type: "global", Name: "tor", RestartTime: 300, TTLSecurity: 2},
		{Addr: netip.MustParseAddr("198.18.1.13"), ASN: 65000, Type: "node specific", Name: "rack", RestartTime: 120},
		{Addr: netip.MustParseAddr("2001:db8::1"), Port: 179, ASN: 1, Source: netip.MustParseAddr("2001:db8:ff::11"),
			Type: "global", Name: "ipv6", RestartTime: 120},
	}
	if p.ASN != 65000 || p.ListenPort != 1179 || !slices.Equal(p.ListenAddrs, []netip.Addr{a}) || !slices.Equal(p.Peers, want) {
		t.Errorf("plan %+v\nwant peers %+v", p, want)
	}
}

func bgpPeer(name string, spec api.BGPPeerSpec) *api.BGPPeer {
	p := &api.BGPPeer{Spec: spec}
	p.Name = name
	return p
}

// A node with routeReflectorClusterID reflects for the nodes it peers with that have none.
func TestBGPPlanRouteReflector(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	off := false
	v.nodes["a"].Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
	v.nodes["b"].Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
	v.bgpConfig = bgpView{def: &api.BGPConfigurationSpec{NodeToNodeMeshEnabled: &off},
		peers: []*api.BGPPeer{bgpPeer("to-all", api.BGPPeerSpec{PeerSelector: "all()"})}}
	got := map[string]string{}
	for _, p := range v.bgpPlan().Peers {
		got[p.Name+" "+p.Addr.String()] = p.RRClusterID
	}
	if want := map[string]string{"to-all 198.18.0.12": "", "to-all 2001:db8:ff::12": "", "to-all 198.18.1.13": "224.0.0.1"}; !maps.Equal(got, want) {
		t.Errorf("route reflector's peers %v, want %v", got, want)
	}
}
