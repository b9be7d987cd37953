package policy

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// ruleOwner is what policies and profiles share: their rules as written and, while active, resolved
// per direction, with the sets they use.
type ruleOwner struct {
	ids        [2]RuleSetID
	spec       ruleSpec
	has        [2]bool // a direction's rules exist (a policy's types may leave one out)
	rules      [2][]Rule
	sets       []string // IDs acquired for the rules, one per use
	unenforced [2]int   // rules enforced failing closed
}

func (o *ruleOwner) ruleSetIDs(fn func(RuleSetID)) {
	for _, d := range Directions {
		if o.has[d] {
			fn(o.ids[d])
		}
	}
}

// ruleSpec is an owner's rules as written: has says which directions exist; namespace is a
// NetworkPolicy's.
type ruleSpec struct {
	has       [2]bool
	rules     [2][]api.Rule
	namespace string
}

// setRules replaces the owner's resolved rules with those of spec, acquiring the new sets before
// releasing the old so that sets still in use are never recreated.
func (x *Index) setRules(o *ruleOwner, spec ruleSpec) {
	old := o.sets
	o.sets = nil
	for _, d := range Directions {
		var out []Rule
		var warnings []string
		if spec.has[d] {
			var resolved []resolvedRule
			resolved, warnings = resolveRules(o.ids[d], spec.rules[d], spec.namespace)
			for _, rr := range resolved {
				o.acquireSets(x, &rr)
				out = append(out, rr.Rule)
			}
		}
		if spec.has[d] != o.has[d] || !reflect.DeepEqual(out, o.rules[d]) {
			x.changes.RuleSets[o.ids[d]] = struct{}{}
			// Reported when what is enforced changes, so an unchanged policy is not logged again.
			x.changes.Warnings = append(x.changes.Warnings, warnings...)
		}
		x.unenforced += len(warnings) - o.unenforced[d]
		o.has[d], o.rules[d], o.unenforced[d] = spec.has[d], out, len(warnings)
	}
	for _, id := range old {
		x.releaseSet(id)
	}
}

// allEndpoints filters the named-port sets of a side without a selector.
var allEndpoints = selector.MustParse("all()")

// acquireSets gives a resolved rule the IP sets of its selectors and named ports. A named port's set
// holds only the endpoints the positive selector of its side matches (all endpoints without one), as
// in Felix, so a named port needs no separate selector match.
func (o *ruleOwner) acquireSets(x *Index, rr *resolvedRule) {
	acquire := func(s *ipSet) string {
		id := x.acquireSet(s)
		o.sets = append(o.sets, id)
		return id
	}
	for i, set := range []*string{&rr.Src.Set, &rr.Src.NotSet, &rr.Dst.Set, &rr.Dst.NotSet} {
		if sel := rr.sels[i]; sel != nil {
			*set = acquire(&ipSet{sel: sel})
		}
	}
	for i, e := range []*Entity{&rr.Src, &rr.Dst} {
		sel := rr.sels[2*i]
		if sel == nil {
			sel = allEndpoints
		}
		for _, name := range rr.named[i].ports {
			e.NamedPorts = append(e.NamedPorts, acquire(&ipSet{sel: sel, port: &portMatch{name, rr.Protocol}}))
		}
		for _, name := range rr.named[i].notPorts {
			e.NotNamedPorts = append(e.NotNamedPorts, acquire(&ipSet{sel: sel, port: &portMatch{name, rr.Protocol}}))
		}
	}
}

// profileEntry is a profile: rules for both directions and labels for its endpoints.
type profileEntry struct {
	ruleOwner
	labels map[string]string
}

// SetProfile adds, updates or (with nil) removes a profile.
func (x *Index) SetProfile(name string, p *api.Profile) {
	e := x.profiles[name]
	existed := e != nil
	if e == nil {
		if p == nil {
			return
		}
		e = &profileEntry{}
		for _, d := range Directions {
			e.ids[d] = RuleSetID{Kind: KindProfile, Name: name, Dir: d}
		}
	}
	e.spec = ruleSpec{}
	var labels map[string]string
	if p != nil {
		e.spec = ruleSpec{has: [2]bool{true, true}, rules: [2][]api.Rule{p.Spec.Ingress, p.Spec.Egress}}
		labels = p.Spec.LabelsToApply
	}
	x.resolve(&e.ruleOwner)
	labelsChanged := !maps.Equal(labels, e.labels)
	e.labels = maps.Clone(labels)
	if p == nil {
		delete(x.profiles, name)
	} else {
		x.profiles[name] = e
	}
	if existed != (p != nil) || labelsChanged {
		for ep := range x.byProfile[name] {
			x.relabel(ep)
		}
	}
}

// policyKey identifies a policy: namespace "" is a GlobalNetworkPolicy.
type policyKey struct{ namespace, name string }

// policyEntry is a policy: where it sits in the evaluation order, whom it applies to, and its rules.
type policyEntry struct {
	ruleOwner
	key   policyKey
	tie   string // tieBreak(key), the order among policies of equal order
	tier  string
	order float64            // +Inf when unset
	sel   *selector.Selector // nil: applies to no endpoint
	types [2]bool            // by Direction
}

func (p *policyEntry) kind() string {
	if p.key.namespace == "" {
		return KindGlobalPolicy
	}
	return KindPolicy
}

// tieBreak orders policies of equal order, as Felix's policy sorter does: "<name>/<namespace>/<kind>".
func tieBreak(key policyKey) string {
	kind := "GlobalNetworkPolicy"
	if key.namespace != "" {
		kind = "NetworkPolicy"
	}
	return key.name + "/" + key.namespace + "/" + kind
}

// appliesTo reports whether the policy decides ep's traffic in any direction.
func (p *policyEntry) appliesTo(ep *endpoint) bool {
	return p != nil && p.sel != nil && p.sel.Matches(ep.labels.m)
}

// placement is what decides which endpoints a policy applies to and where it is evaluated.
func (p *policyEntry) placement() string {
	if p == nil {
		return ""
	}
	sel := "<none>"
	if p.sel != nil {
		sel = p.sel.String()
	}
	return fmt.Sprintf("%s %v %v %s", p.tier, p.order, p.types, sel)
}

// SetPolicy adds, updates or (with nil) removes a NetworkPolicy (namespace set) or GlobalNetworkPolicy
// (namespace ""). The spec should be defaulted (api.Default fills tier and types).
func (x *Index) SetPolicy(namespace, name string, spec *api.PolicySpec) {
	key := policyKey{namespace, name}
	e := x.policies[key]
	if e == nil && spec == nil {
		return
	}
	var before *policyEntry
	if e == nil {
		e = &policyEntry{key: key, tie: tieBreak(key)}
		for _, d := range Directions {
			e.ids[d] = RuleSetID{Kind: e.kind(), Namespace: namespace, Name: name, Dir: d}
		}
	} else {
		snapshot := *e
		before = &snapshot
	}
	e.spec = ruleSpec{}
	if spec != nil {
		x.place(e, spec)
		e.spec = ruleSpec{has: e.types, rules: [2][]api.Rule{spec.Ingress, spec.Egress}, namespace: namespace}
	}
	// Resolved now if active; the replanning below activates or deactivates it (a deleted one's spec has
	// no rules, so its sets go here).
	x.resolve(&e.ruleOwner)
	after := e
	if spec == nil {
		delete(x.policies, key)
		after = nil
	} else {
		x.policies[key] = e
	}
	if before.placement() == after.placement() {
		return
	}
	x.sortedOK = false
	for ep := range x.localEndpoints() {
		if (before.appliesTo(ep) || after.appliesTo(ep)) && x.replan(ep) {
			x.changes.Interfaces[ep.iface] = struct{}{}
		}
	}
}

// place sets a policy's tier, order, selector and types from its spec.
func (x *Index) place(e *policyEntry, spec *api.PolicySpec) {
	e.tier = spec.Tier
	if e.tier == "" {
		e.tier = defaultTier
	}
	e.order = math.Inf(1)
	if spec.Order != nil {
		e.order = *spec.Order
	}
	e.types = [2]bool{slices.Contains(spec.Types, api.PolicyTypeIngress), slices.Contains(spec.Types, api.PolicyTypeEgress)}
	e.sel = nil
	if spec.DoNotTrack || spec.PreDNAT {
		return // Felix applies these to host endpoints only.
	}
	sel, err := policySelector(e.key.namespace, spec)
	if err == nil {
		e.sel, err = selector.Parse(sel)
	}
	if err != nil {
		id := e.ids[Ingress]
		x.changes.Warnings = append(x.changes.Warnings, fmt.Sprintf("%s/%s applies to no endpoint: %v", id.Kind, id.Name, err))
	}
}

// policySelector is the selector of the endpoints a policy applies to, combined from its selector,
// namespace, namespaceSelector and serviceAccountSelector exactly as Calico's datastore converter does
// for Felix (including its textual all() substitutions).
func policySelector(namespace string, spec *api.PolicySpec) (string, error) {
	sel := spec.Selector
	appendPrefixed := func(extra, prefix, hasLabel string) error {
		if extra == "" {
			return nil
		}
		prefixed, err := withLabelPrefix(extra, prefix)
		if err != nil {
			return err
		}
		if sel != "" {
			sel = fmt.Sprintf("(%s) && %s", sel, prefixed)
		} else {
			sel = prefixed
		}
		if hasLabel != "" {
			sel = strings.ReplaceAll(sel, "all()", "has("+hasLabel+")")
		}
		return nil
	}
	if namespace != "" {
		if sel == "" {
			sel = inNamespace(namespace)
		} else {
			sel = fmt.Sprintf("(%s) && %s", sel, inNamespace(namespace))
		}
		if err := appendPrefixed(spec.ServiceAccountSelector, serviceAccountLabelPrefix, ""); err != nil {
			return "", fmt.Errorf("serviceAccountSelector: %w", err)
		}
		return sel, nil
	}
	if err := appendPrefixed(spec.NamespaceSelector, namespaceLabelPrefix, api.LabelNamespace); err != nil {
		return "", fmt.Errorf("namespaceSelector: %w", err)
	}
	if err := appendPrefixed(spec.ServiceAccountSelector, serviceAccountLabelPrefix, api.LabelServiceAccount); err != nil {
		return "", fmt.Errorf("serviceAccountSelector: %w", err)
	}
	return sel, nil
}

// SetTier adds, updates or (with nil) removes a tier; only its order and default action matter here.
func (x *Index) SetTier(name string, t *api.Tier) {
	old, had := x.tiers[name]
	if t == nil {
		if !had {
			return
		}
		delete(x.tiers, name)
	} else {
		if had && reflect.DeepEqual(old, t.Spec) {
			return
		}
		x.tiers[name] = t.Spec
	}
	x.sortedOK = false
	for ep := range x.localEndpoints() {
		if x.replan(ep) {
			x.changes.Interfaces[ep.iface] = struct{}{}
		}
	}
}
