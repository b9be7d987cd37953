package firewall

import (
	"fmt"
	"net/netip"
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

// renderRules writes a policy's or profile's rules. A rule that matches addresses becomes one nft rule
// per IP family (each with that family's nets and sets), and none for a family it cannot match.
func renderRules(rules []policy.Rule) []string {
	var out []string
	for _, r := range rules {
		families := []int{0}
		if r.IPVersion != 0 || r.Src.HasAddresses() || r.Dst.HasAddresses() {
			families = []int{4, 6}
		}
		for _, family := range families {
			if m, ok := ruleMatches(r, family); ok {
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

// ruleMatches lists a rule's matches for one family (0: the rule matches no addresses); ok is false if
// the rule cannot match packets of that family.
func ruleMatches(r policy.Rule, family int) (m []string, ok bool) {
	if family != 0 {
		if r.IPVersion != 0 && r.IPVersion != family {
			return nil, false
		}
		m = append(m, fmt.Sprintf("meta nfproto ipv%d", family))
	}
	if (r.Protocol == 1 && family == 6) || (r.Protocol == 58 && family == 4) {
		return nil, false
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
	for _, side := range []struct {
		e          policy.Entity
		addr, port string
	}{{r.Src, "saddr", "sport"}, {r.Dst, "daddr", "dport"}} {
		am, ok := addressMatches(side.e, family, side.addr)
		if !ok {
			return nil, false
		}
		m = append(m, am...)
		if len(side.e.Ports) > 0 {
			m = append(m, "th "+side.port+" "+portSet(side.e.Ports))
		}
		if len(side.e.NotPorts) > 0 {
			m = append(m, "th "+side.port+" != "+portSet(side.e.NotPorts))
		}
	}
	return m, true
}

// addressMatches renders nets and selectors of one side for one family.
func addressMatches(e policy.Entity, family int, field string) ([]string, bool) {
	if family == 0 {
		return nil, true
	}
	ip := "ip "
	if family == 6 {
		ip = "ip6 "
	}
	var m []string
	nets := ofFamily(e.Nets, family)
	if len(e.Nets) > 0 && len(nets) == 0 {
		return nil, false
	}
	if len(nets) > 0 {
		m = append(m, ip+field+" "+netSet(nets))
	}
	if notNets := ofFamily(e.NotNets, family); len(notNets) > 0 {
		m = append(m, ip+field+" != "+netSet(notNets))
	}
	if e.Set != "" {
		m = append(m, ip+field+" @"+setName(e.Set, family))
	}
	if e.NotSet != "" {
		m = append(m, ip+field+" != @"+setName(e.NotSet, family))
	}
	return m, true
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
