package policy

import "slices"

// A policy or profile is active when a local endpoint's plan refers to it, as Felix's active-rules
// calculator has it: only active owners resolve their rules and hold IP sets, so a host programs the
// chains and sets its own endpoints need, not the whole cluster's. Plans are the only source of
// activity, so no plan can refer to an owner without rules: every change of a local endpoint's plans
// goes through setPlans, which activates what the new plans use before it deactivates what the old
// ones used.

// ownerKey names a policy or profile regardless of direction: its RuleSetID with Dir Ingress.
func ownerKey(id RuleSetID) RuleSetID {
	id.Dir = Ingress
	return id
}

// active reports whether a local endpoint's plan refers to the owner.
func (x *Index) active(o *ruleOwner) bool { return x.uses[o.ids[Ingress]] > 0 }

// resolve gives the owner the rules of its spec when it is active, and none (releasing its sets) when
// it is not.
func (x *Index) resolve(o *ruleOwner) {
	if x.active(o) {
		x.setRules(o, o.spec)
	} else {
		x.setRules(o, ruleSpec{})
	}
}

// setPlans replaces a local endpoint's plans (with none when it stops being local) and counts the
// owners they use, resolving those that become active or inactive.
func (x *Index) setPlans(ep *endpoint, plans [2]Plan) {
	old := ep.plans
	ep.plans = plans
	x.use(plans, +1)
	x.use(old, -1)
}

func (x *Index) use(plans [2]Plan, delta int) {
	for _, p := range plans {
		for _, id := range p.owners() {
			key := ownerKey(id)
			before := x.uses[key]
			if after := before + delta; after == 0 {
				delete(x.uses, key)
			} else {
				x.uses[key] = after
			}
			if (before == 0) == (x.uses[key] == 0) {
				continue
			}
			if o := x.owner(key); o != nil {
				x.resolve(o)
			}
		}
	}
}

// owners lists the policies and profiles a plan refers to.
func (p Plan) owners() []RuleSetID {
	ids := slices.Clone(p.Profiles)
	for _, t := range p.Tiers {
		ids = append(ids, t.Policies...)
	}
	return ids
}
