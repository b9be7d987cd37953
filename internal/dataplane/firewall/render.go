package firewall

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// logPrefix is Felix's prefix for packets a Log rule logs.
const logPrefix = "calico-packet: "

// renderPlan writes the chain for a plan: clear the marks; per tier, jump to each policy until one
// allows (return) or passes (skip the rest of the tier), and drop what the tier left undecided unless
// it ends in Pass; then each profile until one allows; then drop. A Deny drops inside the policy chain.
func renderPlan(p policy.Plan) []rule {
	allowed := newRule(markHas(acceptMark, true), ret)
	rules := []rule{newRule(markSetAnd(^uint32(acceptMark | passMark)))}
	for i, t := range p.Tiers {
		if i > 0 {
			rules = append(rules, newRule(markSetAnd(^uint32(passMark))))
		}
		for j, id := range t.Policies {
			if j > 0 {
				rules = append(rules, newRule(markHas(passMark, false), jump(ruleSetChain(id))))
			} else {
				rules = append(rules, newRule(jump(ruleSetChain(id))))
			}
			rules = append(rules, allowed)
		}
		if !t.EndPass {
			rules = append(rules, newRule(markHas(passMark, false), drop))
		}
	}
	for _, id := range p.Profiles {
		rules = append(rules, newRule(jump(ruleSetChain(id))), allowed)
	}
	return append(rules, newRule(drop))
}

// renderRules writes a policy's or profile's rules. A rule that matches addresses becomes nft rules per
// IP family (each with that family's nets and sets), and none for a family it cannot match; a side with
// named ports adds one nft rule per alternative (see entityMatches).
func renderRules(rules []policy.Rule) []rule {
	var out []rule
	for _, r := range rules {
		families := []int{0}
		if r.IPVersion != 0 || r.Src.HasAddresses() || r.Dst.HasAddresses() {
			families = []int{4, 6}
		}
		for _, family := range families {
			for _, m := range ruleMatches(r, family) {
				out = append(out, newRule(append(m, action(r.Action))...))
			}
		}
	}
	return out
}

func action(a string) match {
	switch a {
	case api.ActionAllow:
		return newMatch(markSetOr(acceptMark), ret)
	case api.ActionPass:
		return newMatch(markSetOr(passMark), ret)
	case api.ActionDeny:
		return drop
	default: // api.ActionLog; the policy package lets no other through
		return logPacket(logPrefix)
	}
}

// newMatch joins matches into one.
func newMatch(ms ...match) match {
	r := newRule(ms...)
	return match{text: r.text, exprs: r.exprs}
}

// ruleMatches lists, for one family (0: the rule matches no addresses), the matches of the nft rules
// that together match what the rule does: one, or one per combination of the sides' alternatives; none
// if the rule cannot match packets of that family.
func ruleMatches(r policy.Rule, family int) [][]match {
	var m []match
	if family != 0 {
		if r.IPVersion != 0 && r.IPVersion != family {
			return nil
		}
		m = append(m, nfproto(family))
	}
	if (r.Protocol == 1 && family == 6) || (r.Protocol == 58 && family == 4) {
		return nil
	}
	if r.Protocol != 0 {
		m = append(m, l4proto(r.Protocol, false))
	}
	if r.NotProtocol != 0 {
		m = append(m, l4proto(r.NotProtocol, true))
	}
	v6 := r.Protocol == 58
	if i := r.ICMP; i != nil {
		m = append(m, icmpField(v6, false, false).equals([]byte{i.Type}, fmt.Sprint(i.Type), false))
		if i.HasCode {
			m = append(m, icmpField(v6, true, false).equals([]byte{i.Code}, fmt.Sprint(i.Code), false))
		}
	}
	if i := r.NotICMP; i != nil {
		if i.HasCode {
			m = append(m, icmpField(v6, false, true).equals([]byte{i.Type, i.Code}, fmt.Sprintf("{ %d . %d }", i.Type, i.Code), true))
		} else {
			m = append(m, icmpField(v6, false, false).equals([]byte{i.Type}, fmt.Sprint(i.Type), true))
		}
	}
	combined := [][]match{m}
	for _, side := range []struct {
		e   policy.Entity
		dst bool
	}{{r.Src, false}, {r.Dst, true}} {
		alts := entityMatches(side.e, family, side.dst)
		var next [][]match
		for _, c := range combined {
			for _, alt := range alts {
				next = append(next, append(slices.Clone(c), alt...))
			}
		}
		combined = next
	}
	return combined
}

// entityMatches lists the alternative matches of one side of a rule for one family (none if it cannot
// match that family). Numeric ports and each named-port set are alternatives; a named-port set holds
// only endpoints the selector matches, so its alternative leaves the selector set out.
func entityMatches(e policy.Entity, family int, dst bool) [][]match {
	var nets, negated []match
	if family != 0 {
		addr := addrField(family, dst)
		// As Felix, a rule whose nets or notNets all belong to the other family is left out of this one.
		inFamily, notInFamily := ofFamily(e.Nets, family), ofFamily(e.NotNets, family)
		if (len(e.Nets) > 0 && len(inFamily) == 0) || (len(e.NotNets) > 0 && len(notInFamily) == 0) {
			return nil
		}
		if len(inFamily) > 0 {
			nets = append(nets, addr.inPrefixes(inFamily, false))
		}
		if len(notInFamily) > 0 {
			negated = append(negated, addr.inPrefixes(notInFamily, true))
		}
		if e.NotSet != "" {
			negated = append(negated, addr.inSet(setName(e.NotSet, family), true))
		}
	}
	port := portField(dst)
	if len(e.NotPorts) > 0 {
		negated = append(negated, port.inPorts(mergePorts(e.NotPorts), true))
	}
	for _, id := range e.NotNamedPorts {
		negated = append(negated, tupleInSet(family, dst, setName(id, family), true))
	}
	alternative := func(m ...match) []match {
		return slices.Concat(nets, m, negated)
	}
	var bySelector []match
	if e.Set != "" {
		bySelector = append(bySelector, addrField(family, dst).inSet(setName(e.Set, family), false))
	}
	if len(e.Ports) > 0 {
		bySelector = append(bySelector, port.inPorts(mergePorts(e.Ports), false))
	}
	if len(e.NamedPorts) == 0 {
		return [][]match{alternative(bySelector...)}
	}
	var alts [][]match
	if len(e.Ports) > 0 {
		alts = append(alts, alternative(bySelector...))
	}
	for _, id := range e.NamedPorts {
		alts = append(alts, alternative(tupleInSet(family, dst, setName(id, family), false)))
	}
	return alts
}

func ofFamily(nets []netip.Prefix, family int) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range nets {
		if p.Addr().Is4() == (family == 4) {
			out = append(out, p)
		}
	}
	return policy.MergePrefixes(out)
}

// mergePorts sorts and merges port ranges: the kernel refuses overlapping intervals in a set.
func mergePorts(ports []policy.PortRange) []portRange {
	sorted := slices.Clone(ports)
	slices.SortFunc(sorted, func(a, b policy.PortRange) int { return int(a.Min) - int(b.Min) })
	var out []portRange
	for _, p := range sorted {
		if n := len(out); n > 0 && uint32(p.Min) <= uint32(out[n-1].max)+1 {
			out[n-1].max = max(out[n-1].max, p.Max)
			continue
		}
		out = append(out, portRange{p.Min, p.Max})
	}
	return out
}
