package firewall

import (
	"maps"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// policyState records how the policy model maps onto the table: the plan chains each interface
// dispatches to, and how many interfaces share each plan chain (endpoints with equal plans share one,
// so the number of endpoint chains follows the number of distinct plans, not of endpoints).
type policyState struct {
	ifacePlans map[string][2]string // by policy.Direction
	planUsers  map[string]int
}

// ApplyPolicy brings the policy part of the table in line with idx; ch is what changed in idx since
// the previous call. Only the objects ch touches are recomputed and only their differences written,
// in one transaction. The first call writes everything and removes what an earlier process left
// behind, atomically, so traffic the policy allows keeps flowing across an agent restart.
func (f *Firewall) ApplyPolicy(idx *policy.Index, ch policy.Changes) error {
	if f.err != nil {
		return f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.policyKnown {
		// Write everything, and delete what an earlier process wrote that is no longer wanted.
		f.policyKnown, f.sweep = true, true
		ch = idx.All()
		f.plans = policyState{ifacePlans: map[string][2]string{}, planUsers: map[string]int{}}
		for _, m := range []string{fromWLMap, toWLMap} {
			f.want[m] = &object{kind: mapKind, set: ifaceVerdicts, elems: map[string]string{}}
		}
	}
	touched := map[string]struct{}{}
	put := func(name string, o *object) {
		if o == nil {
			delete(f.want, name)
		} else {
			f.want[name] = o
		}
		touched[name] = struct{}{}
	}
	for id := range ch.Sets {
		members, ok := idx.Set(id)
		for _, family := range []int{4, 6} {
			if ok {
				put(setName(id, family), policySet(id, members, family))
			} else {
				put(setName(id, family), nil)
			}
		}
	}
	for id := range ch.RuleSets {
		if rules, ok := idx.RuleSet(id); ok {
			put(ruleSetChain(id), &object{kind: chainKind, rules: renderRules(rules), origin: id.String()})
		} else {
			put(ruleSetChain(id), nil)
		}
	}
	for iface := range ch.Interfaces {
		f.dispatch(idx, iface, put)
	}
	return f.commit(slices.Sorted(maps.Keys(touched)))
}

// policySet is the nftables set of one family of a policy set's members: addresses, or for a named-port
// set address, protocol and port, the way render matches them.
func policySet(id string, members []policy.Member, family int) *object {
	named := policy.IsNamedPortSet(id)
	o := &object{kind: setKind, set: addrsOf(family), elems: map[string]string{}}
	if named {
		o.set = namedPortsOf(family)
	}
	for _, m := range members {
		if m.Addr.Is4() != (family == 4) {
			continue
		}
		if named {
			o.elems[namedPortElem(m.Addr, m.Proto, m.Port)] = ""
		} else {
			o.elems[m.Addr.String()] = ""
		}
	}
	return o
}

// dispatch points an interface's map elements at the plan chains of its endpoint (creating a plan chain
// with its first user) or removes them, deleting plan chains nobody uses any more.
func (f *Firewall) dispatch(idx *policy.Index, iface string, put func(string, *object)) {
	ep, ok := idx.Interface(iface)
	if ok && !validIface.MatchString(iface) {
		f.log.Warn("not programming policy for an endpoint whose interface name is not [a-zA-Z0-9_.-]{1,15}", "interface", iface)
		ok = false
	}
	old, had := f.plans.ifacePlans[iface]
	dispatchMaps := [2]*object{f.want[toWLMap], f.want[fromWLMap]} // by Direction
	if ok {
		var chains [2]string
		for _, d := range policy.Directions {
			chains[d] = planChain(d, ep.Plans[d])
			if f.plans.planUsers[chains[d]] == 0 {
				put(chains[d], &object{kind: chainKind, rules: renderPlan(ep.Plans[d]), origin: "policy plan of " + ep.Key})
			}
			f.plans.planUsers[chains[d]]++
			dispatchMaps[d].elems[iface] = "goto " + chains[d]
		}
		f.plans.ifacePlans[iface] = chains
	} else {
		delete(f.plans.ifacePlans, iface)
		for _, m := range dispatchMaps {
			delete(m.elems, iface)
		}
	}
	put(toWLMap, dispatchMaps[policy.Ingress])
	put(fromWLMap, dispatchMaps[policy.Egress])
	if had {
		for _, chain := range old {
			if f.plans.planUsers[chain]--; f.plans.planUsers[chain] == 0 {
				delete(f.plans.planUsers, chain)
				put(chain, nil)
			}
		}
	}
}
