package main

import (
	"net/netip"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// The simulated cluster is what the daemon would read: every object passes Calico's validation, keys and
// addresses are unique, addresses lie in their node's blocks, the policies give sets from a few members to
// a large share of the cluster (seen from the nodes whose endpoints they select: a node programs only the
// policies of its own endpoints), and the probe set holds the probe endpoint's address exactly while its
// label is on.
func TestSimulatedCluster(t *testing.T) {
	c, err := newCluster(sizes{Nodes: 20, Endpoints: 4000, Policies: 200, Local: 10})
	if err != nil {
		t.Fatal(err)
	}
	idx := policy.NewIndex(localNode)
	everyNode := []*policy.Index{idx} // what each node programs
	for n := range c.remote {
		everyNode = append(everyNode, policy.NewIndex(c.nodeName(n)))
	}
	keys, addrs := map[string]bool{}, map[netip.Addr]bool{}
	add := func(o api.Object) {
		t.Helper()
		op, err := datastore.CreateOp(o)
		if err != nil {
			t.Fatalf("%s %s: %v", api.KindOf(o).Kind, o.GetObjectMeta().Name, err)
		}
		if keys[op.Key] {
			t.Fatalf("two objects at %s", op.Key)
		}
		keys[op.Key] = true
		m := o.GetObjectMeta()
		if w, ok := o.(*api.WorkloadEndpoint); ok {
			p, err := api.ParseIPNetwork(w.Spec.IPNetworks[0])
			if err != nil || addrs[p.Addr()] {
				t.Fatalf("endpoint %s: address %s taken or invalid (%v)", w.Name, w.Spec.IPNetworks[0], err)
			}
			addrs[p.Addr()] = true
		}
		for _, idx := range everyNode {
			switch o := o.(type) {
			case *api.WorkloadEndpoint:
				idx.SetEndpoint(op.Key, o)
			case *api.Profile:
				idx.SetProfile(m.Name, o)
			case *api.NetworkPolicy:
				idx.SetPolicy(m.Namespace, m.Name, &o.Spec)
			case *api.GlobalNetworkPolicy:
				idx.SetPolicy("", m.Name, &o.Spec)
			}
		}
	}
	for _, o := range c.profiles() {
		add(o)
	}
	for n := range c.remote {
		add(c.node(n))
	}
	for j := range c.Endpoints {
		s := c.initialSlot(j)
		w, err := c.wep(endpoint{seq: j, at: s})
		if err != nil {
			t.Fatal(err)
		}
		if w.Spec.Node != c.nodeName(s.node) || !c.blockOf(s).Contains(c.addr(s)) {
			t.Fatalf("endpoint %d at %v: node %s, address %s outside block %s", j, s, w.Spec.Node, c.addr(s), c.blockOf(s))
		}
		add(w)
	}
	for _, p := range append(c.policies(), probe()) {
		add(p)
	}
	for i := range c.Local {
		w, err := c.localWEP(i)
		if err != nil {
			t.Fatal(err)
		}
		add(w)
	}
	off, err := c.probeWEP(false)
	if err != nil {
		t.Fatal(err)
	}
	add(off)

	small, large := 0, 0
	for _, o := range c.policies() {
		m := o.GetObjectMeta()
		kind := policy.KindGlobalPolicy
		if m.Namespace != "" {
			kind = policy.KindPolicy
		}
		for _, d := range policy.Directions {
			// The first node that programs the policy shows its sets; they are the same on every one.
			id := policy.RuleSetID{Kind: kind, Namespace: m.Namespace, Name: m.Name, Dir: d}
			var node *policy.Index
			var rules []policy.Rule
			for _, x := range everyNode {
				if rs, ok := x.RuleSet(id); ok {
					node, rules = x, rs
					break
				}
			}
			for _, r := range rules {
				for _, set := range append([]string{r.Src.Set, r.Dst.Set}, r.Dst.NamedPorts...) {
					members, _ := node.Set(set)
					switch {
					case set == "":
					case len(members) <= c.Endpoints/20:
						small++
					case len(members) >= c.Endpoints/4:
						large++
					}
				}
			}
		}
	}
	t.Logf("rule sets: %d small (up to 5 %% of the endpoints), %d large (a quarter or more)", small, large)
	if small < c.Policies/2 || large == 0 {
		t.Errorf("policies use %d small sets and %d large ones; want most small and some large", small, large)
	}

	rules, ok := idx.RuleSet(policy.RuleSetID{Kind: policy.KindGlobalPolicy, Name: probePolicy, Dir: policy.Ingress})
	if !ok || len(rules) != 1 {
		t.Fatalf("probe policy rules: %v, %v", rules, ok)
	}
	probeAddr := c.addr(c.probeSlot())
	for _, on := range []bool{true, false} {
		w, err := c.probeWEP(on)
		if err != nil {
			t.Fatal(err)
		}
		api.Default(w)
		idx.SetEndpoint(datastore.ResourceKey(api.KindOf(w), w.Namespace, w.Name), w)
		members, _ := idx.Set(rules[0].Src.Set)
		if want := map[bool]int{true: 1, false: 0}[on]; len(members) != want || (on && members[0].Addr != probeAddr) {
			t.Errorf("probe on=%v: set holds %v, want the probe's address %s %d times", on, members, probeAddr, want)
		}
	}
}
