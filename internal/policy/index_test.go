package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

const node = "host1"

// world is a small cluster: a1, a2 on network "net-a", b1 on "net-b" (all local), r1 on "net-a" on
// another node. Each network's profile is the one the driver writes.
func world(t *testing.T) *Index {
	t.Helper()
	x := NewIndex(node)
	x.SetProfile("net-a", networkProfile("net-a"))
	x.SetProfile("net-b", networkProfile("net-b"))
	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, nil))
	x.SetEndpoint("a2", wep(node, "calia2", "10.0.0.2", []string{"net-a"}, nil))
	x.SetEndpoint("b1", wep(node, "calib1", "10.0.1.1", []string{"net-b"}, map[string]string{"role": "web"}))
	x.SetEndpoint("r1", wep("host2", "calir1", "10.0.2.1", []string{"net-a"}, nil))
	x.TakeChanges()
	return x
}

func networkProfile(name string) *api.Profile {
	return &api.Profile{Spec: api.ProfileSpec{
		LabelsToApply: map[string]string{name: ""},
		Ingress:       []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: "has(" + name + ")"}}},
		Egress:        []api.Rule{{Action: api.ActionAllow}},
	}}
}

func wep(node, iface, ip string, profiles []string, labels map[string]string) *api.WorkloadEndpoint {
	w := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: node, InterfaceName: iface,
		IPNetworks: []string{ip + "/32"}, Profiles: profiles}}
	w.Namespace = "libnetwork"
	w.Labels = map[string]string{api.LabelNamespace: "libnetwork"}
	maps.Copy(w.Labels, labels)
	return w
}

func gnp(order float64, sel string, types []string, ingress, egress []api.Rule) *api.PolicySpec {
	return &api.PolicySpec{Order: &order, Selector: sel, Types: types, Ingress: ingress, Egress: egress, Tier: "default"}
}

func tcp() *api.Protocol { p, _ := api.ProtocolFromString("TCP"); return &p }

func port(n uint16) api.Port { return api.Port{MinPort: n, MaxPort: n} }

func addr(key string, x *Index) netip.Addr { return x.endpoints[key].addrs[0] }

// allowed reports whether a TCP (port > 0) or ICMP echo packet from one endpoint to another gets
// through: the sender's egress plan if it is local, then the receiver's ingress plan if local.
func allowed(x *Index, from, to string, dport uint16) bool {
	pkt := packet{src: addr(from, x), dst: addr(to, x), proto: 1, icmpType: 8}
	if dport > 0 {
		pkt.proto, pkt.dport = 6, dport
	}
	if ep, ok := x.Interface(x.endpoints[from].iface); ok && x.endpoints[from].local && !x.verdict(ep.Plans[Egress], pkt) {
		return false
	}
	if ep, ok := x.Interface(x.endpoints[to].iface); ok && x.endpoints[to].local {
		return x.verdict(ep.Plans[Ingress], pkt)
	}
	return true
}

// matrix renders who reaches whom ("a1>a2 r1>a2"): from any endpoint to the local ones, whose ingress
// this host decides.
func matrix(x *Index, dport uint16) string {
	var b strings.Builder
	for _, from := range []string{"a1", "a2", "b1", "r1"} {
		for _, to := range []string{"a1", "a2", "b1"} {
			if from != to && allowed(x, from, to, dport) {
				fmt.Fprintf(&b, "%s>%s ", from, to)
			}
		}
	}
	return strings.TrimSpace(b.String())
}

func TestSemantics(t *testing.T) {
	allowFromWeb := []api.Rule{{Action: api.ActionAllow, Protocol: tcp(),
		Source: api.EntityRule{Selector: "role == 'web'"}, Destination: api.EntityRule{Ports: []api.Port{port(80)}}}}
	for _, tc := range []struct {
		name        string
		setup       func(x *Index)
		icmp, tcp80 string // the expected matrices
	}{
		{name: "profiles isolate networks", icmp: "a1>a2 a2>a1 r1>a1 r1>a2", tcp80: "a1>a2 a2>a1 r1>a1 r1>a2"},
		{name: "a policy applies, so the tier ends in a drop and the profile is not reached",
			setup: func(x *Index) {
				x.SetPolicy("", "web-to-a", gnp(100, "has(net-a)", []string{"Ingress"}, allowFromWeb, nil))
			},
			icmp: "", tcp80: "b1>a1 b1>a2"},
		{name: "Pass hands what the tier does not decide to the profiles",
			setup: func(x *Index) {
				x.SetPolicy("", "web-to-a", gnp(100, "has(net-a)", []string{"Ingress"}, allowFromWeb, nil))
				x.SetPolicy("", "rest", gnp(200, "has(net-a)", []string{"Ingress"}, []api.Rule{{Action: api.ActionPass}}, nil))
			},
			icmp: "a1>a2 a2>a1 r1>a1 r1>a2", tcp80: "a1>a2 a2>a1 b1>a1 b1>a2 r1>a1 r1>a2"},
		{name: "lower order decides first: a Deny before the Allow",
			setup: func(x *Index) {
				x.SetPolicy("", "web-to-a", gnp(100, "has(net-a)", []string{"Ingress"}, allowFromWeb, nil))
				x.SetPolicy("", "deny-a1", gnp(50, "has(net-a)", []string{"Ingress"},
					[]api.Rule{{Action: api.ActionDeny, Destination: api.EntityRule{Nets: []string{"10.0.0.1/32"}}}}, nil))
			},
			icmp: "", tcp80: "b1>a2"},
		{name: "equal orders go by name",
			setup: func(x *Index) {
				x.SetPolicy("", "b-allow", gnp(10, "has(net-a)", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow}}, nil))
				x.SetPolicy("", "a-deny", gnp(10, "has(net-a)", []string{"Ingress"}, []api.Rule{{Action: api.ActionDeny}}, nil))
			},
			icmp: "", tcp80: ""},
		{name: "an Egress-only policy leaves ingress to the profiles",
			setup: func(x *Index) {
				x.SetPolicy("", "no-egress", gnp(1, "all()", []string{"Egress"}, nil, []api.Rule{{Action: api.ActionDeny,
					Destination: api.EntityRule{NotSelector: "has(net-a)"}}}))
			},
			// It denies egress to other networks and decides nothing else, so the end of the tier drops the
			// rest of every local endpoint's egress; r1's egress is its own host's business.
			icmp: "r1>a1 r1>a2", tcp80: "r1>a1 r1>a2"},
		{name: "a tier with defaultAction Pass and an earlier order",
			setup: func(x *Index) {
				order := 10.0
				x.SetTier("security", &api.Tier{Spec: api.TierSpec{Order: &order, DefaultAction: "Pass"}})
				p := gnp(1, "has(net-a)", []string{"Ingress"}, []api.Rule{{Action: api.ActionDeny, Source: api.EntityRule{Nets: []string{"10.0.2.0/24"}}}}, nil)
				p.Tier = "security"
				x.SetPolicy("", "block-remote", p)
				x.SetPolicy("", "allow-all", gnp(1, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow}}, nil))
			},
			icmp:  "a1>a2 a1>b1 a2>a1 a2>b1 b1>a1 b1>a2 r1>b1",
			tcp80: "a1>a2 a1>b1 a2>a1 a2>b1 b1>a1 b1>a2 r1>b1"},
		{name: "ipVersion, notNets and notProtocol narrow a rule",
			setup: func(x *Index) {
				v6 := 6
				x.SetPolicy("", "v6-only", gnp(1, "all()", []string{"Ingress"}, []api.Rule{
					{Action: api.ActionAllow, IPVersion: &v6},
					{Action: api.ActionAllow, NotProtocol: tcp(), Source: api.EntityRule{NotNets: []string{"10.0.0.0/24"}}},
				}, nil))
			},
			icmp: "b1>a1 b1>a2 r1>a1 r1>a2 r1>b1", tcp80: ""},
		{name: "a NetworkPolicy selects only in its namespace",
			setup: func(x *Index) {
				x.SetPolicy("other", "deny", gnp(1, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionDeny}}, nil))
			},
			icmp: "a1>a2 a2>a1 r1>a1 r1>a2", tcp80: "a1>a2 a2>a1 r1>a1 r1>a2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := world(t)
			if tc.setup != nil {
				tc.setup(x)
			}
			if got := matrix(x, 0); got != tc.icmp {
				t.Errorf("ICMP: got %q, want %q", got, tc.icmp)
			}
			if got := matrix(x, 80); got != tc.tcp80 {
				t.Errorf("TCP 80: got %q, want %q", got, tc.tcp80)
			}
		})
	}
}

// Endpoints with equal labels share one set, own and effective, and the sets go when the last user does.
func TestLabelSetsShared(t *testing.T) {
	x := NewIndex(node)
	x.SetProfile("p", &api.Profile{Spec: api.ProfileSpec{LabelsToApply: map[string]string{"team": "a"}}})
	app := map[string]string{"app": "web"}
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		x.SetEndpoint(fmt.Sprint(i), wep("other", "", ip, []string{"p"}, maps.Clone(app)))
	}
	x.SetEndpoint("plain", wep("other", "", "10.0.0.4", nil, maps.Clone(app)))
	distinct := func() int {
		n := 0
		for _, b := range x.labelSets.byHash {
			n += len(b)
		}
		return n
	}
	e0, e1, plain := x.endpoints["0"], x.endpoints["1"], x.endpoints["plain"]
	if e0.own != e1.own || e0.labels != e1.labels || e0.own != plain.own || plain.labels != plain.own {
		t.Error("equal labels are held more than once")
	}
	if n := distinct(); n != 2 {
		t.Errorf("%d label sets, want 2 (own, and with the profile's)", n)
	}
	x.SetEndpoint("1", wep("other", "", "10.0.0.2", []string{"p"}, map[string]string{"app": "db"}))
	if e0.labels == e1.labels || e1.labels.m["app"] != "db" || e1.labels.m["team"] != "a" || e0.labels.m["app"] != "web" {
		t.Errorf("after a label change: %v and %v", e0.labels.m, e1.labels.m)
	}
	x.SetProfile("p", &api.Profile{Spec: api.ProfileSpec{LabelsToApply: map[string]string{"team": "b"}}})
	if e0.labels.m["team"] != "b" || e1.labels.m["team"] != "b" || plain.labels.m["team"] != "" {
		t.Errorf("after the profile changed: %v, %v, %v", e0.labels.m, e1.labels.m, plain.labels.m)
	}
	for _, key := range []string{"0", "1", "2", "plain"} {
		x.SetEndpoint(key, nil)
	}
	if n := distinct(); n != 0 {
		t.Errorf("%d label sets left after every endpoint went", n)
	}
}

func TestLabelInheritance(t *testing.T) {
	x := NewIndex(node)
	x.SetProfile("p1", &api.Profile{Spec: api.ProfileSpec{LabelsToApply: map[string]string{"a": "p1", "b": "p1"}}})
	x.SetProfile("p2", &api.Profile{Spec: api.ProfileSpec{LabelsToApply: map[string]string{"b": "p2", "c": "p2"}}})
	x.SetEndpoint("e", wep(node, "calie", "10.0.0.1", []string{"p1", "p2"}, map[string]string{"a": "own"}))
	want := map[string]string{api.LabelNamespace: "libnetwork", "a": "own", "b": "p1", "c": "p2"}
	if got := x.endpoints["e"].labels.m; !maps.Equal(got, want) {
		t.Errorf("effective labels %v, want %v", got, want)
	}
	// Selectors see inherited labels, and follow a profile's labelsToApply as it changes.
	x.SetPolicy("", "c", gnp(1, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: "c == 'p2'"}}}, nil))
	id := onlySet(t, x)
	expectMembers(t, x, id, "10.0.0.1")
	x.TakeChanges()
	x.SetProfile("p2", &api.Profile{Spec: api.ProfileSpec{LabelsToApply: map[string]string{"c": "changed"}}})
	expectMembers(t, x, id)
	if c := x.TakeChanges(); !slices.Equal(slices.Collect(maps.Keys(c.Sets)), []string{id}) {
		t.Errorf("changed sets %v, want [%s]", c.Sets, id)
	}
	x.SetProfile("p2", nil)
	if got := x.endpoints["e"].labels.m["c"]; got != "" {
		t.Errorf("label c = %q after its profile went", got)
	}
}

func onlySet(t *testing.T, x *Index) string {
	t.Helper()
	if len(x.sets) != 1 {
		t.Fatalf("want one set, have %d", len(x.sets))
	}
	for id := range x.sets {
		return id
	}
	return ""
}

func expectMembers(t *testing.T, x *Index, id string, want ...string) {
	t.Helper()
	members, _ := x.Set(id)
	got := make([]string, len(members))
	for i, a := range members {
		got[i] = a.String()
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("set %s = %v, want %v", id, got, want)
	}
}

// A label change re-evaluates that endpoint only, and reports exactly the sets whose members changed
// and the interfaces whose plans changed.
func TestIncrementalChanges(t *testing.T) {
	x := world(t)
	x.SetPolicy("", "web", gnp(1, "role == 'web'", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow,
		Source: api.EntityRule{Selector: "role == 'db'"}}}, nil))
	c := x.TakeChanges()
	dbSet := setID(t, "role == 'db'")
	if want := []string{dbSet}; !sameKeys(c.Sets, want) {
		t.Errorf("new policy: sets %v, want %v (has(net-a)/has(net-b) exist already)", keys(c.Sets), want)
	}
	if want := []string{"calib1"}; !sameKeys(c.Interfaces, want) {
		t.Errorf("new policy: interfaces %v, want %v", keys(c.Interfaces), want)
	}
	if !sameKeys(c.RuleSets, []RuleSetID{{Kind: KindGlobalPolicy, Name: "web", Dir: Ingress}}) {
		t.Errorf("new policy: rule sets %v", keys(c.RuleSets))
	}

	// r1 (remote) becomes a db: one set gains it; no local plan changes.
	x.SetEndpoint("r1", wep("host2", "calir1", "10.0.2.1", []string{"net-a"}, map[string]string{"role": "db"}))
	c = x.TakeChanges()
	if !sameKeys(c.Sets, []string{dbSet}) || len(c.Interfaces) != 0 || len(c.RuleSets) != 0 {
		t.Errorf("remote label change: %+v", c)
	}
	expectMembers(t, x, dbSet, "10.0.2.1")

	// a1 becomes a web: the policy now applies to it (its plan changes). No rule uses role == 'web', so
	// no set changes.
	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, map[string]string{"role": "web"}))
	c = x.TakeChanges()
	if len(c.Sets) != 0 || !sameKeys(c.Interfaces, []string{"calia1"}) {
		t.Errorf("local label change: sets %v interfaces %v", keys(c.Sets), keys(c.Interfaces))
	}

	// The same update again changes nothing.
	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, map[string]string{"role": "web"}))
	if c := x.TakeChanges(); len(c.Sets)+len(c.RuleSets)+len(c.Interfaces)+len(c.Warnings) > 0 {
		t.Errorf("repeated update: %+v", c)
	}

	// A rule-only change rewrites the rules and nothing else; the old selector's set goes.
	x.SetPolicy("", "web", gnp(1, "role == 'web'", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow,
		Source: api.EntityRule{Nets: []string{"10.9.0.0/16"}}}}, nil))
	c = x.TakeChanges()
	if !sameKeys(c.Sets, []string{dbSet}) || len(c.Interfaces) != 0 || len(c.RuleSets) != 1 {
		t.Errorf("rule change: %+v", c)
	}
	if _, ok := x.Set(dbSet); ok {
		t.Error("unused set still present")
	}

	// Deleting an endpoint removes it from its sets and its interface.
	x.SetEndpoint("a2", nil)
	c = x.TakeChanges()
	if !sameKeys(c.Sets, []string{setID(t, "has(net-a)")}) || !sameKeys(c.Interfaces, []string{"calia2"}) {
		t.Errorf("delete: sets %v interfaces %v", keys(c.Sets), keys(c.Interfaces))
	}
	if _, ok := x.Interface("calia2"); ok {
		t.Error("deleted endpoint still owns its interface")
	}
}

func setID(t *testing.T, sel string) string {
	t.Helper()
	s, err := selector.Parse(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.UniqueID()
}

func keys[K comparable](m map[K]struct{}) []K { return slices.Collect(maps.Keys(m)) }

func sameKeys[K comparable](m map[K]struct{}, want []K) bool {
	if len(m) != len(want) {
		return false
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}
