package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// logPrefix is Felix's prefix for packets a Log rule logs.
const logPrefix = "calico-packet: "

// renderPlan writes the chain for a plan: clear the marks; per tier, jump to each policy until one
// allows (return) or passes (skip the rest of the tier), and drop what the tier left undecided unless
// it ends in Pass; then each profile until one allows; then drop. A Deny drops inside the policy chain.
func renderPlan(p policy.Plan) []string {
	rules := []string{"meta mark set meta mark & " + clearMarks}
	for i, t := range p.Tiers {
		if i > 0 {
			rules = append(rules, "meta mark set meta mark & "+clearPass)
		}
		for j, id := range t.Policies {
			jump := "jump " + ruleSetChain(id)
			if j > 0 {
				jump = "meta mark & " + passMark + " == 0 " + jump
			}
			rules = append(rules, jump, "meta mark & "+acceptMark+" != 0 return")
		}
		if !t.EndPass {
			rules = append(rules, "meta mark & "+passMark+" == 0 drop")
		}
	}
	for _, id := range p.Profiles {
		rules = append(rules, "jump "+ruleSetChain(id), "meta mark & "+acceptMark+" != 0 return")
	}
	return append(rules, "drop")
}

// renderRules writes a policy's or profile's rules. A rule that matches addresses becomes nft rules per
// IP family (each with that family's nets and sets), and none for a family it cannot match; a side with
// named ports adds one nft rule per alternative (see entityMatches).
func renderRules(rules []policy.Rule) []string {
	var out []string
	for _, r := range rules {
		families := []int{0}
		if r.IPVersion != 0 || r.Src.HasAddresses() || r.Dst.HasAddresses() {
			families = []int{4, 6}
		}
		for _, family := range families {
			for _, m := range ruleMatches(r, family) {
				out = append(out, strings.Join(append(m, verdict(r.Action)), " "))
			}
		}
	}
	return out
}

func verdict(action string) string {
	switch action {
	case api.ActionAllow:
		return "meta mark set meta mark | " + acceptMark + " return"
	case api.ActionPass:
		return "meta mark set meta mark | " + passMark + " return"
	case api.ActionDeny:
		return "drop"
	default: // api.ActionLog; the policy package lets no other through
		return `log prefix "` + logPrefix + `" level info`
	}
}

// ruleMatches lists, for one family (0: the rule matches no addresses), the matches of the nft rules
// that together match what the rule does: one, or one per combination of the sides' alternatives; none
// if the rule cannot match packets of that family.
func ruleMatches(r policy.Rule, family int) [][]string {
	var m []string
	if family != 0 {
		if r.IPVersion != 0 && r.IPVersion != family {
			return nil
		}
		m = append(m, fmt.Sprintf("meta nfproto ipv%d", family))
	}
	if (r.Protocol == 1 && family == 6) || (r.Protocol == 58 && family == 4) {
		return nil
	}
	if r.Protocol != 0 {
		m = append(m, fmt.Sprintf("meta l4proto %d", r.Protocol))
	}
	if r.NotProtocol != 0 {
		m = append(m, fmt.Sprintf("meta l4proto != %d", r.NotProtocol))
	}
	icmp := "icmp"
	if r.Protocol == 58 {
		icmp = "icmpv6"
	}
	if i := r.ICMP; i != nil {
		m = append(m, fmt.Sprintf("%s type %d", icmp, i.Type))
		if i.HasCode {
			m = append(m, fmt.Sprintf("%s code %d", icmp, i.Code))
		}
	}
	if i := r.NotICMP; i != nil {
		if i.HasCode {
			m = append(m, fmt.Sprintf("%[1]s type . %[1]s code != { %d . %d }", icmp, i.Type, i.Code))
		} else {
			m = append(m, fmt.Sprintf("%s type != %d", icmp, i.Type))
		}
	}
	combined := [][]string{m}
	for _, side := range []struct {
		e          policy.Entity
		addr, port string
	}{{r.Src, "saddr", "sport"}, {r.Dst, "daddr", "dport"}} {
		alts := entityMatches(side.e, family, side.addr, side.port)
		var next [][]string
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
func entityMatches(e policy.Entity, family int, addrField, portField string) [][]string {
	var nets, negated []string
	if family != 0 {
		ip := ipKeyword(family)
		// As Felix, a rule whose nets or notNets all belong to the other family is left out of this one.
		inFamily, notInFamily := ofFamily(e.Nets, family), ofFamily(e.NotNets, family)
		if (len(e.Nets) > 0 && len(inFamily) == 0) || (len(e.NotNets) > 0 && len(notInFamily) == 0) {
			return nil
		}
		if len(inFamily) > 0 {
			nets = append(nets, ip+addrField+" "+netSet(inFamily))
		}
		if len(notInFamily) > 0 {
			negated = append(negated, ip+addrField+" != "+netSet(notInFamily))
		}
		if e.NotSet != "" {
			negated = append(negated, ip+addrField+" != @"+setName(e.NotSet, family))
		}
	}
	if len(e.NotPorts) > 0 {
		negated = append(negated, "th "+portField+" != "+portSet(e.NotPorts))
	}
	tuple := ipKeyword(family) + addrField + " . meta l4proto . th " + portField
	for _, id := range e.NotNamedPorts {
		negated = append(negated, tuple+" != @"+setName(id, family))
	}
	alternative := func(m ...string) []string {
		return slices.Concat(nets, m, negated)
	}
	var bySelector []string
	if e.Set != "" {
		bySelector = append(bySelector, ipKeyword(family)+addrField+" @"+setName(e.Set, family))
	}
	if len(e.Ports) > 0 {
		bySelector = append(bySelector, "th "+portField+" "+portSet(e.Ports))
	}
	if len(e.NamedPorts) == 0 {
		return [][]string{alternative(bySelector...)}
	}
	var alts [][]string
	if len(e.Ports) > 0 {
		alts = append(alts, alternative(bySelector...))
	}
	for _, id := range e.NamedPorts {
		alts = append(alts, alternative(tuple+" @"+setName(id, family)))
	}
	return alts
}

func ipKeyword(family int) string {
	if family == 6 {
		return "ip6 "
	}
	return "ip "
}

func ofFamily(nets []netip.Prefix, family int) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range nets {
		if p.Addr().Is4() == (family == 4) {
			out = append(out, p)
		}
	}
	return out
}

func netSet(nets []netip.Prefix) string {
	elems := make([]string, len(nets))
	for i, p := range nets {
		elems[i] = elemKey(p)
	}
	return "{ " + strings.Join(elems, ", ") + " }"
}

func portSet(ports []policy.PortRange) string {
	elems := make([]string, len(ports))
	for i, r := range ports {
		elems[i] = fmt.Sprint(r.Min)
		if r.Max != r.Min {
			elems[i] += fmt.Sprintf("-%d", r.Max)
		}
	}
	return "{ " + strings.Join(elems, ", ") + " }"
}
