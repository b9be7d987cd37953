package policy

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// Prefixes under which endpoints inherit the labels of their namespace and service account, from the
// kns.<namespace> and ksa.<namespace>.<account> profiles' labelsToApply (Calico's Kubernetes converter).
const (
	namespaceLabelPrefix      = "pcns."
	serviceAccountLabelPrefix = "pcsa."
)

// resolvedRule is a Rule before its selectors and named ports get IP sets.
type resolvedRule struct {
	Rule
	sels  [4]*selector.Selector // Src.Set, Src.NotSet, Dst.Set, Dst.NotSet
	named [2]namedPorts         // Src, Dst
}

// namedPorts are the port names of one side of a rule.
type namedPorts struct{ ports, notPorts []string }

// resolveRules converts one direction's rules. namespace is a NetworkPolicy's, "" for a
// GlobalNetworkPolicy or profile. A rule with a match this dataplane cannot enforce fails closed: an
// Allow or Log is left out, a Deny applies without that match (so it denies a superset), and a Pass
// becomes such a Deny, since passing a superset to the next tier could allow what Calico denies.
// Each such rule is explained in the returned warnings.
func resolveRules(owner RuleSetID, rules []api.Rule, namespace string) (out []resolvedRule, warnings []string) {
	for i, r := range rules {
		rr, problems := resolveRule(r, namespace)
		if len(problems) == 0 {
			out = append(out, rr)
			continue
		}
		why := strings.Join(problems, "; ")
		switch rr.Action {
		case api.ActionDeny, api.ActionPass:
			rr.Action = api.ActionDeny
			out = append(out, rr)
			warnings = append(warnings, fmt.Sprintf("%s rule %d (%s) enforced as a Deny without what cannot be enforced: %s", owner, i, r.Action, why))
		default:
			warnings = append(warnings, fmt.Sprintf("%s rule %d (%s) left out: %s", owner, i, r.Action, why))
		}
	}
	return out, warnings
}

// resolveRule converts a rule. Each match it cannot enforce is left out of the result and named in
// problems; the result then matches a superset of what the rule matches.
func resolveRule(r api.Rule, namespace string) (rr resolvedRule, problems []string) {
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	switch r.Action {
	case api.ActionAllow, api.ActionDeny, api.ActionPass, api.ActionLog:
		rr.Action = r.Action
	default:
		rr.Action = api.ActionDeny
		fail("unknown action %q", r.Action)
	}
	if present(r.HTTP) {
		fail("http matches need an application-layer proxy")
	}
	if r.IPVersion != nil {
		rr.IPVersion = *r.IPVersion
	}
	if r.Protocol != nil {
		rr.Protocol = r.Protocol.NumberValue()
	}
	if r.NotProtocol != nil {
		rr.NotProtocol = r.NotProtocol.NumberValue()
	}
	var err error
	if rr.ICMP, err = resolveICMP(r.ICMP); err != nil {
		fail("%v", err)
	}
	if rr.NotICMP, err = resolveICMP(r.NotICMP); err != nil {
		fail("%v", err)
	}
	portsOK := r.Protocol != nil && r.Protocol.SupportsPorts()
	for i, side := range []struct {
		name string
		in   api.EntityRule
		out  *Entity
	}{{"source", r.Source, &rr.Src}, {"destination", r.Destination, &rr.Dst}} {
		e := side.in
		if present(e.Services) {
			fail("%s services need Kubernetes", side.name)
		}
		if side.out.Nets, err = parseNets(e.Nets); err != nil {
			fail("%s nets: %v", side.name, err)
		}
		if side.out.NotNets, err = parseNets(e.NotNets); err != nil {
			fail("%s notNets: %v", side.name, err)
		}
		if len(e.Ports)+len(e.NotPorts) > 0 && !portsOK {
			fail("%s ports need protocol TCP, UDP, SCTP or UDPLite", side.name)
		} else {
			side.out.Ports, rr.named[i].ports = portRanges(e.Ports)
			side.out.NotPorts, rr.named[i].notPorts = portRanges(e.NotPorts)
		}
		sel, err := entitySelector(e, namespace)
		if err == nil {
			rr.sels[2*i], err = parseOptional(sel)
		}
		if err != nil {
			fail("%s selector: %v", side.name, err)
		}
		if rr.sels[2*i+1], err = parseOptional(e.NotSelector); err != nil {
			fail("%s notSelector: %v", side.name, err)
		}
	}
	return rr, problems
}

// entitySelector is the selector an entity's endpoints must match, combined from its selector,
// serviceAccounts and namespaceSelector exactly as Calico's datastore converter does for Felix. Without
// a namespaceSelector, a NetworkPolicy's entity is confined to the policy's namespace as soon as it
// selects at all (notSelector included). The notSelector itself is never scoped.
func entitySelector(e api.EntityRule, namespace string) (string, error) {
	var nsSel string
	switch {
	case e.NamespaceSelector != "":
		prefixed, err := withLabelPrefix(e.NamespaceSelector, namespaceLabelPrefix)
		if err != nil {
			return "", fmt.Errorf("namespaceSelector: %w", err)
		}
		// all() means "any namespace", so only namespaced endpoints; global() means "no namespace".
		nsSel = strings.ReplaceAll(prefixed, "all()", "has("+api.LabelNamespace+")")
		nsSel = strings.ReplaceAll(nsSel, "global()", "!has("+api.LabelNamespace+")")
	case namespace != "":
		nsSel = inNamespace(namespace)
	}
	var parts []string
	if e.ServiceAccounts != nil {
		sa, err := serviceAccountSelector(*e.ServiceAccounts)
		if err != nil {
			return "", fmt.Errorf("serviceAccounts: %w", err)
		}
		if sa != "" {
			parts = append(parts, sa)
		}
	}
	if e.Selector != "" {
		parts = append(parts, e.Selector)
	}
	sel := and(parts...)
	if nsSel != "" && (sel != "" || e.NotSelector != "" || e.NamespaceSelector != "") {
		sel = and(nsSel, sel)
	}
	return sel, nil
}

// serviceAccountSelector matches endpoints whose service account has one of the names and matches
// the selector (over its labels, which endpoints inherit prefixed).
func serviceAccountSelector(m api.ServiceAccountMatch) (string, error) {
	var sel string
	if m.Selector != "" {
		var err error
		if sel, err = withLabelPrefix(m.Selector, serviceAccountLabelPrefix); err != nil {
			return "", err
		}
	}
	if len(m.Names) == 0 {
		return sel, nil
	}
	quoted := make([]string, len(m.Names))
	for i, n := range m.Names {
		if strings.ContainsAny(n, `'"`) {
			return "", fmt.Errorf("invalid service account name %q", n)
		}
		quoted[i] = "'" + n + "'"
	}
	return and(sel, fmt.Sprintf("%s in {%s}", api.LabelServiceAccount, strings.Join(quoted, ", "))), nil
}

// and joins the non-empty selectors, each parenthesised.
func and(sels ...string) string {
	sels = slices.DeleteFunc(slices.Clone(sels), func(s string) bool { return s == "" })
	switch len(sels) {
	case 0:
		return ""
	case 1:
		return sels[0]
	}
	return "(" + strings.Join(sels, ") && (") + ")"
}

// inNamespace selects the endpoints of one namespace.
func inNamespace(namespace string) string {
	return fmt.Sprintf("%s == '%s'", api.LabelNamespace, namespace)
}

func withLabelPrefix(sel, prefix string) (string, error) {
	parsed, err := selector.Parse(sel)
	if err != nil {
		return "", err
	}
	return parsed.WithLabelPrefix(prefix).String(), nil
}

// parseOptional parses a selector; the empty selector is nil (no constraint).
func parseOptional(sel string) (*selector.Selector, error) {
	if sel == "" {
		return nil, nil
	}
	return selector.Parse(sel)
}

// present reports whether an optional JSON field holds anything.
func present(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null")) && !bytes.Equal(raw, []byte("{}"))
}

func resolveICMP(f *api.ICMPFields) (*ICMPMatch, error) {
	if f == nil || f.Type == nil {
		return nil, nil
	}
	if *f.Type < 0 || *f.Type > 255 {
		return nil, fmt.Errorf("ICMP type %d out of range", *f.Type)
	}
	m := &ICMPMatch{Type: uint8(*f.Type)}
	if f.Code != nil {
		if *f.Code < 0 || *f.Code > 255 {
			return nil, fmt.Errorf("ICMP code %d out of range", *f.Code)
		}
		m.Code, m.HasCode = uint8(*f.Code), true
	}
	return m, nil
}

// parseNets parses CIDRs (or bare addresses) and merges them.
func parseNets(nets []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, err2 := netip.ParseAddr(n)
			if err2 != nil {
				return nil, fmt.Errorf("%q is not a CIDR", n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return MergePrefixes(out), nil
}

// MergePrefixes masks and sorts prefixes and drops every one another contains, since nftables refuses
// overlapping intervals in a set.
func MergePrefixes(prefixes []netip.Prefix) []netip.Prefix {
	sorted := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		sorted = append(sorted, p.Masked())
	}
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), a.Bits()-b.Bits())
	})
	// Sorted this way a prefix's container, if any, is the last one kept.
	var kept []netip.Prefix
	for _, p := range sorted {
		if n := len(kept); n > 0 && kept[n-1].Bits() <= p.Bits() && kept[n-1].Contains(p.Addr()) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// portRanges splits ports into merged numeric ranges and port names (sorted, without repeats).
func portRanges(ports []api.Port) ([]PortRange, []string) {
	var rs []PortRange
	var names []string
	for _, p := range ports {
		if p.Name != "" {
			names = append(names, p.Name)
			continue
		}
		rs = append(rs, PortRange{p.MinPort, p.MaxPort})
	}
	slices.SortFunc(rs, func(a, b PortRange) int { return cmp.Compare(a.Min, b.Min) })
	var out []PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.Min) <= int(out[n-1].Max)+1 {
			out[n-1].Max = max(out[n-1].Max, r.Max)
			continue
		}
		out = append(out, r)
	}
	slices.Sort(names)
	return out, slices.Compact(names)
}
