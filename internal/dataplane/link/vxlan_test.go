package link_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// addUplink gives the namespace an interface "up0" holding addr, the parent of tunnels and direct routes
// (a veth: this kernel has no dummy interfaces).
func addUplink(t *testing.T, addr string) {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = "up0", 1500
	linktest.Must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "up1"}))
	a, err := netlink.ParseAddr(addr)
	linktest.Must(t, err)
	up := mustLink(t, "up0")
	linktest.Must(t, netlink.AddrAdd(up, a))
	linktest.Must(t, netlink.LinkSetUp(up))
	linktest.Must(t, netlink.LinkSetUp(mustLink(t, "up1")))
}

func vxlanDevice() link.VXLANDevice {
	return link.VXLANDevice{Name: "vxlan.calico", VNI: 4096, Port: 4789, Parent: "up0",
		Local: netip.MustParseAddr("198.18.0.1"), MAC: net.HardwareAddr{0x66, 1, 2, 3, 4, 5}, MTU: 1450,
		Addr: netip.MustParseAddr("198.19.0.1")}
}

func TestVXLANDevice(t *testing.T) {
	inNewNS(t, func() {
		addUplink(t, "198.18.0.1/24")
		d := vxlanDevice()
		linktest.Must(t, link.EnsureVXLAN(d))
		first := mustLink(t, d.Name)
		vx, ok := first.(*netlink.Vxlan)
		if !ok || vx.VxlanId != 4096 || vx.Port != 4789 || !vx.SrcAddr.Equal(net.ParseIP("198.18.0.1")) ||
			vx.VtepDevIndex != mustLink(t, "up0").Attrs().Index || vx.Learning || vx.MTU != 1450 ||
			vx.HardwareAddr.String() != "66:01:02:03:04:05" || vx.Flags&net.FlagUp == 0 {
			t.Fatalf("device %+v", first)
		}
		expectAddrs(t, d.Name, "198.19.0.1/32")

		// MTU, MAC and address change in place; the VNI needs a new device.
		d.MTU, d.MAC, d.Addr = 1400, net.HardwareAddr{0x66, 9, 9, 9, 9, 9}, netip.MustParseAddr("198.19.0.7")
		linktest.Must(t, link.EnsureVXLAN(d))
		l := mustLink(t, d.Name)
		if l.Attrs().Index != first.Attrs().Index || l.Attrs().MTU != 1400 || l.Attrs().HardwareAddr.String() != "66:09:09:09:09:09" {
			t.Errorf("after in-place change: %+v", l.Attrs())
		}
		expectAddrs(t, d.Name, "198.19.0.7/32")
		d.VNI = 4097
		linktest.Must(t, link.EnsureVXLAN(d))
		if l := mustLink(t, d.Name).(*netlink.Vxlan); l.VxlanId != 4097 || l.Attrs().Index == first.Attrs().Index {
			t.Errorf("VNI change: %+v", l)
		}
		expectAddrs(t, d.Name, "198.19.0.7/32")

		name, mtu, err := link.AddressInterface(netip.MustParseAddr("198.18.0.1"))
		if err != nil || name != "up0" || mtu != 1500 {
			t.Errorf("AddressInterface: %s %d %v", name, mtu, err)
		}
		if _, _, err := link.AddressInterface(netip.MustParseAddr("198.18.0.99")); err == nil {
			t.Error("AddressInterface found an address nobody holds")
		}
	})
}

func expectAddrs(t *testing.T, dev string, want ...string) {
	t.Helper()
	addrs, err := netlink.AddrList(mustLink(t, dev), netlink.FAMILY_V4)
	linktest.Must(t, err)
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("addresses of %s: %v, want %v", dev, got, want)
	}
}

func TestSyncVTEPs(t *testing.T) {
	inNewNS(t, func() {
		addUplink(t, "198.18.0.1/24")
		d := vxlanDevice()
		linktest.Must(t, link.EnsureVXLAN(d))
		a := link.VTEP{TunnelAddr: netip.MustParseAddr("198.19.1.0"), MAC: net.HardwareAddr{0x66, 0, 0, 0, 0, 0xa}, NodeAddr: netip.MustParseAddr("198.18.0.2")}
		b := link.VTEP{TunnelAddr: netip.MustParseAddr("198.19.2.0"), MAC: net.HardwareAddr{0x66, 0, 0, 0, 0, 0xb}, NodeAddr: netip.MustParseAddr("198.18.1.3")}
		linktest.Must(t, link.SyncVTEPs(d.Name, []link.VTEP{a, b}))
		linktest.Must(t, link.SyncVTEPs(d.Name, []link.VTEP{a, b})) // idempotent
		expectVTEPs(t, d.Name, a, b)

		b.NodeAddr = netip.MustParseAddr("198.18.1.4") // the host moved
		linktest.Must(t, link.SyncVTEPs(d.Name, []link.VTEP{b}))
		expectVTEPs(t, d.Name, b)
		linktest.Must(t, link.SyncVTEPs(d.Name, nil))
		expectVTEPs(t, d.Name)
	})
}

// expectVTEPs checks that the device's ARP and FDB entries are exactly those of vteps, all permanent.
func expectVTEPs(t *testing.T, dev string, vteps ...link.VTEP) {
	t.Helper()
	idx := mustLink(t, dev).Attrs().Index
	arp, err := netlink.NeighList(idx, netlink.FAMILY_V4)
	linktest.Must(t, err)
	fdb, err := netlink.NeighList(idx, unix.AF_BRIDGE)
	linktest.Must(t, err)
	if len(arp) != len(vteps) || len(fdb) != len(vteps) {
		t.Fatalf("ARP %v, FDB %v; want %d of each", arp, fdb, len(vteps))
	}
	for _, v := range vteps {
		if !slices.ContainsFunc(arp, func(n netlink.Neigh) bool {
			return n.IP.Equal(v.TunnelAddr.AsSlice()) && n.HardwareAddr.String() == v.MAC.String() && n.State == netlink.NUD_PERMANENT
		}) {
			t.Errorf("no permanent ARP entry %s -> %s in %v", v.TunnelAddr, v.MAC, arp)
		}
		if !slices.ContainsFunc(fdb, func(n netlink.Neigh) bool {
			return n.IP.Equal(v.NodeAddr.AsSlice()) && n.HardwareAddr.String() == v.MAC.String() && n.State == netlink.NUD_PERMANENT
		}) {
			t.Errorf("no permanent FDB entry %s dst %s in %v", v.MAC, v.NodeAddr, fdb)
		}
	}
}

func TestBlockRoutes(t *testing.T) {
	inNewNS(t, func() {
		addUplink(t, "198.18.0.1/24")
		linktest.Must(t, netlink.AddrAdd(mustLink(t, "up0"), &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("2001:db8:ff::1"), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}))
		linktest.Must(t, link.EnsureVXLAN(vxlanDevice()))
		// A workload route: proto 80 too, but the agent's, never listed here.
		mac, err := link.CreateVeth(link.Veth{HostName: "calibr1", PeerName: "tmpbr1"}, nil)
		linktest.Must(t, err)
		linktest.Must(t, link.AddWorkloadRoute("calibr1", net.ParseIP("198.19.0.5"), mac))

		routes := []link.BlockRoute{
			{Dst: netip.MustParsePrefix("198.19.0.0/26"), Blackhole: true},
			{Dst: netip.MustParsePrefix("198.19.1.0/26"), Via: netip.MustParseAddr("198.18.0.2"), Dev: "up0"},
			{Dst: netip.MustParsePrefix("198.19.2.0/26"), Via: netip.MustParseAddr("198.19.2.0"), Dev: "vxlan.calico"},
			{Dst: netip.MustParsePrefix("198.19.3.9/32"), Via: netip.MustParseAddr("198.18.0.3"), Dev: "up0"},
			{Dst: netip.MustParsePrefix("2001:db8:1::/122"), Via: netip.MustParseAddr("2001:db8:ff::2"), Dev: "up0"},
			{Dst: netip.MustParsePrefix("2001:db8:2::/122"), Blackhole: true},
		}
		for _, r := range routes {
			linktest.Must(t, link.ReplaceBlockRoute(r))
		}
		expectBlockRoutes(t, routes)

		// Replacing changes the next hop; deleting removes exactly one route, twice is fine.
		routes[1].Via = netip.MustParseAddr("198.18.0.9")
		linktest.Must(t, link.ReplaceBlockRoute(routes[1]))
		linktest.Must(t, link.DeleteBlockRoute(routes[3]))
		linktest.Must(t, link.DeleteBlockRoute(routes[3]))
		expectBlockRoutes(t, slices.Delete(slices.Clone(routes), 3, 4))

		// Deleting the device takes its routes; deleting one of them then still succeeds.
		linktest.Must(t, link.DeleteLink("vxlan.calico"))
		linktest.Must(t, link.DeleteBlockRoute(routes[2]))
		if err := link.ReplaceBlockRoute(routes[2]); err == nil {
			t.Error("a route over a missing device was accepted")
		}
	})
}

func expectBlockRoutes(t *testing.T, want []link.BlockRoute) {
	t.Helper()
	got, err := link.ListBlockRoutes("cali")
	linktest.Must(t, err)
	if len(got) != len(want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, w.Equal) {
			t.Errorf("route %s missing from %v", w, got)
		}
	}
}
