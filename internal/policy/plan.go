package policy

import (
	"cmp"
	"iter"
	"maps"
	"math"
	"slices"
)

// defaultTier is the tier of policies that name none.
const defaultTier = "default"

// defaultTierOrder is the order of the default tier unless a Tier resource sets one, as in Calico.
const defaultTierOrder = 1_000_000

// plan lists, in evaluation order, the policies that apply to a local endpoint in one direction,
// grouped by tier, then its profiles that exist.
func (x *Index) plan(ep *endpoint, d Direction) Plan {
	var p Plan
	for _, pol := range x.sortedPolicies() {
		if !pol.types[d] || !pol.appliesTo(ep) {
			continue
		}
		if n := len(p.Tiers); n == 0 || p.Tiers[n-1].Name != pol.tier {
			p.Tiers = append(p.Tiers, TierPlan{Name: pol.tier, EndPass: x.tiers[pol.tier].DefaultAction == "Pass"})
		}
		t := &p.Tiers[len(p.Tiers)-1]
		t.Policies = append(t.Policies, pol.ids[d])
	}
	for _, name := range ep.profiles {
		id := RuleSetID{Kind: KindProfile, Name: name, Dir: d}
		if x.profiles[name] != nil && !slices.Contains(p.Profiles, id) {
			p.Profiles = append(p.Profiles, id)
		}
	}
	return p
}

// sortedPolicies returns every policy in Calico's evaluation order: by tier (tiers without a Tier
// resource last, as Felix's invalid tiers; then order, unset last; then name), then by policy order (unset last), then as Felix breaks ties: by the text
// "<name>/<namespace>/<kind>".
func (x *Index) sortedPolicies() []*policyEntry {
	if x.sortedOK {
		return x.sorted
	}
	x.sorted = slices.SortedFunc(maps.Values(x.policies), func(a, b *policyEntry) int {
		return cmp.Or(
			cmp.Compare(x.tierMissing(a.tier), x.tierMissing(b.tier)),
			cmp.Compare(x.tierOrder(a.tier), x.tierOrder(b.tier)),
			cmp.Compare(a.tier, b.tier),
			cmp.Compare(a.order, b.order),
			cmp.Compare(a.tie, b.tie),
		)
	})
	x.sortedOK = true
	return x.sorted
}

// tierMissing is 1 for a tier that has no Tier resource (the default tier always counts as present, as
// calico/node and this daemon create it), else 0.
func (x *Index) tierMissing(name string) int {
	if _, ok := x.tiers[name]; ok || name == defaultTier {
		return 0
	}
	return 1
}

func (x *Index) tierOrder(name string) float64 {
	if t, ok := x.tiers[name]; ok && t.Order != nil {
		return *t.Order
	}
	if name == defaultTier {
		return defaultTierOrder
	}
	return math.Inf(1)
}

// localEndpoints yields every local endpoint (including any that lost an interface to another).
func (x *Index) localEndpoints() iter.Seq[*endpoint] {
	return func(yield func(*endpoint) bool) {
		for _, eps := range x.byIface {
			for ep := range eps {
				if !yield(ep) {
					return
				}
			}
		}
	}
}
