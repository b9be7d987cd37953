package routing

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/tunneladdr"
)

func testNode(name, addr4, addr6, tunnel string) *api.Node {
	n := &api.Node{Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: addr4, IPv6Address: addr6}, IPv4VXLANTunnelAddr: tunnel}}
	n.Name = name
	return n
}

func testPool(cidr, vxlan string) *api.IPPool {
	p := &api.IPPool{Spec: api.IPPoolSpec{CIDR: cidr, VXLANMode: vxlan}}
	p.Name = "pool-" + strings.NewReplacer("/", "-", ":", "-").Replace(cidr)
	api.Default(p)
	return p
}

// testBlock is a block of owner with the given ordinals allocated to nodes (ordinal → node attribute).
func testBlock(cidr, owner string, allocs map[int]string) *ipam.Block {
	b := ipam.NewBlock(netip.MustParsePrefix(cidr), owner, time.Unix(0, 0))
	for ord, node := range allocs {
		b.AssignAt(ord, ipam.Attribute{Secondary: map[string]string{ipam.AttrNode: node}})
	}
	return b
}

// describe renders a plan's routes one per line, sorted, for comparison.
func describe(p plan) string {
	var lines []string
	for _, r := range p.routes {
		lines = append(lines, r.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// threeHosts: a and b share 198.18.0.0/24, c is on 198.18.1.0/24. Each has a tunnel address in its block.
func threeHosts(mode string) *view {
	return &view{
		self: "a",
		nodes: map[string]*api.Node{
			"a": testNode("a", "198.18.0.11/24", "2001:db8:ff::11/64", "198.19.0.0"),
			"b": testNode("b", "198.18.0.12/24", "2001:db8:ff::12/64", "198.19.1.0"),
			"c": testNode("c", "198.18.1.13/24", "", "198.19.2.0"),
		},
		pools: []*api.IPPool{testPool("198.19.0.0/16", mode), testPool("2001:db8:1::/48", "")},
		blocks: routesOf(
			testBlock("198.19.0.0/26", "a", map[int]string{0: "a", 1: "a", 5: "b"}), // b borrowed .5
			testBlock("198.19.1.0/26", "b", map[int]string{0: "b", 9: "a"}),         // a borrowed .9: local
			testBlock("198.19.2.0/26", "c", map[int]string{0: "c", 3: "b"}),         // b borrowed .3
			testBlock("2001:db8:1::/122", "b", nil),
			testBlock("2001:db8:1::40/122", "c", nil), // c has no IPv6 address: unreachable
			testBlock("2001:db8:1::80/122", "a", nil),
		),
	}
}

func TestComputeModes(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{api.EncapNever, []string{"blackhole 198.19.0.0/26", "198.19.0.5/32 via 198.18.0.12", "198.19.1.0/26 via 198.18.0.12",
			"198.19.2.0/26 via 198.18.1.13", "198.19.2.3/32 via 198.18.0.12", "2001:db8:1::/122 via 2001:db8:ff::12",
			"blackhole 2001:db8:1::80/122"}},
		{api.EncapAlways, []string{"blackhole 198.19.0.0/26", "198.19.0.5/32 vxlan 198.19.1.0", "198.19.1.0/26 vxlan 198.19.1.0",
			"198.19.2.0/26 vxlan 198.19.2.0", "198.19.2.3/32 vxlan 198.19.1.0", "2001:db8:1::/122 via 2001:db8:ff::12",
			"blackhole 2001:db8:1::80/122"}},
		{api.EncapCrossSubnet, []string{"blackhole 198.19.0.0/26", "198.19.0.5/32 via 198.18.0.12", "198.19.1.0/26 via 198.18.0.12",
			"198.19.2.0/26 vxlan 198.19.2.0", "198.19.2.3/32 via 198.18.0.12", "2001:db8:1::/122 via 2001:db8:ff::12",
			"blackhole 2001:db8:1::80/122"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := threeHosts(tc.mode).compute()
			slices.Sort(tc.want)
			if got, want := describe(p), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("routes:\n%s\nwant:\n%s", got, want)
			}
			if (p.device != nil) != (tc.mode != api.EncapNever) {
				t.Errorf("device %+v in mode %s", p.device, tc.mode)
			}
		})
	}
}

// ipipHosts is threeHosts with an IP-in-IP pool instead: a has its IPIP tunnel address.
func ipipHosts(mode string) *view {
	v := threeHosts(api.EncapNever)
	v.pools[0].Spec.IPIPMode = mode
	for _, n := range v.nodes {
		n.Spec.IPv4VXLANTunnelAddr = ""
	}
	v.nodes["a"].Spec.BGP.IPv4IPIPTunnelAddr = "198.19.0.2"
	return v
}

func TestComputeIPIP(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{api.EncapAlways, []string{"blackhole 198.19.0.0/26", "198.19.0.5/32 ipip 198.18.0.12", "198.19.1.0/26 ipip 198.18.0.12",
			"198.19.2.0/26 ipip 198.18.1.13", "198.19.2.3/32 ipip 198.18.0.12", "2001:db8:1::/122 via 2001:db8:ff::12",
			"blackhole 2001:db8:1::80/122"}},
		{api.EncapCrossSubnet, []string{"blackhole 198.19.0.0/26", "198.19.0.5/32 via 198.18.0.12", "198.19.1.0/26 via 198.18.0.12",
			"198.19.2.0/26 ipip 198.18.1.13", "198.19.2.3/32 via 198.18.0.12", "2001:db8:1::/122 via 2001:db8:ff::12",
			"blackhole 2001:db8:1::80/122"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			v := ipipHosts(tc.mode)
			mtu := 1400
			v.felix.IPIPMTU = &mtu
			p := v.compute()
			slices.Sort(tc.want)
			if got, want := describe(p), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("routes:\n%s\nwant:\n%s", got, want)
			}
			if p.device != nil || p.ipip == nil || p.ipip.addr.String() != "198.19.0.2" || p.ipip.mtu != 1400 || p.pools4 != nil {
				t.Errorf("devices: VXLAN %+v, IPIP %+v, pools to clear %v", p.device, p.ipip, p.pools4)
			}
		})
	}
	// An IPv6 pool asking for VXLAN is routed directly, and said to be.
	v := threeHosts(api.EncapNever)
	v.pools[1].Spec.VXLANMode = api.EncapAlways
	if u := v.compute().unroutable; len(u) != 1 || !strings.Contains(u[0], "VXLAN over IPv6") {
		t.Errorf("IPv6 VXLAN pool: unroutable %v", u)
	}
	// Without an IPIP pool there is no tunl0 to program, and the pools' addresses are to leave it.
	if p := threeHosts(api.EncapNever).compute(); p.ipip != nil || len(p.pools4) != 1 || p.pools4[0].String() != "198.19.0.0/16" {
		t.Errorf("without IP-in-IP: %+v %v", p.ipip, p.pools4)
	}
}

func TestComputeVTEPs(t *testing.T) {
	v := threeHosts(api.EncapAlways)
	v.nodes["b"].Spec.VXLANTunnelMACAddr = "66:00:00:00:00:0b"
	p := v.compute()
	if p.device == nil || p.device.tunnel.String() != "198.19.0.0" || p.device.local.String() != "198.18.0.11" ||
		p.device.mac.String() != tunneladdr.DerivedMAC("a").String() {
		t.Fatalf("device %+v", p.device)
	}
	if len(p.remote) != 2 || p.remote[0].tunnel.String() != "198.19.1.0" || p.remote[0].mac.String() != "66:00:00:00:00:0b" ||
		p.remote[0].node.String() != "198.18.0.12" || p.remote[1].mac.String() != tunneladdr.DerivedMAC("c").String() {
		t.Errorf("remote VTEPs %+v", p.remote)
	}

	// A remote node without a tunnel address yet gets no VXLAN route; without our own, nothing does.
	v.nodes["c"].Spec.IPv4VXLANTunnelAddr = ""
	if got := describe(v.compute()); strings.Contains(got, "198.19.2.0/26") {
		t.Errorf("route to a node without VTEP:\n%s", got)
	}
	v.nodes["a"].Spec.IPv4VXLANTunnelAddr = ""
	if p := v.compute(); p.device != nil || strings.Contains(describe(p), "vxlan") {
		t.Errorf("VXLAN without a local VTEP: %+v\n%s", p.device, describe(p))
	}
}

func TestComputeEdgeCases(t *testing.T) {
	v := threeHosts(api.EncapNever)
	// A disabled VXLAN pool creates no device; an unknown node and a block without pool are handled.
	v.pools = []*api.IPPool{testPool("198.20.0.0/16", api.EncapAlways)}
	v.pools[0].Spec.Disabled = true
	v.blocks = append(v.blocks, routesOf(testBlock("198.19.9.0/26", "gone", nil), testBlock("198.19.8.7/32", "a", nil),
		testBlock("198.19.7.0/26", "", map[int]string{1: "c"}))...)
	p := v.compute()
	if p.device != nil {
		t.Errorf("device for a disabled pool: %+v", p.device)
	}
	got := describe(p)
	for _, unwanted := range []string{"198.19.9.0", "198.19.8.7"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("route for %s:\n%s", unwanted, got)
		}
	}
	if !strings.Contains(got, "198.19.7.1/32 via 198.18.1.13") {
		t.Errorf("no route for an address of an unaffine block:\n%s", got)
	}

	// Without our own address there is nothing direct to route through.
	v.nodes["a"].Spec.BGP = nil
	if got := describe(v.compute()); strings.Contains(got, " via ") {
		t.Errorf("direct routes without a local address:\n%s", got)
	}
}

// FelixConfiguration default's VXLAN settings replace Calico's defaults, each only when set.
func TestComputeVXLANSettings(t *testing.T) {
	v := threeHosts(api.EncapAlways)
	if d := v.compute().device; d.vni != VXLANVNI || d.port != VXLANPort || d.mtu != 0 {
		t.Errorf("without FelixConfiguration: %+v", d)
	}
	vni, mtu := 4097, 1400
	v.felix = api.FelixConfigurationSpec{VXLANVNI: &vni, VXLANMTU: &mtu}
	if d := v.compute().device; d.vni != 4097 || d.port != VXLANPort || d.mtu != 1400 {
		t.Errorf("with vxlanVNI and vxlanMTU: %+v", d)
	}
}

func TestVTEPMAC(t *testing.T) {
	n := testNode("node1", "", "", "")
	if got := vtepMAC(n).String(); got != tunneladdr.DerivedMAC("node1").String() {
		t.Errorf("derived MAC not used: %s", got)
	}
	n.Spec.VXLANTunnelMACAddr = "66:aa:bb:cc:dd:ee"
	if got := vtepMAC(n).String(); got != "66:aa:bb:cc:dd:ee" {
		t.Errorf("configured MAC not used: %s", got)
	}
}
