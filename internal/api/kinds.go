package api

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// KindInfo describes how a kind is named, stored and created.
type KindInfo struct {
	Kind       string
	Plural     string // etcd path segment
	Namespaced bool
	New        func() Object
}

// kinds is the fixed registry of kinds this project understands (read-only after package init).
var kinds = []KindInfo{
	{Kind: KindIPPool, Plural: "ippools", New: func() Object { return &IPPool{} }},
	{Kind: KindProfile, Plural: "profiles", New: func() Object { return &Profile{} }},
	{Kind: KindWorkloadEndpoint, Plural: "workloadendpoints", Namespaced: true, New: func() Object { return &WorkloadEndpoint{} }},
	{Kind: KindNetworkPolicy, Plural: "networkpolicies", Namespaced: true, New: func() Object { return &NetworkPolicy{} }},
	{Kind: KindGlobalNetworkPolicy, Plural: "globalnetworkpolicies", New: func() Object { return &GlobalNetworkPolicy{} }},
	{Kind: KindNode, Plural: "nodes", New: func() Object { return &Node{} }},
	{Kind: KindClusterInformation, Plural: "clusterinformations", New: func() Object { return &ClusterInformation{} }},
	{Kind: KindTier, Plural: "tiers", New: func() Object { return &Tier{} }},
	{Kind: KindFelixConfiguration, Plural: "felixconfigurations", New: func() Object { return &FelixConfiguration{} }},
	{Kind: KindBGPConfiguration, Plural: "bgpconfigurations", New: func() Object { return &BGPConfiguration{} }},
	{Kind: KindBGPPeer, Plural: "bgppeers", New: func() Object { return &BGPPeer{} }},
}

// Kind names.
const (
	KindIPPool              = "IPPool"
	KindProfile             = "Profile"
	KindWorkloadEndpoint    = "WorkloadEndpoint"
	KindNetworkPolicy       = "NetworkPolicy"
	KindGlobalNetworkPolicy = "GlobalNetworkPolicy"
	KindNode                = "Node"
	KindClusterInformation  = "ClusterInformation"
	KindTier                = "Tier"
	KindFelixConfiguration  = "FelixConfiguration"
	KindBGPConfiguration    = "BGPConfiguration"
	KindBGPPeer             = "BGPPeer"
)

// LookupKind finds a kind by its name, plural or singular lower-case name, or common short form
// ("ippool", "ippools", "wep", "gnp", ...), as calicoctl accepts them.
func LookupKind(name string) (KindInfo, error) {
	n := strings.ToLower(name)
	short := map[string]string{"wep": KindWorkloadEndpoint, "weps": KindWorkloadEndpoint, "gnp": KindGlobalNetworkPolicy,
		"gnps": KindGlobalNetworkPolicy, "np": KindNetworkPolicy, "nps": KindNetworkPolicy, "pool": KindIPPool, "pools": KindIPPool,
		"felixconfig": KindFelixConfiguration, "felixconfigs": KindFelixConfiguration,
		"bgpconfig": KindBGPConfiguration, "bgpconfigs": KindBGPConfiguration,
		"bgpp": KindBGPPeer, "bgpps": KindBGPPeer, "bp": KindBGPPeer, "bps": KindBGPPeer}
	if k, ok := short[n]; ok {
		n = strings.ToLower(k)
	}
	for _, k := range kinds {
		if n == strings.ToLower(k.Kind) || n == k.Plural {
			return k, nil
		}
	}
	return KindInfo{}, fmt.Errorf("unknown resource kind %q (known: %s)", name, strings.Join(KindNames(), ", "))
}

// KindOf returns the registry entry for an object.
func KindOf(o Object) KindInfo {
	for _, k := range kinds {
		if reflect.TypeOf(k.New()) == reflect.TypeOf(o) {
			return k
		}
	}
	panic(fmt.Sprintf("api: unregistered type %T", o))
}

// KindNames lists the known kinds, sorted.
func KindNames() []string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.Kind)
	}
	sort.Strings(names)
	return names
}
