package firewall

import "fmt"

// Mark bits, Felix's lowest two of its default mark mask 0xffff0000: a policy or profile chain sets
// accept when it allows a packet and pass when a rule says Pass; endpoint chains read and clear them.
// The base chains also set accept on workload packets they let through, so later rules can tell what
// Calico allowed.
const (
	acceptMark = "0x10000"
	passMark   = "0x20000"
	clearMarks = "0xfffcffff" // both bits off
	clearPass  = "0xfffdffff"
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
func baseChains(prefix, hostVerdict string) map[string]*object {
	wl := fmt.Sprintf(`"%s*"`, prefix)
	return map[string]*object{
		"forward": {kind: chainKind, spec: "{ type filter hook forward priority filter - 10; policy accept; }", rules: []string{
			"ct state established,related accept",
			"iifname " + wl + " ct state invalid drop",
			"oifname " + wl + " ct state invalid drop",
			"iifname " + wl + " jump " + fromWLChain,
			"oifname " + wl + " jump " + toWLChain,
			"iifname " + wl + " meta mark set meta mark | " + acceptMark + " accept",
			"oifname " + wl + " meta mark set meta mark | " + acceptMark + " accept",
		}},
		"input": {kind: chainKind, spec: "{ type filter hook input priority filter - 10; policy accept; }", rules: []string{
			"ct state established,related accept",
			"iifname " + wl + " icmpv6 type 130-136 accept",
			"iifname " + wl + " jump " + fromWLChain,
			"iifname " + wl + " " + hostVerdict,
		}},
		fromWLChain: {kind: chainKind, rules: []string{"iifname vmap @" + fromWLMap, "drop"}},
		toWLChain:   {kind: chainKind, rules: []string{"oifname vmap @" + toWLMap, "drop"}},
		"postrouting": {kind: chainKind, spec: "{ type nat hook postrouting priority srcnat; policy accept; }", rules: []string{
			"ip saddr @masq-pools4 ip daddr != @all-pools4 masquerade",
			"ip6 saddr @masq-pools6 ip6 daddr != @all-pools6 masquerade",
		}},
	}
}
