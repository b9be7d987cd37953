package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// A policy that selects no local endpoint has neither rules nor sets, whatever remote endpoints it
// selects; a local endpoint gaining (by its own labels or a profile's) and losing the label turns it on
// and off, and each step is reported.
func TestActivePolicy(t *testing.T) {
	x := world(t)
	id := RuleSetID{Kind: KindGlobalPolicy, Name: "db", Dir: Ingress}
	clients := setID(t, "role == 'client'")
	x.SetPolicy("", "db", gnp(1, "role == 'db'", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow,
		Source: api.EntityRule{Selector: "role == 'client'"}}}, nil))
	x.SetEndpoint("r1", wep("host2", "calir1", "10.0.2.1", []string{"net-a"}, map[string]string{"role": "db"}))
	x.SetEndpoint("r2", wep("host2", "calir2", "10.0.2.2", nil, map[string]string{"role": "client"}))
	expectInactive(t, x, id, clients)
	if c := x.TakeChanges(); len(c.RuleSets)+len(c.Sets) != 0 {
		t.Errorf("inactive policy reported: rule sets %v sets %v", keys(c.RuleSets), keys(c.Sets))
	}

	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, map[string]string{"role": "db"}))
	c := x.TakeChanges()
	if !sameKeys(c.RuleSets, []RuleSetID{id}) || !sameKeys(c.Sets, []string{clients}) || !sameKeys(c.Interfaces, []string{"calia1"}) {
		t.Errorf("activation: rule sets %v sets %v interfaces %v", keys(c.RuleSets), keys(c.Sets), keys(c.Interfaces))
	}
	if rules, ok := x.RuleSet(id); !ok || len(rules) != 1 || rules[0].Src.Set != clients {
		t.Errorf("active rules %+v, %v", rules, ok)
	}
	expectMembers(t, x, clients, "10.0.2.2") // a remote member

	// Remote endpoints only change members.
	x.SetEndpoint("r1", nil)
	x.SetEndpoint("r3", wep("host2", "calir3", "10.0.2.3", nil, map[string]string{"role": "client"}))
	c = x.TakeChanges()
	if _, ok := c.Sets[clients]; !ok || len(c.RuleSets)+len(c.Interfaces) != 0 {
		t.Errorf("remote changes: %+v", c)
	}
	expectMembers(t, x, clients, "10.0.2.2", "10.0.2.3")

	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, nil))
	c = x.TakeChanges()
	if !sameKeys(c.RuleSets, []RuleSetID{id}) || !sameKeys(c.Sets, []string{clients}) {
		t.Errorf("deactivation: rule sets %v sets %v", keys(c.RuleSets), keys(c.Sets))
	}
	expectInactive(t, x, id, clients)

	// A profile's labelsToApply reach local endpoints too.
	dbs := networkProfile("net-a")
	dbs.Spec.LabelsToApply["role"] = "db"
	x.SetProfile("net-a", dbs)
	if _, ok := x.RuleSet(id); !ok {
		t.Error("a profile label did not activate the policy")
	}
	expectMembers(t, x, clients, "10.0.2.2", "10.0.2.3")
	x.SetProfile("net-a", networkProfile("net-a"))
	expectInactive(t, x, id, clients)

	// Removing the last local endpoint the policy applies to deactivates it as well.
	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, map[string]string{"role": "db"}))
	x.SetEndpoint("a1", nil)
	expectInactive(t, x, id, clients)
}

func expectInactive(t *testing.T, x *Index, id RuleSetID, set string) {
	t.Helper()
	if _, ok := x.RuleSet(id); ok {
		t.Errorf("%s has rules while no local endpoint uses it", id)
	}
	if _, ok := x.Set(set); ok {
		t.Errorf("set %s exists for an inactive policy", set)
	}
}

// A profile only remote endpoints name has no rules; a local endpoint naming it activates it.
func TestActiveProfile(t *testing.T) {
	x := world(t)
	x.SetProfile("net-c", networkProfile("net-c"))
	x.SetEndpoint("r1", wep("host2", "calir1", "10.0.2.1", []string{"net-c"}, nil))
	id, set := RuleSetID{Kind: KindProfile, Name: "net-c", Dir: Ingress}, setID(t, "has(net-c)")
	expectInactive(t, x, id, set)
	x.TakeChanges()

	x.SetEndpoint("c1", wep(node, "calic1", "10.0.3.1", []string{"net-c"}, nil))
	c := x.TakeChanges()
	egress := RuleSetID{Kind: KindProfile, Name: "net-c", Dir: Egress}
	if !sameKeys(c.RuleSets, []RuleSetID{id, egress}) || !sameKeys(c.Sets, []string{set}) {
		t.Errorf("activation: rule sets %v sets %v", keys(c.RuleSets), keys(c.Sets))
	}
	expectMembers(t, x, set, "10.0.2.1", "10.0.3.1")
	ep, _ := x.Interface("calic1")
	if !slices.Equal(ep.Plans[Ingress].Profiles, []RuleSetID{id}) {
		t.Errorf("plan %+v", ep.Plans[Ingress])
	}

	// Moving the endpoint to another node deactivates the profile.
	x.SetEndpoint("c1", wep("host3", "calic1", "10.0.3.1", []string{"net-c"}, nil))
	expectInactive(t, x, id, set)
}

// A NetworkPolicy is active only for local endpoints in its namespace.
func TestActiveNamespacedPolicy(t *testing.T) {
	x := world(t)
	id := RuleSetID{Kind: KindPolicy, Namespace: "other", Name: "deny", Dir: Ingress}
	x.SetPolicy("other", "deny", gnp(1, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionDeny,
		Source: api.EntityRule{Selector: "all()"}}}, nil))
	inOther := func(w *api.WorkloadEndpoint) *api.WorkloadEndpoint {
		w.Namespace, w.Labels[api.LabelNamespace] = "other", "other"
		return w
	}
	x.SetEndpoint("r1", inOther(wep("host2", "calir1", "10.0.2.1", nil, nil)))
	if _, ok := x.RuleSet(id); ok || len(x.sets) != 2 { // has(net-a), has(net-b)
		t.Errorf("active for a remote endpoint in its namespace: %d sets", len(x.sets))
	}
	x.SetEndpoint("o1", inOther(wep(node, "calio1", "10.0.4.1", nil, nil)))
	rules, ok := x.RuleSet(id)
	if !ok {
		t.Fatal("not active for a local endpoint in its namespace")
	}
	set := rules[0].Src.Set
	expectMembers(t, x, set, "10.0.2.1", "10.0.4.1")
	x.SetEndpoint("o1", wep(node, "calio1", "10.0.4.1", nil, nil)) // moved to namespace libnetwork
	expectInactive(t, x, id, set)
}

// Unenforced and the warnings cover active policies only.
func TestWarningsOfActivePoliciesOnly(t *testing.T) {
	x := world(t)
	x.SetPolicy("", "http", gnp(1, "role == 'db'", []string{"Ingress"},
		[]api.Rule{{Action: api.ActionAllow, HTTP: json.RawMessage(`{"methods":["GET"]}`)}}, nil))
	if c := x.TakeChanges(); len(c.Warnings) != 0 || x.Unenforced() != 0 {
		t.Errorf("inactive policy: warnings %q, unenforced %d", c.Warnings, x.Unenforced())
	}
	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, map[string]string{"role": "db"}))
	if c := x.TakeChanges(); len(c.Warnings) != 1 || x.Unenforced() != 1 {
		t.Errorf("active policy: warnings %q, unenforced %d", c.Warnings, x.Unenforced())
	}
	x.SetEndpoint("a1", nil)
	if n := x.Unenforced(); n != 0 {
		t.Errorf("unenforced %d after deactivation", n)
	}
}

// cluster is the datastore's content in a randomized test, to build an index from scratch.
type cluster struct {
	endpoints map[string]*api.WorkloadEndpoint
	profiles  map[string]*api.Profile
	policies  map[policyKey]*api.PolicySpec
	tiers     map[string]*api.Tier
}

func (c *cluster) index() *Index {
	x := NewIndex(node)
	for name, t := range c.tiers {
		x.SetTier(name, t)
	}
	for name, p := range c.profiles {
		x.SetProfile(name, p)
	}
	for k, p := range c.policies {
		x.SetPolicy(k.namespace, k.name, p)
	}
	for key, w := range c.endpoints {
		x.SetEndpoint(key, w)
	}
	return x
}

// For random sequences of endpoint (local and remote), profile, policy and tier changes, the index,
// and what its Changes told a renderer, always equal an index built from scratch: the same active rule
// sets, the same sets with the same members; every local plan uses only existing rule sets, and every
// active rule only existing sets.
func TestActiveRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(options ...string) string { return options[rng.IntN(len(options))] }
	sels := []string{"all()", "app == 'a'", "role == 'x'", "has(app)", "app == 'b' && role == 'y'", "!has(role)", "role == 'p'"}
	labels := func() map[string]string {
		l := map[string]string{}
		for _, k := range []string{"app", "role"} {
			if v := pick("", "a", "b", "x", "y"); v != "" {
				l[k] = v
			}
		}
		return l
	}
	randRules := func() []api.Rule {
		var rs []api.Rule
		for range rng.IntN(3) {
			r := api.Rule{Action: pick(api.ActionAllow, api.ActionDeny, api.ActionPass)}
			r.Source.Selector = pick("", "", sels[rng.IntN(len(sels))])
			r.Destination.NotSelector = pick("", "", "app == 'a'")
			if rng.IntN(3) == 0 {
				r.Protocol = tcp()
				r.Destination.Ports = []api.Port{{Name: "http"}}
			}
			if rng.IntN(8) == 0 {
				r.HTTP = json.RawMessage(`{"methods":["GET"]}`)
			}
			rs = append(rs, r)
		}
		return rs
	}
	c := &cluster{endpoints: map[string]*api.WorkloadEndpoint{}, profiles: map[string]*api.Profile{},
		policies: map[policyKey]*api.PolicySpec{}, tiers: map[string]*api.Tier{}}
	x := NewIndex(node)
	rendered := rendering{ruleSets: map[RuleSetID][]Rule{}, sets: map[string][]Member{}}
	for step := range 600 {
		var did string
		switch rng.IntN(4) {
		case 0, 1:
			key := fmt.Sprintf("e%d", rng.IntN(8))
			if rng.IntN(6) == 0 {
				c.endpoints[key] = nil
			} else {
				var profiles []string
				for _, p := range []string{"p0", "p1", "p2"} {
					if rng.IntN(3) == 0 {
						profiles = append(profiles, p)
					}
				}
				w := wep(pick(node, node, "host2"), "cali"+key, fmt.Sprintf("10.0.%d.%s", rng.IntN(2), key[1:]), profiles, labels())
				w.Namespace = pick("ns1", "ns2")
				w.Labels[api.LabelNamespace] = w.Namespace
				if rng.IntN(2) == 0 {
					w.Spec.Ports = []api.EndpointPort{{Name: "http", Protocol: proto("TCP"), Port: uint16(8000 + rng.IntN(2))}}
				}
				c.endpoints[key] = w
			}
			did = fmt.Sprintf("endpoint %s %+v", key, c.endpoints[key])
			x.SetEndpoint(key, c.endpoints[key])
		case 2:
			key := policyKey{pick("", "", "ns1", "ns2"), fmt.Sprintf("pol%d", rng.IntN(4))}
			var spec *api.PolicySpec
			if rng.IntN(5) != 0 {
				types := [][]string{{"Ingress"}, {"Egress"}, {"Ingress", "Egress"}}[rng.IntN(3)]
				spec = gnp(float64(rng.IntN(3)), sels[rng.IntN(len(sels))], types, randRules(), randRules())
				spec.Tier = pick("default", "default", "t1")
			}
			c.policies[key] = spec
			did = fmt.Sprintf("policy %v %+v", key, spec)
			x.SetPolicy(key.namespace, key.name, spec)
		case 3:
			if rng.IntN(4) == 0 {
				var tier *api.Tier
				if rng.IntN(2) == 0 {
					order := float64(rng.IntN(3))
					tier = &api.Tier{Spec: api.TierSpec{Order: &order, DefaultAction: pick("Deny", "Pass")}}
				}
				c.tiers["t1"] = tier
				did = fmt.Sprintf("tier t1 %+v", tier)
				x.SetTier("t1", tier)
				break
			}
			name := fmt.Sprintf("p%d", rng.IntN(3))
			var p *api.Profile
			if rng.IntN(5) != 0 {
				p = &api.Profile{Spec: api.ProfileSpec{Ingress: randRules(), Egress: randRules()}}
				if rng.IntN(2) == 0 {
					p.Spec.LabelsToApply = map[string]string{"role": pick("p", "x")}
				}
			}
			c.profiles[name] = p
			did = fmt.Sprintf("profile %s %+v", name, p)
			x.SetProfile(name, p)
		}
		rendered.apply(x, x.TakeChanges())
		fresh := c.index()
		want := rendering{ruleSets: map[RuleSetID][]Rule{}, sets: map[string][]Member{}}
		want.apply(fresh, fresh.All())
		if err := rendered.check(x, want); err != "" {
			t.Fatalf("step %d (%s): %s", step, did, err)
		}
		if x.Unenforced() != fresh.Unenforced() {
			t.Fatalf("step %d (%s): unenforced %d, from scratch %d", step, did, x.Unenforced(), fresh.Unenforced())
		}
	}
}

// rendering is what a renderer holds after applying Changes: rule sets and sets.
type rendering struct {
	ruleSets map[RuleSetID][]Rule
	sets     map[string][]Member
}

func (r rendering) apply(x *Index, c Changes) {
	for id := range c.RuleSets {
		if rules, ok := x.RuleSet(id); ok {
			r.ruleSets[id] = rules
		} else {
			delete(r.ruleSets, id)
		}
	}
	for id := range c.Sets {
		if members, ok := x.Set(id); ok {
			slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.String(), b.String()) })
			r.sets[id] = members
		} else {
			delete(r.sets, id)
		}
	}
}

// check compares r with want and checks that x's local plans and rules refer only to what r holds.
func (r rendering) check(x *Index, want rendering) string {
	if !reflect.DeepEqual(r.ruleSets, want.ruleSets) {
		return fmt.Sprintf("rule sets %v, from scratch %v", slices.Collect(maps.Keys(r.ruleSets)), slices.Collect(maps.Keys(want.ruleSets)))
	}
	if !maps.EqualFunc(r.sets, want.sets, slices.Equal[[]Member]) {
		return fmt.Sprintf("sets %v, from scratch %v", r.sets, want.sets)
	}
	for ep := range x.localEndpoints() {
		for _, p := range ep.plans {
			for _, id := range p.owners() {
				if _, ok := r.ruleSets[id]; !ok {
					return fmt.Sprintf("%s's plan uses %s, which has no rules", ep.key, id)
				}
			}
		}
	}
	for id, rules := range r.ruleSets {
		for _, rule := range rules {
			for _, e := range []Entity{rule.Src, rule.Dst} {
				for _, set := range slices.Concat([]string{e.Set, e.NotSet}, e.NamedPorts, e.NotNamedPorts) {
					if _, ok := r.sets[set]; set != "" && !ok {
						return fmt.Sprintf("%s uses set %s, which does not exist", id, set)
					}
				}
			}
		}
	}
	return ""
}
