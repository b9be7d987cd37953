package link_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// inNewNS runs fn in a fresh namespace on the test goroutine and returns the namespace's name.
func inNewNS(t *testing.T, fn func()) string {
	t.Helper()
	ns := linktest.NewNS(t, "link")
	linktest.MustDo(t, ns, fn)
	return ns
}

func mustLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	linktest.Must(t, err)
	return l
}

func sysctl(t *testing.T, path ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"/proc/sys"}, path...)...))
	linktest.Must(t, err)
	return strings.TrimSpace(string(b))
}

func TestCreateVeth(t *testing.T) {
	peerMAC := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}
	inNewNS(t, func() {
		got, err := link.CreateVeth(link.Veth{HostName: "calitest1", PeerName: "tmptest1", MTU: 1400, IPv6: true}, peerMAC)
		linktest.Must(t, err)
		if got.String() != peerMAC.String() {
			t.Errorf("returned MAC %s, want %s", got, peerMAC)
		}
		host, peer := mustLink(t, "calitest1"), mustLink(t, "tmptest1")
		for _, l := range []netlink.Link{host, peer} {
			if l.Type() != "veth" || l.Attrs().MTU != 1400 {
				t.Errorf("%s: type %s MTU %d, want veth MTU 1400", l.Attrs().Name, l.Type(), l.Attrs().MTU)
			}
		}
		if l, _, err := link.Lookup("calitest1"); err != nil || !l.Made() {
			t.Errorf("host end %+v (%v) does not carry the plugin's mark", l, err)
		}
		if mac := host.Attrs().HardwareAddr.String(); mac != "ee:ee:ee:ee:ee:ee" {
			t.Errorf("host MAC %s, want ee:ee:ee:ee:ee:ee", mac)
		}
		if peer.Attrs().HardwareAddr.String() != peerMAC.String() {
			t.Errorf("peer MAC %s, want %s", peer.Attrs().HardwareAddr, peerMAC)
		}
		if host.Attrs().Flags&net.FlagUp == 0 {
			t.Error("host end is not up")
		}
		if peer.Attrs().ParentIndex != host.Attrs().Index {
			t.Errorf("peer is paired with index %d, want %d", peer.Attrs().ParentIndex, host.Attrs().Index)
		}
		for path, want := range map[string]string{
			"net/ipv4/conf/calitest1/proxy_arp":      "1",
			"net/ipv4/neigh/calitest1/proxy_delay":   "0",
			"net/ipv4/conf/calitest1/forwarding":     "1",
			"net/ipv4/conf/calitest1/route_localnet": "1",
			"net/ipv4/conf/calitest1/rp_filter":      "1",
			"net/ipv6/conf/calitest1/accept_ra":      "0",
			"net/ipv6/conf/calitest1/disable_ipv6":   "0",
			"net/ipv6/conf/calitest1/accept_dad":     "0",
			"net/ipv6/conf/calitest1/proxy_ndp":      "1",
			"net/ipv6/conf/calitest1/forwarding":     "1",
		} {
			if got := sysctl(t, path); got != want {
				t.Errorf("%s = %s, want %s", path, got, want)
			}
		}

		// Without a requested MAC the kernel picks one, and CreateVeth reports it.
		got, err = link.CreateVeth(link.Veth{HostName: "calitest2", PeerName: "tmptest2"}, nil)
		linktest.Must(t, err)
		if want := mustLink(t, "tmptest2").Attrs().HardwareAddr; got.String() != want.String() || len(got) != 6 {
			t.Errorf("returned MAC %s, peer has %s", got, want)
		}
	})
}

func TestCreateVethExists(t *testing.T) {
	inNewNS(t, func() {
		_, err := link.CreateVeth(link.Veth{HostName: "calidup", PeerName: "tmpdup"}, nil)
		linktest.Must(t, err)
		for _, tc := range []struct {
			v    link.Veth
			name string
		}{
			{link.Veth{HostName: "calidup", PeerName: "tmpother"}, "calidup"},
			{link.Veth{HostName: "caliother", PeerName: "tmpdup"}, "tmpdup"},
		} {
			_, err := link.CreateVeth(tc.v, nil)
			if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "interface "+tc.name+" already exists") {
				t.Errorf("CreateVeth(%+v) = %v, want an already-exists error naming %s", tc.v, err, tc.name)
			}
		}
		if links, err := link.ListLinks("cali"); err != nil || !slices.Equal(links, []link.Iface{{Name: "calidup", Kind: "veth", Alias: link.VethAlias}}) {
			t.Errorf("after failed creations ListLinks = %v, %v; want only calidup", links, err)
		}
	})
}

func TestCreateVethRejectsBadNames(t *testing.T) {
	for _, v := range []link.Veth{
		{HostName: "", PeerName: "tmp1"},
		{HostName: "cali0123456789ab", PeerName: "tmp1"}, // 16 characters
		{HostName: "..", PeerName: "tmp1"},
		{HostName: "cali1", PeerName: "a/b"},
	} {
		if _, err := link.CreateVeth(v, nil); err == nil || !strings.Contains(err.Error(), "invalid interface name") {
			t.Errorf("CreateVeth(%+v) = %v, want invalid interface name", v, err)
		}
	}
}

func TestDeleteVeth(t *testing.T) {
	inNewNS(t, func() {
		_, err := link.CreateVeth(link.Veth{HostName: "calidel", PeerName: "tmpdel"}, nil)
		linktest.Must(t, err)
		linktest.Must(t, link.DeleteVeth("calidel"))
		linktest.Must(t, link.DeleteVeth("calidel"))
		for _, name := range []string{"calidel", "tmpdel"} {
			if _, err := netlink.LinkByName(name); err == nil {
				t.Errorf("%s still exists", name)
			}
		}
	})
}

// An interface that has a workload interface's name but is not a veth was not made by the plugin: it stays.
func TestDeleteVethLeavesOtherKinds(t *testing.T) {
	inNewNS(t, func() {
		kinds := map[string]string{"cali-x": linktest.AddLink(t, "cali-x", "dummy"),
			"caliabcdef12345": linktest.AddLink(t, "caliabcdef12345", "bridge")}
		for name, kind := range kinds {
			err := link.DeleteVeth(name)
			if !errors.Is(err, link.ErrNotVeth) || !strings.Contains(err.Error(), name+" is a "+kind) {
				t.Errorf("DeleteVeth(%s) = %v, want ErrNotVeth naming it a %s", name, err, kind)
			}
			if l, ok, err := link.Lookup(name); err != nil || !ok || l.Kind != kind || l.IsVeth() {
				t.Errorf("after DeleteVeth, Lookup(%s) = %+v, %v, %v; want the %s still there", name, l, ok, err, kind)
			}
		}
		if _, ok, err := link.Lookup("calinone"); ok || err != nil {
			t.Errorf("Lookup of a missing link = %v, %v", ok, err)
		}
	})
}

func TestListLinks(t *testing.T) {
	inNewNS(t, func() {
		for _, v := range []link.Veth{
			{HostName: "calil1", PeerName: "tmpl1"},
			{HostName: "calil2", PeerName: "tmpl2"},
		} {
			_, err := link.CreateVeth(v, nil)
			linktest.Must(t, err)
		}
		kind := linktest.AddLink(t, "cali-x", "dummy")
		links, err := link.ListLinks("cali")
		linktest.Must(t, err)
		slices.SortFunc(links, func(a, b link.Iface) int { return strings.Compare(a.Name, b.Name) })
		want := []link.Iface{{Name: "cali-x", Kind: kind}, {Name: "calil1", Kind: "veth", Alias: link.VethAlias},
			{Name: "calil2", Kind: "veth", Alias: link.VethAlias}}
		if !slices.Equal(links, want) {
			t.Errorf("ListLinks(cali) = %v, want %v", links, want)
		}
	})
}

// An interface name with a dot is one path component under /proc/sys, not two.
func TestConfigureHostInterfaceDottedName(t *testing.T) {
	inNewNS(t, func() {
		_, err := link.CreateVeth(link.Veth{HostName: "cali.100", PeerName: "tmp.100"}, nil)
		linktest.Must(t, err)
		if got := sysctl(t, "net", "ipv4", "conf", "cali.100", "proxy_arp"); got != "1" {
			t.Errorf("proxy_arp on cali.100 = %s", got)
		}
		err = link.ConfigureHostInterface("missing.7", false)
		if err == nil || !strings.Contains(err.Error(), "interface missing.7") ||
			!strings.Contains(err.Error(), "net.ipv4.conf.missing/7.proxy_arp") {
			t.Errorf("ConfigureHostInterface(missing.7) = %v, want an error naming the interface and sysctl", err)
		}
	})
}

func TestLinkLocalIPv6(t *testing.T) {
	want := net.ParseIP("fe80::ecee:eeff:feee:eeee")
	inNewNS(t, func() {
		_, err := link.CreateVeth(link.Veth{HostName: "calill", PeerName: "tmpll", IPv6: true}, nil)
		linktest.Must(t, err)
		// The peer is still down, so the kernel has not assigned the address yet.
		ip, err := link.LinkLocalIPv6("calill")
		if err != nil || !ip.Equal(want) {
			t.Fatalf("before carrier: LinkLocalIPv6 = %v, %v; want %s", ip, err, want)
		}
		linktest.Must(t, netlink.LinkSetUp(mustLink(t, "tmpll")))
		ip, err = link.LinkLocalIPv6("calill")
		if err != nil || !ip.Equal(want) {
			t.Fatalf("after carrier: LinkLocalIPv6 = %v, %v; want %s", ip, err, want)
		}
		addrs, err := netlink.AddrList(mustLink(t, "calill"), netlink.FAMILY_V6)
		linktest.Must(t, err)
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(want) }) {
			t.Errorf("kernel assigned %v, want %s among them", addrs, want)
		}
	})
}

// Join calls run concurrently; so must CreateVeth and DeleteVeth (run with -race).
func TestConcurrentCreateDelete(t *testing.T) {
	ns := linktest.NewNS(t, "link")
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			nsErr := linktest.Do(ns, func() {
				v := link.Veth{HostName: fmt.Sprintf("calic%d", i), PeerName: fmt.Sprintf("tmpc%d", i), MTU: 1400, IPv6: true}
				if _, err := link.CreateVeth(v, nil); err != nil {
					errs[i] = err
					return
				}
				if err := link.AddWorkloadRoute(v.HostName, net.IPv4(10, 66, 0, byte(i)), nil); err != nil {
					errs[i] = err
					return
				}
				errs[i] = link.DeleteVeth(v.HostName)
			})
			errs[i] = errors.Join(errs[i], nsErr)
		})
	}
	wg.Wait()
	linktest.Must(t, errors.Join(errs...))
	linktest.MustDo(t, ns, func() {
		if names, err := link.ListLinks("cali"); err != nil || len(names) != 0 {
			t.Errorf("left behind: %v, %v", names, err)
		}
	})
}
