package policy

import (
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// Index holds the policy model for one node and updates it incrementally. It is not safe for concurrent
// use: one goroutine feeds it and renders from it.
type Index struct {
	node       string
	endpoints  map[string]*endpoint              // by datastore key, every node's
	labelSets  *labelSets                        // endpoints' labels, each distinct set once
	byProfile  map[string]map[*endpoint]struct{} // profile name → endpoints naming it
	byIface    map[string]map[*endpoint]struct{} // local endpoints by interface
	profiles   map[string]*profileEntry          // by name
	policies   map[policyKey]*policyEntry        // by namespace ("" = global) and name
	tiers      map[string]api.TierSpec           // by name
	sets       map[string]*ipSet                 // by selector unique ID
	sorted     []*policyEntry                    // policies in evaluation order, when sortedOK
	sortedOK   bool                              // false after a policy's placement or a tier changed
	uses       map[RuleSetID]int                 // ownerKey → references from local endpoints' plans
	changes    Changes                           // since the last TakeChanges
	unenforced int                               // rules enforced failing closed, of the active owners
}

// NewIndex returns an empty index for the node named node.
func NewIndex(node string) *Index {
	return &Index{
		node:      node,
		endpoints: map[string]*endpoint{},
		labelSets: newLabelSets(),
		byProfile: map[string]map[*endpoint]struct{}{},
		byIface:   map[string]map[*endpoint]struct{}{},
		profiles:  map[string]*profileEntry{},
		policies:  map[policyKey]*policyEntry{},
		tiers:     map[string]api.TierSpec{},
		sets:      map[string]*ipSet{},
		uses:      map[RuleSetID]int{},
		changes:   newChanges(),
	}
}

// TakeChanges returns what changed since the previous call and starts a new list.
func (x *Index) TakeChanges() Changes {
	c := x.changes
	x.changes = newChanges()
	return c
}

// Unenforced counts the rules, of the active policies and profiles (the ones programmed: Felix too renders
// only those), that match something this dataplane cannot enforce and so are enforced failing closed (an
// Allow or Log left out, a Deny or Pass denying a superset). Changes.Warnings explains them as they
// become active or change.
func (x *Index) Unenforced() int { return x.unenforced }

// All lists every set, rule list and local interface as changed: what a renderer needs to write
// everything, e.g. after a restart or when the kernel drifted.
func (x *Index) All() Changes {
	c := newChanges()
	for id := range x.sets {
		c.Sets[id] = struct{}{}
	}
	for _, p := range x.profiles {
		p.ruleSetIDs(func(id RuleSetID) { c.RuleSets[id] = struct{}{} })
	}
	for _, p := range x.policies {
		p.ruleSetIDs(func(id RuleSetID) { c.RuleSets[id] = struct{}{} })
	}
	for iface := range x.byIface {
		c.Interfaces[iface] = struct{}{}
	}
	return c
}

// RuleSet returns the rules of a policy or profile in one direction; ok is false when it does not exist:
// a policy whose types leave that direction out has no rules for it, and an inactive policy or profile
// (one no local endpoint's plan uses, see active.go) has none at all.
func (x *Index) RuleSet(id RuleSetID) (rules []Rule, ok bool) {
	o := x.owner(id)
	if o == nil || !o.has[id.Dir] {
		return nil, false
	}
	return o.rules[id.Dir], true
}

// owner returns the policy or profile a rule set belongs to, nil if there is none.
func (x *Index) owner(id RuleSetID) *ruleOwner {
	if id.Kind == KindProfile {
		if p := x.profiles[id.Name]; p != nil {
			return &p.ruleOwner
		}
	} else if p := x.policies[policyKey{id.Namespace, id.Name}]; p != nil && p.kind() == id.Kind {
		return &p.ruleOwner
	}
	return nil
}

// Interface returns the local endpoint using an interface. Should two claim it, the one with the
// smaller key wins, so the answer does not depend on event order.
func (x *Index) Interface(name string) (LocalEndpoint, bool) {
	var owner *endpoint
	for ep := range x.byIface[name] {
		if owner == nil || ep.key < owner.key {
			owner = ep
		}
	}
	if owner == nil {
		return LocalEndpoint{}, false
	}
	return LocalEndpoint{Key: owner.key, Iface: owner.iface, MAC: owner.mac, Addrs: slices.Clone(owner.addrs),
		Plans: owner.plans}, true
}
