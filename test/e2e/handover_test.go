package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// A host that ran the plugin's dataplane is handed to calico/node: the daemon restarts with
// CALICO_DATAPLANE=none, removing its firewall. Two new containers, routed as Felix would route them
// (emulated here: a /32 route of Felix's protocol per container and a FORWARD accept for its interface, as
// Felix's cali-FORWARD gives; the driver sets proxy ARP), reach each other: nothing of the plugin's drops
// their traffic.
func TestHandOverToCalicoNode(t *testing.T) {
	e := start(t, nil)
	network := e.network("net")
	e.run("old", "--net", network)
	mustHost(t, "nft", "list", "table", "inet", "calico")

	e.plugin.RestartWith(map[string]string{"CALICO_DATAPLANE": "none"})
	if logs := e.plugin.Logs(); !strings.Contains(logs, `msg="removed the plugin's firewall" what="nftables table inet calico"`) {
		t.Errorf("the daemon did not say it removed table inet calico:\n%s", logs)
	}
	if out := mustHost(t, "nft", "list", "ruleset"); strings.Contains(out, "table inet calico ") {
		t.Errorf("table inet calico is left:\n%s", out)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if out := mustHost(t, cmd); strings.Contains(out, "CALICO-FORWARD") {
			t.Errorf("%s still has CALICO-FORWARD:\n%s", cmd, out)
		}
	}

	c, d := e.run("c", "--net", network), e.run("d", "--net", network)
	for _, ctr := range []string{c, d} {
		felixRoutes(t, e, ctr, network)
	}
	e.mustPing(c, e.containerIP(d, network, false))
	e.mustPing(d, e.containerIP(c, network, false))
}

// felixRoutes routes a container as Felix does, and accepts its forwarded traffic as Felix's chains do,
// until the test ends.
func felixRoutes(t *testing.T, e *env, container, network string) {
	t.Helper()
	id := e.docker("inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).EndpointID}}`, network), container)
	iface, ip := "cali"+id[:11], e.containerIP(container, network, false)
	linktest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		_, err := host("ip", "route", "replace", ip+"/32", "dev", iface, "proto", "boot", "scope", "link")
		return err
	})
	for _, dir := range []string{"-i", "-o"} {
		mustHost(t, "iptables", "-I", "FORWARD", dir, iface, "-j", "ACCEPT")
		t.Cleanup(func() { _, _ = host("iptables", "-D", "FORWARD", dir, iface, "-j", "ACCEPT") })
	}
}

func host(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustHost(t *testing.T, args ...string) string {
	t.Helper()
	out, err := host(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
