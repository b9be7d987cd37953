package firewall

import "github.com/google/nftables"

// Mark bits, Felix's lowest two of its default mark mask 0xffff0000: a policy or profile chain sets
// accept when it allows a packet and pass when a rule says Pass; endpoint chains read and clear them.
// The base chains also set accept on workload packets they let through, so later rules can tell what
// Calico allowed.
const (
	acceptMark = 0x10000
	passMark   = 0x20000
)

// Names of the base objects. Dispatch maps send a packet, by interface, to its endpoint's chain:
// from-wl-map for what a workload sends (egress), to-wl-map for what it receives (ingress).
const (
	fromWLChain = "from-wl"
	toWLChain   = "to-wl"
	fromWLMap   = "from-wl-map"
	toWLMap     = "to-wl-map"
)

// baseChains are the hooked chains and the dispatch chains, for workload interfaces named prefix* and
// the verdict on workload-to-host traffic.
//
// forward: established flows pass; a workload's packet runs its egress chain, a packet to a workload
// its ingress chain (both, between two local workloads); an endpoint chain that denies drops, which is
// final, while one that allows returns here, and our accept lets the packet on to the other tables'
// chains (Docker's FORWARD: DOCKER-USER, then CALICO-FORWARD accepts it).
//
// input: workload-to-host traffic runs the workload's egress chain, then the configured verdict.
// Neighbour discovery and MLD come first, since a workload needs them to reach its gateway at all.
//
// postrouting: traffic from a natOutgoing pool to anywhere outside every pool is masqueraded.
func baseChains(prefix string, hostVerdict match) map[string]*object {
	from, to := ifnamePrefix(false, prefix), ifnamePrefix(true, prefix)
	established := ctState(ctEstablished|ctRelated, "established,related")
	invalid := ctState(ctInvalid, "invalid")
	markAccepted := markSetOr(acceptMark)
	return map[string]*object{
		"forward": {kind: chainKind, hook: &hook{typ: nftables.ChainTypeFilter, num: nftables.ChainHookForward, priority: -10,
			text: "{ type filter hook forward priority filter - 10; policy accept; }"}, rules: []rule{
			newRule(established, accept),
			newRule(from, invalid, drop),
			newRule(to, invalid, drop),
			newRule(from, jump(fromWLChain)),
			newRule(to, jump(toWLChain)),
			newRule(from, markAccepted, accept),
			newRule(to, markAccepted, accept),
		}},
		"input": {kind: chainKind, hook: &hook{typ: nftables.ChainTypeFilter, num: nftables.ChainHookInput, priority: -10,
			text: "{ type filter hook input priority filter - 10; policy accept; }"}, rules: []rule{
			newRule(established, accept),
			newRule(from, l4proto(58, false), icmpField(true, false, false).between([]byte{130}, []byte{136}, "130-136", false), accept),
			newRule(from, jump(fromWLChain)),
			newRule(from, hostVerdict),
		}},
		fromWLChain: {kind: chainKind, rules: []rule{newRule(dispatch(false, fromWLMap)), newRule(drop)}},
		toWLChain:   {kind: chainKind, rules: []rule{newRule(dispatch(true, toWLMap)), newRule(drop)}},
		"postrouting": {kind: chainKind, hook: &hook{typ: nftables.ChainTypeNAT, num: nftables.ChainHookPostrouting, priority: 100,
			text: "{ type nat hook postrouting priority srcnat; policy accept; }"}, rules: []rule{
			newRule(nfproto(4), addrField(4, false).inSet("masq-pools4", false), addrField(4, true).inSet("all-pools4", true), masquerade()),
			newRule(nfproto(6), addrField(6, false).inSet("masq-pools6", false), addrField(6, true).inSet("all-pools6", true), masquerade()),
		}},
	}
}
