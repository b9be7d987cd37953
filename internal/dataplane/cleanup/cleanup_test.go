package cleanup

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/firewall"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

func TestPluginVeth(t *testing.T) {
	const mark = link.VethAlias
	for _, c := range []struct {
		name, typ, alias string
		want             bool
	}{
		{"cali0123456789a", "veth", mark, true},
		{"caliabcdef01234", "veth", mark, true},
		{"caliabcdef01234", "veth", "", false},     // a Calico CNI's pod veth: same name shape, no mark
		{"caliabcdef01234", "bridge", mark, false}, // a cali-named interface of another kind
		{"cali0123456789", "veth", mark, false},    // 10 characters: not an endpoint ID's 11
		{"cali0123456789ab", "veth", mark, false},  // 12
		{"caliABCDEF01234", "veth", mark, false},   // Docker's IDs are lower case
		{"calinotours1234", "veth", mark, false},   // not hex
		{"cali-x", "veth", mark, false},            //
		{"eth0", "veth", mark, false},              //
		{"tmp0123456789a", "veth", mark, false},    // the container end before Docker moves it
		{"xcali0123456789a", "veth", mark, false},  //
		{"vxlan.calico", "vxlan", "", false},       // ours, but not a workload interface
		{"cali0123456789a\n", "veth", mark, false}, //
	} {
		if got := pluginVeth(link.Iface{Name: c.name, Kind: c.typ, Alias: c.alias}); got != c.want {
			t.Errorf("pluginVeth(%q, %q, alias %q) = %v, want %v", c.name, c.typ, c.alias, got, c.want)
		}
	}
}

// Uninstalling leaves the host's firewall, routes, neighbours and interfaces exactly as they were before
// the plugin's dataplane ran, whatever others put there: another nftables table, a table named calico in
// another family (Felix's), Docker's and Felix's iptables chains, routes of other protocols, and
// interfaces whose names look like ours.
func TestRemoveRestoresHost(t *testing.T) {
	host := linktest.Host(t)
	foreign(t, host)
	before := linktest.HostState(t, host)

	ours(t, host, true)
	if s := linktest.HostState(t, host); s == before {
		t.Fatal("the plugin's dataplane changed nothing on the host")
	}
	var claim io.Closer
	linktest.MustDo(t, host, func() {
		var err error
		claim, err = dataplane.Claim()
		linktest.Must(t, err)
		linktest.Must(t, Remove(Options{Log: testLog(t), Interfaces: true}))
	})
	if out := mustExec(t, host, "nft", "list", "tables"); !strings.Contains(out, "table inet "+dataplane.ClaimTable) {
		t.Errorf("Remove deleted the dataplane claim of the process holding it:\n%s", out)
	}
	linktest.Must(t, claim.Close())
	if after := linktest.HostState(t, host); after != before {
		t.Errorf("the host differs from before:\n%s", linktest.StateDiff(before, after))
	}
	// Nothing left to do: a second run removes nothing and fails nowhere.
	linktest.MustDo(t, host, func() { linktest.Must(t, Remove(Options{Log: testLog(t), Interfaces: true})) })
	if after := linktest.HostState(t, host); after != before {
		t.Errorf("a second Remove changed the host:\n%s", linktest.StateDiff(before, after))
	}
}

// With the dataplane off, the firewall, block routes and VXLAN device of an earlier run go, the workload
// interfaces of live containers stay with their routes; and routes with protocol 80 and a vxlan.calico
// are Felix's, never ours, once our firewall is gone.
func TestRemoveHandsOverToFelix(t *testing.T) {
	host := linktest.Host(t)
	foreign(t, host)
	ours(t, host, false)
	linktest.MustDo(t, host, func() { linktest.Must(t, Remove(Options{Log: testLog(t)})) })
	if out := mustExec(t, host, "nft", "list", "ruleset"); strings.Contains(out, "table inet calico ") {
		t.Errorf("table inet calico left:\n%s", out)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if out := mustExec(t, host, cmd); strings.Contains(out, "CALICO-FORWARD") {
			t.Errorf("%s still has CALICO-FORWARD:\n%s", cmd, out)
		}
	}
	routes := mustExec(t, host, "ip", "route", "show", "proto", "80")
	if want := "10.65.0.1 dev cali0123456789a scope link"; !strings.Contains(routes, want) {
		t.Errorf("the live workload's route %q went:\n%s", want, routes)
	}
	for _, gone := range []string{"blackhole 10.65.0.0/26", "10.66.0.0/26", "10.67.0.0/26"} {
		if strings.Contains(routes, gone) {
			t.Errorf("the plugin's route %s is left:\n%s", gone, routes)
		}
	}
	if _, err := linktest.Exec(host, "ip", "link", "show", "vxlan.calico"); err == nil {
		t.Error("vxlan.calico is left")
	}

	// Felix's: the same kinds of routes and device, but no firewall of ours says we made them.
	felixRoute := "blackhole 10.70.0.0/26 proto 80"
	mustExec(t, host, append([]string{"ip", "route", "add"}, strings.Fields(felixRoute)...)...)
	mustExec(t, host, "ip", "link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789", "dev", "uplink0")
	linktest.MustDo(t, host, func() { linktest.Must(t, Remove(Options{Log: testLog(t), Interfaces: true})) })
	if routes := mustExec(t, host, "ip", "route", "show", "proto", "80"); !strings.Contains(routes, "blackhole 10.70.0.0/26") {
		t.Errorf("Felix's route %q went:\n%s", felixRoute, routes)
	}
	mustExec(t, host, "ip", "link", "show", "vxlan.calico")
	if _, err := linktest.Exec(host, "ip", "link", "show", "cali0123456789a"); err == nil {
		t.Error("with Interfaces, the plugin's workload interface is left")
	}
}

// foreign puts on the host what others would: Docker's and Felix's firewall, routes, and interfaces named
// like ours that are not.
func foreign(t *testing.T, host string) {
	t.Helper()
	mustNft(t, host, `add table inet other
add chain inet other allow { type filter hook forward priority 0; policy accept; }
add rule inet other allow iifname "cali*" counter accept
add table ip calico
add chain ip calico filter-FORWARD { type filter hook forward priority 0; policy accept; }
add rule ip calico filter-FORWARD iifname "cali*" counter accept
`)
	linktest.SettleLinkLocal(t, host, "uplink0", "uplink1")
	for _, cmd := range [][]string{
		{"iptables", "-N", "DOCKER-USER"}, {"iptables", "-A", "DOCKER-USER", "-s", "10.99.0.0/16", "-j", "DROP"},
		{"iptables", "-A", "FORWARD", "-j", "DOCKER-USER"}, {"iptables", "-P", "FORWARD", "DROP"},
		{"iptables", "-N", "cali-FORWARD"}, {"iptables", "-A", "FORWARD", "-j", "cali-FORWARD"},
		{"ip6tables", "-A", "FORWARD", "-i", "cali+", "-j", "ACCEPT"},
		{"ip", "addr", "add", "192.0.2.1/24", "dev", "uplink0"},
		{"ip", "route", "add", "10.123.0.0/24", "via", "192.0.2.9", "proto", "static"},
		{"ip", "route", "add", "blackhole", "10.124.0.0/26", "proto", "boot"},
		{"ip", "link", "add", "caliabcdef01234", "type", "bridge"},
		{"ip", "link", "add", "calinotours1234", "type", "veth", "peer", "name", "pcalinotours"},
		{"ip", "link", "set", "calinotours1234", "up"},
		// Felix's workload route, with deviceRouteProtocol 80: on a cali interface that is not ours.
		{"ip", "route", "add", "10.125.0.5/32", "dev", "calinotours1234", "proto", "80", "scope", "link"},
	} {
		mustExec(t, host, cmd...)
	}
}

// ours runs, in host, the kernel code the dataplane agent and the routing reconciler run: the firewall,
// two workload interfaces with their routes, block routes (direct, blackhole, over VXLAN) and vxlan.calico.
func ours(t *testing.T, host string, pools bool) {
	t.Helper()
	linktest.MustDo(t, host, func() {
		fw := firewall.New(workloadPrefix, testLog(t))
		linktest.Must(t, fw.Ensure(firewall.Options{}))
		if pools {
			linktest.Must(t, fw.SetPools([]netip.Prefix{netip.MustParsePrefix("10.64.0.0/12")}, []netip.Prefix{netip.MustParsePrefix("10.64.0.0/12")}))
		}
		for i, id := range []string{"0123456789a", "fedcba98765"} {
			mac, err := link.CreateVeth(link.Veth{HostName: "cali" + id, PeerName: "tmp" + id, IPv6: true}, nil)
			linktest.Must(t, err)
			linktest.Must(t, link.AddWorkloadRoute("cali"+id, net.IPv4(10, 65, 0, byte(i+1)), mac))
		}
		linktest.Must(t, link.EnsureVXLAN(link.VXLANDevice{Name: "vxlan.calico", VNI: 4096, Port: 4789, Parent: "uplink0",
			Local: netip.MustParseAddr("192.0.2.1"), MAC: net.HardwareAddr{0x66, 1, 2, 3, 4, 5}, MTU: 1450,
			Addr: netip.MustParseAddr("10.65.0.64")}))
		for _, r := range []link.BlockRoute{
			{Dst: netip.MustParsePrefix("10.65.0.0/26"), Blackhole: true},
			{Dst: netip.MustParsePrefix("fd00:65::/122"), Blackhole: true},
			{Dst: netip.MustParsePrefix("10.66.0.0/26"), Via: netip.MustParseAddr("192.0.2.2"), Dev: "uplink0"},
			{Dst: netip.MustParsePrefix("10.67.0.0/26"), Via: netip.MustParseAddr("10.67.0.0"), Dev: "vxlan.calico"},
		} {
			linktest.Must(t, link.ReplaceBlockRoute(r))
		}
	})
}

func mustExec(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := linktest.Exec(ns, args...)
	linktest.Must(t, err)
	return out
}

func mustNft(t *testing.T, ns, script string) {
	t.Helper()
	f := t.TempDir() + "/script.nft"
	linktest.Must(t, os.WriteFile(f, []byte(script), 0o600))
	mustExec(t, ns, "nft", "-f", f)
}

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }
