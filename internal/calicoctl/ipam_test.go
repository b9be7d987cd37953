package calicoctl

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

func TestIPAMCommands(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool1
spec:
  cidr: 192.168.0.0/16
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool6
spec:
  cidr: fd00:10::/64
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: host--1-libnetwork-libnetwork-ep1
  namespace: libnetwork
spec:
  orchestrator: libnetwork
  workload: libnetwork
  node: host-1
  endpoint: ep1
  interfaceName: caliep1
  ipNetworks: [192.168.0.1/32]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: host--1-libnetwork-libnetwork-ep9
  namespace: libnetwork
spec:
  orchestrator: libnetwork
  workload: libnetwork
  node: host-1
  endpoint: ep9
  interfaceName: caliep9
  ipNetworks: [192.168.5.5/32]
`, "apply", "-f", "-")

	ctx := context.Background()
	host1 := ipam.New(testStore, ipam.Options{Node: "host-1"})
	host2 := ipam.New(testStore, ipam.Options{Node: "host-2"})
	for _, a := range []struct {
		m      *ipam.IPAM
		ip     string
		handle string
	}{
		{host1, "192.168.0.1", "libnetwork.ep1"},
		{host1, "192.168.0.2", "libnetwork.ep2"},
		{host2, "192.168.0.70", ""},
	} {
		var attrs map[string]string
		if a.handle != "" {
			attrs = map[string]string{"endpoint": a.handle}
		}
		if _, err := a.m.AssignIP(ctx, netip.MustParseAddr(a.ip), a.handle, attrs); err != nil {
			t.Fatalf("assigning %s: %v", a.ip, err)
		}
	}
	// A handle record that no allocation backs up.
	if _, err := testStore.Client().Put(ctx, "/calico/ipam/v2/handle/libnetwork.stale", `{"block":{"192.168.0.0/26":1},"deleted":false}`); err != nil {
		t.Fatal(err)
	}

	h.expect(0, "", "ipam", "show")
	h.expect(0, "", "ipam", "show", "--show-blocks")
	h.expect(0, "", "ipam", "show", "--ip", "192.168.0.1")
	h.expect(0, "", "ipam", "show", "--ip", "192.168.0.70")
	h.expect(0, "", "ipam", "show", "--ip", "192.168.0.3")
	h.expect(1, "", "ipam", "show", "--ip", "not-an-ip")
	h.expect(0, "", "ipam", "check")
	h.expect(0, "", "ipam", "release", "--ip", "192.168.0.2")
	h.expect(1, "", "ipam", "release", "--ip", "192.168.0.2")
	h.expect(1, "", "ipam", "release", "--ip", "10.99.0.1")
	h.expect(1, "", "ipam", "release")
	h.expect(0, "", "ipam", "show", "--show-blocks")
	h.expect(0, "", "delete", "wep", "host--1-libnetwork-libnetwork-ep9")
	h.expect(0, "", "ipam", "release", "--ip", "192.168.0.70")
	h.expect(0, "", "ipam", "check")
	h.check("ipam")
}

// Deleting a pool that still holds allocations is refused unless --force, which releases them.
func TestDeletePoolWithAllocations(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: busy}\nspec: {cidr: 10.77.0.0/16}\n", "apply", "-f", "-")
	if _, err := ipam.New(testStore, ipam.Options{Node: "host-1"}).AssignIP(context.Background(), netip.MustParseAddr("10.77.0.9"), "h1", nil); err != nil {
		t.Fatal(err)
	}
	h.expect(1, "", "delete", "ippool", "busy")
	h.expect(0, "", "get", "ippool", "busy")
	h.expect(0, "", "delete", "ippool", "busy", "--force")
	h.expect(1, "", "get", "ippool", "busy")
}

// ipam configure and show --show-configuration, with upstream's messages; a setting other tools stored
// survives.
func TestIPAMConfigure(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	if _, err := testStore.Client().Put(context.Background(), "/calico/ipam/v2/config", `{"auto_allocate_blocks":true,"ipCooldownSeconds":30}`); err != nil {
		t.Fatal(err)
	}
	h.expect(0, "", "ipam", "show", "--show-configuration")
	h.expect(1, "", "ipam", "configure")
	h.expect(0, "", "ipam", "configure", "--strictaffinity=true")
	h.expect(0, "", "ipam", "configure", "--max-blocks-per-host=4")
	h.expect(1, "", "ipam", "configure", "--strictaffinity=maybe")
	h.expect(1, "", "ipam", "configure", "--max-blocks-per-host=x")
	h.expect(1, "", "ipam", "configure", "--max-blocks-per-host=-1")
	h.expect(0, "", "ipam", "show", "--show-configuration")
	h.expect(0, "", "ipam", "configure", "--strictaffinity=false", "--max-blocks-per-host=0")
	h.expect(0, "", "ipam", "show", "--show-configuration")
	h.check("ipam-configure")
	resp, err := testStore.Client().Get(context.Background(), "/calico/ipam/v2/config")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"ipCooldownSeconds":30`) {
		t.Errorf("stored IPAM configuration lost ipCooldownSeconds: %v %v", resp, err)
	}
}
