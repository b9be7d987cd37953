// Package policy computes what Calico network policy means for this host, without touching the kernel:
// from workload endpoints (of every node), profiles, tiers, NetworkPolicies and GlobalNetworkPolicies it
// derives, for each local endpoint and direction, the ordered list of policies and profiles that decide
// its traffic (a Plan); for each active policy and profile (one a local endpoint's plan uses), its rules
// with selectors resolved to IP sets; and for each selector used in an active rule, the set of addresses
// of the endpoints (of any node) it matches.
//
// The Index is incremental, as Felix's calculation graph is: a label change re-evaluates the selectors
// against that one endpoint, and TakeChanges reports only the sets, rule lists and interfaces whose
// content changed, so a renderer can update the dataplane by difference.
package policy

import (
	"net/netip"
	"slices"
	"strings"
)

// Direction is the way traffic crosses a workload's interface.
type Direction uint8

// Directions, as seen from the workload.
const (
	Ingress Direction = iota // traffic to the workload
	Egress                   // traffic from the workload
)

// Directions lists both directions, for loops.
var Directions = [2]Direction{Ingress, Egress}

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// Kinds of rule owner.
const (
	KindGlobalPolicy = "gnp"
	KindPolicy       = "np"
	KindProfile      = "pro"
)

// RuleSetID names the rules of one policy or profile for one direction.
type RuleSetID struct {
	Kind      string // KindGlobalPolicy, KindPolicy or KindProfile
	Namespace string // a NetworkPolicy's namespace
	Name      string
	Dir       Direction
}

func (id RuleSetID) String() string {
	parts := []string{id.Kind, id.Name, id.Dir.String()}
	if id.Namespace != "" {
		parts = []string{id.Kind, id.Namespace, id.Name, id.Dir.String()}
	}
	return strings.Join(parts, "/")
}

// Rule is a Calico rule resolved for a dataplane: addresses parsed and merged, selectors and named
// ports replaced by IP set IDs. Zero values mean "no constraint".
type Rule struct {
	Action                string // api.ActionAllow, ActionDeny, ActionPass or ActionLog
	IPVersion             int    // 4, 6 or 0 for both
	Protocol, NotProtocol uint8
	ICMP, NotICMP         *ICMPMatch
	Src, Dst              Entity
}

// ICMPMatch matches an ICMP (or ICMPv6, following the rule's protocol) type and optionally code.
type ICMPMatch struct {
	Type    uint8
	Code    uint8
	HasCode bool
}

// Entity matches one end of a packet. Ports and NamedPorts are alternatives: the packet's port must be
// in Ports, or its address, protocol and port in one of the NamedPorts sets (whose members all match
// the selector already, so that alternative needs no Set match). It must be in none of NotPorts and
// NotNamedPorts.
type Entity struct {
	Nets, NotNets             []netip.Prefix // merged: none contains another
	Set, NotSet               string         // IP set IDs of the selector and notSelector
	Ports, NotPorts           []PortRange    // merged, sorted, non-overlapping
	NamedPorts, NotNamedPorts []string       // IDs of named-port sets
}

// HasAddresses reports whether the entity matches addresses, which belong to one IP family.
func (e Entity) HasAddresses() bool {
	return len(e.Nets)+len(e.NotNets)+len(e.NamedPorts)+len(e.NotNamedPorts) > 0 || e.Set != "" || e.NotSet != ""
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Min, Max uint16 }

// Plan is what decides one local endpoint's traffic in one direction, in evaluation order: each tier's
// policies (a tier that applies and passes nothing ends in a drop, unless its default action is Pass),
// then the endpoint's profiles, then a drop.
type Plan struct {
	Tiers    []TierPlan
	Profiles []RuleSetID
}

// TierPlan is one tier's applicable policies, in order.
type TierPlan struct {
	Name     string
	Policies []RuleSetID
	EndPass  bool // the tier's defaultAction is Pass: traffic no policy decided goes on to the next tier
}

// Equal reports whether two plans are the same.
func (p Plan) Equal(q Plan) bool {
	return slices.Equal(p.Profiles, q.Profiles) && slices.EqualFunc(p.Tiers, q.Tiers, func(a, b TierPlan) bool {
		return a.Name == b.Name && a.EndPass == b.EndPass && slices.Equal(a.Policies, b.Policies)
	})
}

// Key is a canonical text of the plan: equal plans have equal keys, so endpoints can share its chain.
func (p Plan) Key() string {
	var b strings.Builder
	for _, t := range p.Tiers {
		b.WriteString("tier " + t.Name)
		if t.EndPass {
			b.WriteString(" pass")
		}
		for _, id := range t.Policies {
			b.WriteString("|" + id.String())
		}
		b.WriteString(";")
	}
	for _, id := range p.Profiles {
		b.WriteString("profile " + id.String() + ";")
	}
	return b.String()
}

// LocalEndpoint is a workload endpoint of this node, as the dataplane needs it.
type LocalEndpoint struct {
	Key   string // datastore key
	Iface string
	MAC   string
	Addrs []netip.Addr
	Plans [2]Plan // by Direction
}

// Changes lists what changed since the last TakeChanges; look the current content up in the Index (a
// missing entry means it was deleted).
type Changes struct {
	Sets       map[string]struct{}    // IP sets created, deleted or with different members
	RuleSets   map[RuleSetID]struct{} // rule lists created, deleted or changed
	Interfaces map[string]struct{}    // local interfaces whose endpoint, addresses or plans changed
	Warnings   []string               // what could not be enforced, for the log
}

func newChanges() Changes {
	return Changes{Sets: map[string]struct{}{}, RuleSets: map[RuleSetID]struct{}{}, Interfaces: map[string]struct{}{}}
}
