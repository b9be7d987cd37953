package multihost

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// felixStart bounds how long upstream Felix takes from start to its first programmed route.
const felixStart = 90 * time.Second

// requireFelix skips unless CALICO_FELIX names an upstream calico-felix (scripts/test-interop.sh sets it
// from the build cache) and ipset, which Felix's iptables mode runs, is installed.
func requireFelix(t *testing.T) {
	t.Helper()
	if os.Getenv("CALICO_FELIX") == "" {
		t.Skip("skipping: CALICO_FELIX is not set: no upstream calico-felix (make test-interop)")
	}
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Skip("skipping: Felix in iptables mode needs ipset: apt-get install ipset")
	}
}

// startFelix runs upstream calico-felix in the host's namespaces against the lab's etcd, as
// upstream-calico.md describes: iptables through nf_tables, endpoint-to-host traffic accepted, and the
// routes of unencapsulated pools its own (no BIRD here). It is respawned when it exits, as calico/node
// does. Nothing it writes outlives the lab: no log file, no endpoint status files, and its MTU file
// (/var/lib/calico/mtu, a fixed path) lands on a tmpfs in a mount namespace of its own.
func (h *host) startFelix() {
	t := h.lab.t
	etcd := h.lab.etcd.endpoints()
	h.felixd.name, h.felixd.respawn = h.name+" calico-felix", true
	h.felixd.args = append(h.enter(), "unshare", "-m", "--propagation", "private",
		"sh", "-c", `mount -t tmpfs felix /var/lib && exec "$@"`, "sh",
		"env", "FELIX_DATASTORETYPE=etcdv3", "FELIX_ETCDENDPOINTS="+etcd,
		"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcd, "FELIX_FELIXHOSTNAME="+h.name,
		"FELIX_LOGSEVERITYSCREEN=info", "FELIX_LOGSEVERITYSYS=none", "FELIX_LOGFILEPATH=none",
		"FELIX_ENDPOINTSTATUSPATHPREFIX=none", "FELIX_HEALTHENABLED=false",
		"FELIX_DEFAULTENDPOINTTOHOSTACTION=ACCEPT", "FELIX_USAGEREPORTINGENABLED=false",
		"FELIX_IPTABLESBACKEND=NFT", "FELIX_PROMETHEUSMETRICSENABLED=false",
		"FELIX_PROGRAMCLUSTERROUTES=Enabled", os.Getenv("CALICO_FELIX"))
	must(t, h.felixd.start())
	t.Cleanup(func() {
		if t.Failed() {
			logs := lines(h.felixd.logs.String())
			t.Logf("last lines of %s's log:\n%s", h.felixd.name, strings.Join(logs[max(0, len(logs)-60):], "\n"))
		}
	})
}

// handOver moves the host from this plugin's dataplane to upstream Felix, or back, as the README says:
// the plugin restarts with CALICO_DATAPLANE=none and Felix starts; Felix stops and the plugin restarts
// with its dataplane.
func (h *host) handOver(toFelix bool) {
	h.felix = toFelix
	if toFelix {
		h.plugin.RestartWith(map[string]string{"CALICO_DATAPLANE": "none"})
		h.startFelix()
		return
	}
	h.felixd.stop(syscall.SIGTERM, 20*time.Second)
	h.plugin.RestartWith(map[string]string{"CALICO_DATAPLANE": "linux"})
}

// dataplaneOf says what programs h's firewall: Felix's chains, this dataplane's table.
func dataplaneOf(h *host) (felixChains, ourTable bool) {
	rules, _ := h.sh("iptables-save -t filter")
	tables, _ := h.sh("nft list tables")
	return strings.Contains(rules, ":cali-FORWARD"), slices.Contains(lines(tables), "table inet calico")
}

// TestMixedCluster is a cluster of two kinds of host: "ours" runs this plugin's dataplane, "felix" runs
// the plugin with CALICO_DATAPLANE=none and upstream calico-felix programming the host, as beside a
// calico/node. They sit on different segments with a VXLAN pool in mode Always, so all traffic between
// them crosses the router in VXLAN, each end's tunnel programmed by a different implementation.
func TestMixedCluster(t *testing.T) {
	l := newLab(t, []hostSpec{{name: "ours", segment: 0, number: 11}, {name: "felix", segment: 1, number: 12, felix: true}})
	ours, felix := l.host("ours"), l.host("felix")
	l.setPools("Always")
	for _, h := range l.hosts {
		h.mustDocker("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam", "mixnet")
		h.mustDocker("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam", "mixother")
	}
	a, a2, b := ours.run("wla", "mixnet"), ours.run("wlc", "mixnet"), felix.run("wlb", "mixnet")
	xa, xb := ours.run("xa", "mixother"), felix.run("xb", "mixother")

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"VTEPs", func(t *testing.T) {
			// Felix's first route to the other host's block says it has synced and built its tunnel.
			waitHost(t, felix, felixStart, func() error {
				out, err := felix.sh("ip route show " + blockOf(a.ip4))
				if err != nil || !strings.Contains(out, "dev vxlan.calico") {
					return fmt.Errorf("Felix has not routed %s through VXLAN: %q %v", blockOf(a.ip4), out, err)
				}
				return nil
			})
			// Each host holds the other's tunnel address and MAC as that host's Node states them, and its
			// own device carries what its Node states, so the two ends agree.
			expectVXLAN(t, ours, felix)
			expectVXLAN(t, felix, ours)
			for _, h := range l.hosts {
				tunnel, mac := nodeField(t, l, h.name, "ipv4VXLANTunnelAddr"), nodeField(t, l, h.name, "vxlanTunnelMACAddr")
				out, err := h.sh("ip -d addr show vxlan.calico")
				if err != nil || !strings.Contains(out, "link/ether "+mac) || !strings.Contains(out, "inet "+tunnel+"/32") {
					t.Errorf("%s's own VTEP is not its Node's (%s %s): %v\n%s", h.name, tunnel, mac, err, out)
				}
			}
			expectRoute(t, ours, blockOf(b.ip4), "dev vxlan.calico proto 80 onlink")
			// Who programs which host: Felix's chains on one, this dataplane's table on the other only.
			for _, h := range l.hosts {
				if felixChains, ourTable := dataplaneOf(h); felixChains != h.felix || ourTable == h.felix {
					t.Errorf("%s: Felix's chains %v, this dataplane's table %v", h.name, felixChains, ourTable)
				}
			}
		}},
		{"Reach", func(t *testing.T) {
			expectMatrix(t, []*container{a, a2, b}, false)
			expectMatrix(t, []*container{xa, xb}, false)
		}},
		{"Isolation", func(t *testing.T) {
			// Each network's profile admits only its own members, enforced at the receiving host: by this
			// dataplane on "ours", by Felix on "felix".
			expectNoPing(t, xa, b.ip4)
			expectNoPing(t, xb, a.ip4)
			expectNoPing(t, a, xb.ip4)
			expectNoPing(t, b, xa.ip4)
		}},
		{"GlobalNetworkPolicy", func(t *testing.T) {
			// One policy denies each direction between a and b; a2 is not named and keeps both paths.
			l.calicoctl(fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-a-b}
spec:
  order: 1
  selector: has(mixnet)
  ingress:
  - action: Deny
    source: {nets: [%s/32, %s/32]}
    destination: {nets: [%s/32, %s/32]}
  - action: Pass
`, a.ip4, b.ip4, a.ip4, b.ip4), "apply", "-f", "-")
			expectNoPing(t, a, b.ip4) // Felix denies
			expectNoPing(t, b, a.ip4) // this dataplane denies
			expectPing(t, a2, b.ip4)
			expectPing(t, b, a2.ip4)
			l.calicoctl("", "delete", "globalnetworkpolicy", "deny-a-b")
			expectMatrix(t, []*container{a, b}, false)
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return
		}
	}
}
