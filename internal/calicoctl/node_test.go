package calicoctl

import (
	"context"
	"net/netip"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// Deleting a node takes its endpoints, addresses, blocks and affinities with it; addresses other nodes
// hold in its blocks survive in a block without affinity.
func TestDeleteNodeCascade(t *testing.T) {
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
kind: Node
metadata:
  name: host-1
spec:
  bgp: {ipv4Address: 198.18.0.11/24}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: host-2
spec:
  bgp: {ipv4Address: 198.18.0.12/24}
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
  name: host--2-libnetwork-libnetwork-ep2
  namespace: libnetwork
spec:
  orchestrator: libnetwork
  workload: libnetwork
  node: host-2
  endpoint: ep2
  interfaceName: caliep2
  ipNetworks: [192.168.0.64/32]
`, "apply", "-f", "-")

	ctx := context.Background()
	host1 := ipam.New(testStore, ipam.Options{Node: "host-1"})
	host2 := ipam.New(testStore, ipam.Options{Node: "host-2"})
	for _, a := range []struct {
		m      *ipam.IPAM
		ip     string
		handle string
	}{
		{host1, "192.168.0.1", "libnetwork.ep1"},           // host-1's block, its endpoint
		{host1, "192.168.0.2", "vxlan-tunnel-addr-host-1"}, // host-1's block, no endpoint
		{host2, "192.168.0.64", "libnetwork.ep2"},          // host-2's block
		{host1, "192.168.0.70", "libnetwork.ep3"},          // borrowed by host-1 from host-2's block
		{host2, "192.168.0.10", "libnetwork.ep4"},          // borrowed by host-2 from host-1's block
	} {
		if _, err := a.m.AssignIP(ctx, netip.MustParseAddr(a.ip), a.handle, nil); err != nil {
			t.Fatalf("assigning %s: %v", a.ip, err)
		}
	}
	h.expect(0, "", "ipam", "show", "--show-blocks")
	h.expect(1, "", "delete", "node", "host-9")
	h.expect(0, "", "delete", "node", "host-1")
	h.expect(0, "", "get", "nodes")
	h.expect(0, "", "get", "weps", "-A")
	h.expect(0, "", "ipam", "show", "--show-blocks")
	h.expect(0, "", "ipam", "show", "--ip", "192.168.0.10")
	h.expect(0, "", "ipam", "check")
	resp, err := testStore.Client().Get(ctx, "/calico/ipam/v2/host/host-1/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("affinities of host-1 left: %v %v", resp, err)
	}
	h.check("delete-node")
}
