package policy

import (
	"net/netip"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// packet is what the reference evaluator below matches rules against.
type packet struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	icmpType     uint8
}

// verdict evaluates a packet against a plan the way the dataplane must: tiers in order (Allow and Deny
// end evaluation, Pass skips to the next tier, a tier that decides nothing drops unless it ends in Pass),
// then profiles (Pass skips to the next profile), then drop. It is the specification the nftables
// renderer is tested against in the kernel.
func (x *Index) verdict(p Plan, pkt packet) bool {
tiers:
	for _, t := range p.Tiers {
		for _, id := range t.Policies {
			switch x.firstAction(id, pkt) {
			case api.ActionAllow:
				return true
			case api.ActionDeny:
				return false
			case api.ActionPass:
				continue tiers
			}
		}
		if !t.EndPass {
			return false
		}
	}
	for _, id := range p.Profiles {
		switch x.firstAction(id, pkt) {
		case api.ActionAllow:
			return true
		case api.ActionDeny:
			return false
		}
	}
	return false
}

// firstAction returns the action of the first rule that matches and decides ("" if none).
func (x *Index) firstAction(id RuleSetID, pkt packet) string {
	rules, _ := x.RuleSet(id)
	for _, r := range rules {
		if x.matches(r, pkt) && r.Action != api.ActionLog {
			return r.Action
		}
	}
	return ""
}

func (x *Index) matches(r Rule, pkt packet) bool {
	family := 4
	if pkt.src.Is6() {
		family = 6
	}
	ok := (r.IPVersion == 0 || r.IPVersion == family) &&
		(r.Protocol == 0 || r.Protocol == pkt.proto) &&
		(r.NotProtocol == 0 || r.NotProtocol != pkt.proto) &&
		(r.ICMP == nil || r.ICMP.Type == pkt.icmpType) &&
		(r.NotICMP == nil || r.NotICMP.Type != pkt.icmpType)
	return ok && inFamily(r.Src, family) && inFamily(r.Dst, family) &&
		x.entityMatches(r.Src, pkt.src, pkt.proto, pkt.sport) && x.entityMatches(r.Dst, pkt.dst, pkt.proto, pkt.dport)
}

// inFamily is Felix's reading of a rule with no ipVersion: it applies to a family only if its nets and its
// notNets, where given, include some of that family.
func inFamily(e Entity, family int) bool {
	has := func(nets []netip.Prefix) bool {
		return len(nets) == 0 || slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Addr().Is4() == (family == 4) })
	}
	return has(e.Nets) && has(e.NotNets)
}

// entityMatches is Calico's meaning of an entity: nets, selectors and, for ports, a numeric port or a
// named port of the endpoint at that address (ports and named ports are alternatives; notPorts and
// named notPorts must all miss).
func (x *Index) entityMatches(e Entity, addr netip.Addr, proto uint8, port uint16) bool {
	inNets := func(nets []netip.Prefix) bool {
		return slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(addr) })
	}
	inSet := func(id string, m Member) bool {
		members, _ := x.Set(id)
		return slices.Contains(members, m)
	}
	inNamed := func(ids []string) bool {
		return slices.ContainsFunc(ids, func(id string) bool { return inSet(id, Member{Addr: addr, Proto: proto, Port: port}) })
	}
	inPorts := func(rs []PortRange) bool {
		return slices.ContainsFunc(rs, func(r PortRange) bool { return port >= r.Min && port <= r.Max })
	}
	portOK := len(e.Ports)+len(e.NamedPorts) == 0 || inPorts(e.Ports) || inNamed(e.NamedPorts)
	return (len(e.Nets) == 0 || inNets(e.Nets)) && !inNets(e.NotNets) &&
		(e.Set == "" || inSet(e.Set, Member{Addr: addr})) && (e.NotSet == "" || !inSet(e.NotSet, Member{Addr: addr})) &&
		portOK && !inPorts(e.NotPorts) && !inNamed(e.NotNamedPorts)
}
