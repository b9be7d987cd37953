package routing

import (
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/tunneladdr"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// kernelRoutes lists our routes as "dst via dev" lines, sorted.
func kernelRoutes(t *testing.T) string {
	t.Helper()
	routes, err := link.ListBlockRoutes("cali")
	linktest.Must(t, err)
	lines := make([]string, len(routes))
	for i, r := range routes {
		lines[i] = r.String()
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// host "a" of threeHosts: an uplink holding its addresses and one workload with its /32 route.
func setUpHostA(t *testing.T) {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = "eth0", 1500
	linktest.Must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "eth0peer"}))
	for _, a := range []string{"198.18.0.11/24", "2001:db8:ff::11/64"} {
		addr, err := netlink.ParseAddr(a)
		linktest.Must(t, err)
		addr.Flags = unix.IFA_F_NODAD
		linktest.Must(t, netlink.AddrAdd(mustLink(t, "eth0"), addr))
	}
	for _, name := range []string{"eth0", "eth0peer"} {
		linktest.Must(t, netlink.LinkSetUp(mustLink(t, name)))
	}
	mac, err := link.CreateVeth(link.Veth{HostName: "caliwl1", PeerName: "tmpwl1"}, nil)
	linktest.Must(t, err)
	linktest.Must(t, link.AddWorkloadRoute("caliwl1", net.ParseIP("198.19.0.1"), mac))
}

func mustLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	linktest.Must(t, err)
	return l
}

// kernelHasIPIP reports whether this kernel has IP-in-IP (built in or as a loadable module).
func kernelHasIPIP() bool {
	if _, err := os.Stat("/sys/module/ipip"); err == nil {
		return true
	}
	return exec.Command("modprobe", "-q", "ipip").Run() == nil
}

func TestApplyIPIP(t *testing.T) {
	r := New(Config{Node: "a"}, nil, quietLog())
	ns := linktest.NewNS(t, "routing-ipip")
	linktest.MustDo(t, ns, func() {
		setUpHostA(t)
		linktest.Must(t, r.apply(ipipHosts(api.EncapCrossSubnet).compute()))
		if !kernelHasIPIP() {
			// Reported, not failed and not routed directly: the routes across the subnet are missing.
			if u := r.Unroutable(); len(u) != 1 || !strings.Contains(u[0], "CONFIG_NET_IPIP") {
				t.Errorf("unroutable %v", u)
			}
			if got := kernelRoutes(t); strings.Contains(got, "198.19.2.0/26") || !strings.Contains(got, "198.19.1.0/26 via 198.18.0.12 dev eth0 onlink") {
				t.Errorf("CrossSubnet IPIP routes without IP-in-IP:\n%s", got)
			}
			t.Log("this kernel has no IP-in-IP (CONFIG_NET_IPIP): checked the report, not tunl0")
			return
		}
		if u := r.Unroutable(); len(u) != 0 {
			t.Errorf("unroutable %v", u)
		}
		if got := kernelRoutes(t); !strings.Contains(got, "198.19.2.0/26 via 198.18.1.13 dev tunl0 onlink") ||
			!strings.Contains(got, "198.19.1.0/26 via 198.18.0.12 dev eth0 onlink") {
			t.Errorf("CrossSubnet IPIP routes:\n%s", got)
		}
		tunl := mustLink(t, link.IPIPDevice)
		addrs, err := netlink.AddrList(tunl, netlink.FAMILY_V4)
		linktest.Must(t, err)
		if tunl.Attrs().MTU != 1480 || tunl.Attrs().Flags&net.FlagUp == 0 || len(addrs) != 1 || addrs[0].IPNet.String() != "198.19.0.2/32" {
			t.Errorf("tunl0: MTU %d, flags %v, addresses %v", tunl.Attrs().MTU, tunl.Attrs().Flags, addrs)
		}

		// Back to no encapsulation: the routes become direct and tunl0 gives up the released address.
		linktest.Must(t, r.apply(threeHosts(api.EncapNever).compute()))
		if got := kernelRoutes(t); strings.Contains(got, "tunl0") {
			t.Errorf("IPIP routes left:\n%s", got)
		}
		addrs, err = netlink.AddrList(mustLink(t, link.IPIPDevice), netlink.FAMILY_V4)
		linktest.Must(t, err)
		if len(addrs) != 0 {
			t.Errorf("tunl0 keeps %v without IP-in-IP", addrs)
		}
	})
}

func TestApply(t *testing.T) {
	r := New(Config{Node: "a"}, nil, quietLog())
	ns := linktest.NewNS(t, "routing")
	linktest.MustDo(t, ns, func() {
		setUpHostA(t)

		linktest.Must(t, r.apply(threeHosts(api.EncapCrossSubnet).compute()))
		want := `198.19.0.5/32 via 198.18.0.12 dev eth0 onlink
198.19.1.0/26 via 198.18.0.12 dev eth0 onlink
198.19.2.0/26 via 198.19.2.0 dev vxlan.calico onlink
198.19.2.3/32 via 198.18.0.12 dev eth0 onlink
2001:db8:1::/122 via 2001:db8:ff::12 dev eth0 onlink
blackhole 198.19.0.0/26
blackhole 2001:db8:1::80/122`
		if got := kernelRoutes(t); got != want {
			t.Errorf("CrossSubnet routes:\n%s\nwant:\n%s", got, want)
		}
		vx, ok := mustLink(t, VXLANDevice).(*netlink.Vxlan)
		if !ok || vx.MTU != 1450 || vx.VxlanId != VXLANVNI || vx.HardwareAddr.String() != tunneladdr.DerivedMAC("a").String() {
			t.Errorf("VXLAN device %+v", vx)
		}
		neigh, err := netlink.NeighList(vx.Index, unix.AF_BRIDGE)
		linktest.Must(t, err)
		if len(neigh) != 2 {
			t.Errorf("FDB %v, want entries for b and c", neigh)
		}
		// The workload's traffic still goes to its interface, not to the blackhole.
		got, err := netlink.RouteGet(net.ParseIP("198.19.0.1"))
		linktest.Must(t, err)
		if len(got) != 1 || got[0].LinkIndex != mustLink(t, "caliwl1").Attrs().Index {
			t.Errorf("route to the local workload: %v", got)
		}

		// FelixConfiguration's VNI, port and MTU: the device is recreated with them, the routes stay.
		vni, port, mtu := 4097, 8472, 1400
		custom := threeHosts(api.EncapCrossSubnet)
		custom.felix = api.FelixConfigurationSpec{VXLANVNI: &vni, VXLANPort: &port, VXLANMTU: &mtu}
		linktest.Must(t, r.apply(custom.compute()))
		if vx, ok := mustLink(t, VXLANDevice).(*netlink.Vxlan); !ok || vx.VxlanId != vni || vx.Port != port || vx.MTU != mtu {
			t.Errorf("VXLAN device with FelixConfiguration settings %+v", vx)
		}
		if got := kernelRoutes(t); got != want {
			t.Errorf("routes after recreating the device:\n%s\nwant:\n%s", got, want)
		}

		// Never: the device and its routes go, every IPv4 route becomes direct; idempotent.
		for range 2 {
			linktest.Must(t, r.apply(threeHosts(api.EncapNever).compute()))
		}
		if _, err := netlink.LinkByName(VXLANDevice); err == nil {
			t.Error("VXLAN device left in mode Never")
		}
		if got := kernelRoutes(t); !strings.Contains(got, "198.19.2.0/26 via 198.18.1.13 dev eth0 onlink") || strings.Contains(got, "vxlan") {
			t.Errorf("Never routes:\n%s", got)
		}

		// No blocks: everything of ours goes, the workload route stays.
		empty := threeHosts(api.EncapNever)
		empty.blocks = []blockRoute{}
		linktest.Must(t, r.apply(empty.compute()))
		if got := kernelRoutes(t); got != "" {
			t.Errorf("routes left:\n%s", got)
		}
		wl, err := link.ListWorkloadRoutes("cali")
		linktest.Must(t, err)
		if len(wl) != 1 {
			t.Errorf("workload routes %v, want the one of caliwl1", wl)
		}
	})
}
