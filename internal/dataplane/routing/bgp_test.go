package routing

import (
	"fmt"
	"log/slog"
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
	// a has the lowest addresses: it connects to no one, the others connect to it.
	want := []bgp.Peer{
		{Addr: b, Port: 179, ASN: 64512, Source: a, Type: "node-to-node mesh", Name: "b", RestartTime: 120, Passive: true},
		{Addr: c, Port: 179, ASN: 65546, Source: a, Type: "node-to-node mesh", Name: "c", RestartTime: 120, Passive: true},
		// b has IPv6 as a has, c has not
		{Addr: netip.MustParseAddr("2001:db8:ff::12"), Port: 179, ASN: 64512, Source: netip.MustParseAddr("2001:db8:ff::11"),
			Type: "node-to-node mesh", Name: "b", RestartTime: 120, Passive: true},
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
		node: &api.BGPConfigurationSpec{ListenPort: 1179, BindMode: "NodeIP", LogSeverityScreen: "Warning"},
		peers: []*api.BGPPeer{
			bgpPeer("tor", api.BGPPeerSpec{PeerIP: "198.18.0.1", ASNumber: 64513, MaxRestartTime: &restart, TTLSecurity: &ttl, KeepOriginalNextHop: true}),
			bgpPeer("rack", api.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerSelector: "has(rr)", SourceAddress: api.SourceAddressNone}),
			bgpPeer("other-node", api.BGPPeerSpec{Node: "b", PeerIP: "198.18.9.9:1790", ASNumber: 1}),
			bgpPeer("ipv6", api.BGPPeerSpec{PeerIP: "[2001:db8::1]:179", ASNumber: 1, NextHopMode: "Self", KeepOriginalNextHop: true}),
		},
	}
	p := v.bgpPlan()
	a := netip.MustParseAddr("198.18.0.11")
	want := []bgp.Peer{
		{Addr: netip.MustParseAddr("198.18.0.1"), ASN: 64513, Source: a, Type: "global", Name: "tor", RestartTime: 300, TTLSecurity: 2, NextHop: bgp.NextHopKeep},
		{Addr: netip.MustParseAddr("198.18.1.13"), ASN: 65000, Type: "node specific", Name: "rack", RestartTime: 120, Passive: true},
		{Addr: netip.MustParseAddr("2001:db8::1"), Port: 179, ASN: 1, Source: netip.MustParseAddr("2001:db8:ff::11"),
			Type: "global", Name: "ipv6", RestartTime: 120, NextHop: bgp.NextHopSelf},
	}
	if p.ASN != 65000 || p.ListenPort != 1179 || !slices.Equal(p.ListenAddrs, []netip.Addr{a}) || !slices.Equal(p.Peers, want) ||
		p.LogLevel != slog.LevelWarn {
		t.Errorf("plan %+v\nwant peers %+v", p, want)
	}
}

// Of the two ends of a session between Calico nodes, exactly one connects: the higher address, compared as
// confd compares them (as strings, so 198.18.0.9 connects to 198.18.0.11).
func TestBGPPlanOneSideConnects(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	v.nodes["c"].Spec.BGP.IPv4Address = "198.18.0.9/24"
	v.bgpConfig.peers = []*api.BGPPeer{bgpPeer("to-c", api.BGPPeerSpec{PeerIP: "198.18.0.9", ASNumber: 64512}),
		bgpPeer("tor", api.BGPPeerSpec{PeerIP: "198.18.0.99", ASNumber: 64512})}
	connects := map[string]bool{} // "from to" for each session the plans start
	for _, self := range []string{"a", "b", "c"} {
		v.self = self
		for _, p := range v.bgpPlan().Peers {
			if !p.Passive {
				connects[self+" "+p.Addr.String()] = true
			}
		}
	}
	want := map[string]bool{"b 198.18.0.11": true, "b 2001:db8:ff::11": true, "c 198.18.0.11": true, "c 198.18.0.12": true,
		"a 198.18.0.99": true, "b 198.18.0.99": true, "c 198.18.0.99": true}
	if !maps.Equal(connects, want) {
		t.Errorf("sessions started %v, want %v", slices.Sorted(maps.Keys(connects)), slices.Sorted(maps.Keys(want)))
	}
}

// Communities as confd applies them: node.<self>'s prefixAdvertisements replace default's; names are
// resolved in the same resource; standard and large values. Default's ignoredInterfaces add to Calico's.
func TestBGPPlanCommunities(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	v.bgpConfig.def = &api.BGPConfigurationSpec{IgnoredInterfaces: []string{"docker*"},
		Communities: []api.Community{{Name: "internal", Value: "64512:100"}, {Name: "large", Value: "4200000000:1:2"}},
		PrefixAdvertisements: []api.PrefixAdvertisement{{CIDR: "198.19.0.0/16", Communities: []string{"internal", "large", "65000:7"}},
			{CIDR: "2001:db8:1::/48", Communities: []string{"65000:6"}}},
	}
	want := []bgp.CommunityRule{
		{CIDR: netip.MustParsePrefix("198.19.0.0/16"), Standard: []uint32{64512<<16 | 100, 65000<<16 | 7}, Large: [][3]uint32{{4200000000, 1, 2}}},
		{CIDR: netip.MustParsePrefix("2001:db8:1::/48"), Standard: []uint32{65000<<16 | 6}},
	}
	p := v.bgpPlan()
	if fmt.Sprint(p.Communities) != fmt.Sprint(want) {
		t.Errorf("communities %v, want %v", p.Communities, want)
	}
	if want := []string{"docker*", "cali*", "kube-ipvs*"}; !slices.Equal(p.IgnoredInterfaces, want) {
		t.Errorf("ignored interfaces %v, want %v", p.IgnoredInterfaces, want)
	}
	v.bgpConfig.node = &api.BGPConfigurationSpec{Communities: []api.Community{{Name: "edge", Value: "65001:1"}},
		PrefixAdvertisements: []api.PrefixAdvertisement{{CIDR: "198.19.0.0/26", Communities: []string{"edge"}}}}
	want = []bgp.CommunityRule{{CIDR: netip.MustParsePrefix("198.19.0.0/26"), Standard: []uint32{65001<<16 | 1}}}
	if got := v.bgpPlan().Communities; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("with node.a's: communities %v, want %v", got, want)
	}
}

// Calico's documented route-reflector set-up, the mesh off: the peering a BGPPeer gives the selected nodes
// with the reflector is configured on the reflector too (confd's reverse peering), and a peerIP that is a
// node's gives that node the reverse session, unless reversePeering is Manual.
func TestBGPPlanReversePeering(t *testing.T) {
	v := threeHosts(api.EncapNever)
	v.bgp = true
	off := false
	v.nodes["b"].Labels = map[string]string{"route-reflector": "true"}
	v.nodes["b"].Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
	v.bgpConfig = bgpView{def: &api.BGPConfigurationSpec{NodeToNodeMeshEnabled: &off}, peers: []*api.BGPPeer{
		bgpPeer("to-rr", api.BGPPeerSpec{NodeSelector: "!has(route-reflector)", PeerSelector: "has(route-reflector)"}),
		bgpPeer("a-to-c", api.BGPPeerSpec{Node: "a", PeerIP: "198.18.1.13", ASNumber: 64512}),
		bgpPeer("manual", api.BGPPeerSpec{Node: "c", PeerIP: "2001:db8:ff::12", ASNumber: 64512, ReversePeering: "Manual"}),
	}}
	sessions := func(self string) []string {
		v.self = self
		var out []string
		for _, p := range v.bgpPlan().Peers {
			out = append(out, fmt.Sprintf("%s %s %s rr=%s", p.Name, p.Type, p.Addr, p.RRClusterID))
		}
		return out
	}
	for self, want := range map[string][]string{
		"a": {"to-rr node specific 198.18.0.12 rr=", "a-to-c node specific 198.18.1.13 rr=", "to-rr node specific 2001:db8:ff::12 rr="},
		"b": {"to-rr node specific 198.18.0.11 rr=224.0.0.1", "to-rr node specific 198.18.1.13 rr=224.0.0.1",
			"to-rr node specific 2001:db8:ff::11 rr=224.0.0.1"},
		"c": {"a-to-c node specific 198.18.0.11 rr=", "to-rr node specific 198.18.0.12 rr="},
	} {
		if got := sessions(self); !slices.Equal(got, want) {
			t.Errorf("%s's sessions:\n%s\nwant:\n%s", self, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
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
