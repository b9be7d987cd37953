package interop

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/routing"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// Each node of the dump routes what Felix would route for it, read from upstream's nodes, pools and blocks:
// host-a and host-b share 10.0.0.0/24, host-c is on 10.0.1.0/24. default-ipv4-ippool is Never, small-pool
// Always, cross-subnet-pool CrossSubnet; calico/node gave host-a its tunnel address in small-pool and the
// others theirs in cross-subnet-pool, and wrote no VTEP MACs (Felix derives them). host-a borrowed 192.168.0.65 from
// host-b's block and host-c borrowed 172.16.0.2 from host-a's.
func TestDumpRoutes(t *testing.T) {
	loadDump(t)
	nodes, err := datastore.List[*api.Node](ctx(t), testStore, "")
	must(t, err)
	pools, err := datastore.List[*api.IPPool](ctx(t), testStore, "")
	must(t, err)
	kvs, _, err := testStore.List(ctx(t), "/calico/ipam/v2/assignment/")
	must(t, err)
	blocks := make([]*ipam.Block, len(kvs))
	for i, kv := range kvs {
		blocks[i] = new(ipam.Block)
		if err := json.Unmarshal(kv.Value, blocks[i]); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
	}

	for _, tc := range []struct {
		node string
		want []string
	}{
		{"host-a", []string{
			"blackhole 10.10.0.0/26",
			"blackhole 172.16.0.0/26",
			"172.16.0.2/32 vxlan 172.16.0.128", // host-c, across the subnet
			"172.16.0.64/26 via 10.0.0.12",     // host-b, within it
			"172.16.0.128/26 vxlan 172.16.0.128",
			"blackhole 192.168.0.0/26",
			"192.168.0.64/26 via 10.0.0.12", // host-a's own borrowed .65 is a workload route, not ours
		}},
		{"host-b", []string{
			"10.10.0.0/26 vxlan 10.10.0.0",
			"172.16.0.0/26 via 10.0.0.11",
			"172.16.0.2/32 vxlan 172.16.0.128",
			"blackhole 172.16.0.64/26",
			"172.16.0.128/26 vxlan 172.16.0.128",
			"192.168.0.0/26 via 10.0.0.11",
			"blackhole 192.168.0.64/26",
			"192.168.0.65/32 via 10.0.0.11", // borrowed from this node's block: more specific than its blackhole
		}},
		{"host-c", []string{
			"10.10.0.0/26 vxlan 10.10.0.0",
			"172.16.0.0/26 vxlan 10.10.0.0",
			"172.16.0.64/26 vxlan 172.16.0.64",
			"blackhole 172.16.0.128/26",
			"192.168.0.0/26 via 10.0.0.11", // Never: direct even across the subnet
			"192.168.0.64/26 via 10.0.0.12",
			"192.168.0.65/32 via 10.0.0.11",
		}},
	} {
		if got := routing.Routes(tc.node, nodes, pools, blocks); !slices.Equal(got, tc.want) {
			t.Errorf("routes of %s:\n%s\nwant:\n%s", tc.node, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}
