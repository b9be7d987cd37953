package policy

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// resolvedRule is a Rule before its selectors get IP sets.
type resolvedRule struct {
	Rule
	sels [4]*selector.Selector // Src.Set, Src.NotSet, Dst.Set, Dst.NotSet
}

// resolveRules converts one direction's rules. namespace scopes the selectors of a NetworkPolicy to its
// own namespace, as Calico does. A rule this dataplane cannot enforce is left out (it never matches, so
// an Allow fails closed) and explained in the returned warnings.
func resolveRules(owner RuleSetID, rules []api.Rule, namespace string) ([]resolvedRule, []string) {
	var out []resolvedRule
	var warnings []string
	for i, r := range rules {
		rr, err := resolveRule(r, namespace)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s rule %d left out: %v", owner, i, err))
			continue
		}
		out = append(out, rr)
	}
	return out, warnings
}

func resolveRule(r api.Rule, namespace string) (resolvedRule, error) {
	var rr resolvedRule
	switch r.Action {
	case api.ActionAllow, api.ActionDeny, api.ActionPass, api.ActionLog:
		rr.Action = r.Action
	default:
		return rr, fmt.Errorf("unknown action %q", r.Action)
	}
	if present(r.HTTP) {
		return rr, fmt.Errorf("http matches need an application-layer proxy")
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
	hasPorts := len(r.Source.Ports)+len(r.Source.NotPorts)+len(r.Destination.Ports)+len(r.Destination.NotPorts) > 0
	if hasPorts && (r.Protocol == nil || !r.Protocol.SupportsPorts()) {
		return rr, fmt.Errorf("ports need protocol TCP, UDP, SCTP or UDPLite")
	}
	var err error
	if rr.ICMP, err = resolveICMP(r.ICMP); err != nil {
		return rr, err
	}
	if rr.NotICMP, err = resolveICMP(r.NotICMP); err != nil {
		return rr, err
	}
	for i, side := range []struct {
		in  api.EntityRule
		out *Entity
	}{{r.Source, &rr.Src}, {r.Destination, &rr.Dst}} {
		e := side.in
		if e.NamespaceSelector != "" || present(e.ServiceAccounts) || present(e.Services) {
			return rr, fmt.Errorf("namespaceSelector, serviceAccounts and services are not supported")
		}
		if side.out.Nets, err = parseNets(e.Nets); err != nil {
			return rr, err
		}
		if side.out.NotNets, err = parseNets(e.NotNets); err != nil {
			return rr, err
		}
		var named bool
		side.out.Ports, named = portRanges(e.Ports)
		if named && len(side.out.Ports) == 0 {
			return rr, fmt.Errorf("named ports are not supported")
		}
		side.out.NotPorts, _ = portRanges(e.NotPorts)
		if rr.sels[2*i], err = scopedSelector(e.Selector, namespace); err != nil {
			return rr, err
		}
		if rr.sels[2*i+1], err = scopedSelector(e.NotSelector, namespace); err != nil {
			return rr, err
		}
	}
	return rr, nil
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

// portRanges merges numeric ports and ranges and reports whether named ports were dropped.
func portRanges(ports []api.Port) ([]PortRange, bool) {
	var rs []PortRange
	named := false
	for _, p := range ports {
		if p.Name != "" {
			named = true
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
	return out, named
}

// scopedSelector parses a rule or policy selector; in a NetworkPolicy it only ever matches endpoints of
// the policy's namespace. The empty selector is nil (no constraint).
func scopedSelector(sel, namespace string) (*selector.Selector, error) {
	if sel == "" {
		return nil, nil
	}
	parsed, err := selector.Parse(sel)
	if err != nil || namespace == "" {
		return parsed, err
	}
	return namespaceScoped(parsed, namespace)
}

// namespaceScoped adds the namespace condition to a parsed (hence well-formed) selector.
func namespaceScoped(sel *selector.Selector, namespace string) (*selector.Selector, error) {
	return selector.Parse(fmt.Sprintf("(%s) && %s == %q", sel, api.LabelNamespace, namespace))
}
