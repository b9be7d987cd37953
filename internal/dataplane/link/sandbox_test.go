package link_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// A container's routes, read and deleted from outside its namespace by its path, as Docker's SandboxKey.
func TestSandboxRoutes(t *testing.T) {
	ns := linktest.NewNS(t, "sandbox")
	for _, cmd := range [][]string{{"ip", "link", "set", "lo", "up"}, {"ip", "route", "add", "10.65.0.0/16", "dev", "lo"}} {
		if out, err := linktest.Exec(ns, cmd...); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	path := "/var/run/netns/" + ns
	pool := netip.MustParsePrefix("10.65.0.0/16")
	routes, err := link.SandboxRoutes(path)
	linktest.Must(t, err)
	if !slices.Contains(routes, pool) {
		t.Fatalf("routes %v lack %s", routes, pool)
	}
	linktest.Must(t, link.DeleteSandboxRoute(path, pool))
	if routes, _ = link.SandboxRoutes(path); slices.Contains(routes, pool) {
		t.Errorf("after the deletion, routes %v", routes)
	}
}
