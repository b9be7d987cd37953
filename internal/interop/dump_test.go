package interop

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// What the dump holds (testdata/etcd-dump.json, recorded from upstream calicoctl, CNI plugin and
// calico/node by testdata/record.sh): host-a and host-b on 10.0.0.0/24, host-c on 10.0.1.0/24, each with a
// VXLAN tunnel address; CNI workloads on network mynet, host-a's at 192.168.0.1 (its own block),
// 192.168.0.65 (borrowed from host-b's block), 10.10.0.1 (small-pool's only block) and 172.16.0.1, host-b's
// at 192.168.0.66 and 172.16.0.65, host-c's at 172.16.0.129 and 172.16.0.2 (borrowed from host-a's block);
// and on host-a an allocation of calico-ipam alone that no endpoint uses (a leak). cross-subnet-pool
// selects nodes labelled rack, which a new node is not: it allocates from the default pool.
const (
	otherNode  = "host-a"
	newNode    = "host-new"
	smallBlock = "/calico/ipam/v2/assignment/ipv4/block/10.10.0.0-26"
)

var (
	webIP    = netip.MustParseAddr("192.168.0.1")
	leakedIP = netip.MustParseAddr("192.168.0.2")
)

// handleWithPrefix is the one IPAM handle in the dump whose ID starts with prefix.
func handleWithPrefix(t *testing.T, dump map[string]json.RawMessage, prefix string) string {
	t.Helper()
	var found []string
	for key := range dump {
		if id, ok := strings.CutPrefix(key, "/calico/ipam/v2/handle/"); ok && strings.HasPrefix(id, prefix) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		t.Fatalf("handles starting %q in the dump: %v", prefix, found)
	}
	return found[0]
}

// webHandle is the handle the CNI plugin gave webIP: <network>.<container ID>.
func webHandle(t *testing.T, dump map[string]json.RawMessage) string {
	t.Helper()
	weps, err := datastore.List[*api.WorkloadEndpoint](ctx(t), testStore, "")
	must(t, err)
	for _, w := range weps {
		if slices.Contains(w.Spec.IPNetworks, webIP.String()+"/32") {
			return handleWithPrefix(t, dump, "mynet."+w.Spec.ContainerID)
		}
	}
	t.Fatalf("no endpoint has %s", webIP)
	return ""
}

// createNode registers this host's Node as the daemon does.
func createNode(t *testing.T, name string) {
	t.Helper()
	n := &api.Node{Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: "10.0.0.20/24"},
		OrchRefs: []api.OrchRef{{NodeName: name, Orchestrator: api.OrchestratorLibnetwork}}}}
	n.Name = name
	if err := testStore.Create(ctx(t), n); err != nil {
		t.Fatal(err)
	}
}

// Every resource of the dump decodes, defaults and validates as ours, so the daemon and calicoctl can
// work on it.
func TestDumpResourcesAreValid(t *testing.T) {
	dump := loadDump(t)
	n := 0
	for _, name := range api.KindNames() {
		info, _ := api.LookupKind(name)
		objs, _, err := testStore.ListResources(ctx(t), info, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, o := range objs {
			n++
			if err := api.Validate(o); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	resources := 0
	for key := range dump {
		if strings.HasPrefix(key, datastore.ResourcePrefix) {
			resources++
		}
	}
	if n != resources {
		t.Errorf("read %d resources, the dump has %d", n, resources)
	}
}

// A new node allocates from a block of its own, leaving the other node's blocks, affinities and handles
// byte for byte as upstream wrote them, and its allocations carry what upstream's tools look for.
func TestDumpIPAMNewNode(t *testing.T) {
	dump := loadDump(t)
	createNode(t, newNode)
	m := ipam.New(testStore, ipam.Options{Node: newNode})
	handle := "libnetwork." + strings.Repeat("d4", 32)
	ip, pool, err := m.AutoAssign(ctx(t), ipam.Request{Family: 4, Handle: handle,
		Attrs: map[string]string{"libnetwork-endpoint": strings.Repeat("d4", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	if pool.Name != "default-ipv4-ippool" || !netip.MustParsePrefix("192.168.0.0/24").Contains(ip) ||
		netip.MustParsePrefix("192.168.0.0/26").Contains(ip) {
		t.Errorf("allocated %s from %s: want the default pool outside host-a's block", ip, pool.Name)
	}
	for key, want := range dump {
		if strings.HasPrefix(key, "/calico/ipam/") {
			if got := rawValue(t, key); got != string(want) {
				t.Errorf("%s changed:\nwas %s\nnow %s", key, want, got)
			}
		}
	}
	info, err := m.Allocation(ctx(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	if info.BlockNode != newNode || info.Handle != handle || info.Attrs["node"] != newNode || info.Attrs["timestamp"] == "" {
		t.Errorf("allocation %+v", info)
	}
	block := netip.PrefixFrom(ip, 26).Masked()
	seg := strings.Replace(block.String(), "/", "-", 1)
	if v := rawValue(t, "/calico/ipam/v2/host/"+newNode+"/ipv4/block/"+seg); !strings.Contains(v, `"confirmed"`) {
		t.Errorf("affinity of the new block: %q", v)
	}
	if v := rawValue(t, "/calico/ipam/v2/handle/"+handle); !strings.Contains(v, `"`+block.String()+`":1`) {
		t.Errorf("handle record: %q", v)
	}

	// Upstream's own allocation in a block we read is reported as upstream recorded it.
	info, err = m.Allocation(ctx(t), webIP)
	if err != nil {
		t.Fatal(err)
	}
	if info.BlockNode != otherNode || info.Handle != webHandle(t, dump) || info.Attrs["node"] != otherNode || info.Attrs["timestamp"] == "" {
		t.Errorf("host-a's allocation read as %+v", info)
	}
}

// A pool whose only block is affine to another node: we borrow (marking the address as ours, so Felix
// routes it to us) unless strict affinity forbids it; then we refuse.
func TestDumpIPAMBorrowOrRefuse(t *testing.T) {
	loadDump(t)
	createNode(t, newNode)
	m := ipam.New(testStore, ipam.Options{Node: newNode})
	ip, _, err := m.AutoAssign(ctx(t), ipam.Request{Family: 4, Pools: []string{"small-pool"}, Handle: "libnetwork.borrowed"})
	if err != nil {
		t.Fatalf("borrowing from host-a's block: %v", err)
	}
	info, err := m.Allocation(ctx(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	if info.Block != netip.MustParsePrefix("10.10.0.0/26") || info.BlockNode != otherNode || info.Attrs["node"] != newNode {
		t.Errorf("borrowed allocation %+v", info)
	}
	if v := rawValue(t, smallBlock); !strings.Contains(v, `"affinity":"host:host-a"`) || !strings.Contains(v, `"sequenceNumberForAllocation"`) {
		t.Errorf("borrowing changed the block's owner or lost upstream's fields: %s", v)
	}

	if err := m.UpdateConfig(ctx(t), func(c *ipam.Config) { c.StrictAffinity = true }); err != nil {
		t.Fatal(err)
	}
	before := rawValue(t, smallBlock)
	if ip, _, err := m.AutoAssign(ctx(t), ipam.Request{Family: 4, Pools: []string{"small-pool"}}); err == nil {
		t.Errorf("strict affinity: borrowed %s anyway", ip)
	}
	if after := rawValue(t, smallBlock); after != before {
		t.Errorf("refused allocation changed the block")
	}
}

// ipam check finds the dump's leaked CNI allocation and nothing else: the CNI endpoints and the nodes'
// VXLAN tunnel addresses are in use, and the handles agree with the blocks.
func TestDumpIPAMCheck(t *testing.T) {
	dump := loadDump(t)
	live := map[netip.Addr]bool{}
	nodes, err := datastore.List[*api.Node](ctx(t), testStore, "")
	must(t, err)
	for _, n := range nodes {
		live[netip.MustParseAddr(n.Spec.IPv4VXLANTunnelAddr)] = true
	}
	weps, err := datastore.List[*api.WorkloadEndpoint](ctx(t), testStore, "")
	must(t, err)
	for _, w := range weps {
		for _, n := range w.Spec.IPNetworks {
			live[netip.MustParsePrefix(n).Addr()] = true
		}
	}
	rep, err := ipam.New(testStore, ipam.Options{Node: newNode}).Check(ctx(t), live)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Allocations != 12 || len(rep.Leaked) != 1 || rep.Leaked[0].IP != leakedIP ||
		rep.Leaked[0].Handle != handleWithPrefix(t, dump, "k8s-pod-network.") || len(rep.NotAllocated) != 0 || len(rep.Handles) != 0 {
		t.Errorf("check report %+v", rep)
	}

	// Our calicoctl says the same, counting the node's tunnel address from the Node resource.
	out, _, err := calicoctlRun(t, "", "ipam", "check")
	if err != nil {
		t.Fatalf("ipam check: %v\n%s", err, out)
	}
	for _, want := range []string{"Found 8 workload IPs and 3 node tunnel IPs in use.", "Found 12 IPAM allocations.", leakedIP.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("ipam check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, webIP.String()+" ") {
		t.Errorf("ipam check reports the live endpoint %s:\n%s", webIP, out)
	}
}

// The policy index, fed the dump's tiers, policies, profiles and other hosts' endpoints plus one local
// endpoint, computes the plan Felix would program.
func TestDumpPolicyPlan(t *testing.T) {
	loadDump(t)
	x := policy.NewIndex(newNode)
	c := ctx(t)
	tiers, err := datastore.List[*api.Tier](c, testStore, "")
	must(t, err)
	for _, tr := range tiers {
		x.SetTier(tr.Name, tr)
	}
	profiles, err := datastore.List[*api.Profile](c, testStore, "")
	must(t, err)
	for _, p := range profiles {
		x.SetProfile(p.Name, p)
	}
	gnps, err := datastore.List[*api.GlobalNetworkPolicy](c, testStore, "")
	must(t, err)
	for _, p := range gnps {
		x.SetPolicy("", p.Name, &p.Spec)
	}
	nps, err := datastore.List[*api.NetworkPolicy](c, testStore, "")
	must(t, err)
	for _, p := range nps {
		x.SetPolicy(p.Namespace, p.Name, &p.Spec)
	}
	weps, err := datastore.List[*api.WorkloadEndpoint](c, testStore, "")
	must(t, err)
	for _, w := range weps {
		x.SetEndpoint(datastore.ResourceKey(api.KindOf(w), w.Namespace, w.Name), w)
	}
	local, err := api.LibnetworkEndpoint(newNode, strings.Repeat("e5", 32))
	must(t, err)
	local.Labels = map[string]string{"role": "db"}
	local.Spec.IPNetworks = []string{"192.168.0.130/32"}
	local.Spec.Profiles = []string{"mynet"}
	local.Spec.InterfaceName = "cali" + strings.Repeat("e5", 32)[:11]
	local.Spec.MAC = "02:00:c0:a8:00:82"
	api.Default(local)
	x.SetEndpoint("local", local)

	ep, ok := x.Interface(local.Spec.InterfaceName)
	if !ok {
		t.Fatal("local endpoint not indexed")
	}
	gnp := func(name string, d policy.Direction) policy.RuleSetID {
		return policy.RuleSetID{Kind: policy.KindGlobalPolicy, Name: name, Dir: d}
	}
	np := policy.RuleSetID{Kind: policy.KindPolicy, Namespace: "libnetwork", Name: "allow-web-to-db", Dir: policy.Ingress}
	want := [2]policy.Plan{
		policy.Ingress: {Tiers: []policy.TierPlan{
			{Name: "security", EndPass: true, Policies: []policy.RuleSetID{gnp("security.log-all", policy.Ingress)}},
			{Name: "default", Policies: []policy.RuleSetID{np}},
		}, Profiles: []policy.RuleSetID{{Kind: policy.KindProfile, Name: "mynet", Dir: policy.Ingress}}},
		policy.Egress: {Tiers: []policy.TierPlan{
			{Name: "security", EndPass: true, Policies: []policy.RuleSetID{gnp("security.log-all", policy.Egress)}},
			{Name: "default", Policies: []policy.RuleSetID{gnp("db-egress", policy.Egress)}},
		}, Profiles: []policy.RuleSetID{{Kind: policy.KindProfile, Name: "mynet", Dir: policy.Egress}}},
	}
	for _, d := range policy.Directions {
		if !ep.Plans[d].Equal(want[d]) {
			t.Errorf("%s plan:\n got %s\nwant %s", d, ep.Plans[d].Key(), want[d].Key())
		}
	}

	// The selectors in the rules, single- or double-quoted, match host-a's web endpoint; the profile's
	// has(mynet) matches every endpoint through labelsToApply.
	for _, tc := range []struct {
		id  policy.RuleSetID
		src bool
	}{{np, true}, {gnp("db-egress", policy.Egress), false}, {policy.RuleSetID{Kind: policy.KindProfile, Name: "mynet", Dir: policy.Ingress}, true}} {
		rules, ok := x.RuleSet(tc.id)
		if !ok || len(rules) == 0 {
			t.Fatalf("%s: no rules", tc.id)
		}
		set := rules[0].Dst.Set
		if tc.src {
			set = rules[0].Src.Set
		}
		members, ok := x.Set(set)
		if !ok || !slices.Contains(members, policy.Member{Addr: webIP}) {
			t.Errorf("%s: set %q = %v, want it to hold %s", tc.id, set, members, webIP)
		}
		if tc.id.Kind == policy.KindProfile && !slices.Contains(members, policy.Member{Addr: netip.MustParseAddr("192.168.0.130")}) {
			t.Errorf("%s: set %v lacks the local endpoint", tc.id, members)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
