package api

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// The rules below are those upstream calicoctl enforces on a write to etcd: libcalico-go's v3 validator
// (field tags and struct validators of BGPConfigurationSpec and BGPPeerSpec), the CRD schemas'
// constraints and CEL rules it also evaluates in etcd mode, and the "default"-only fields its
// BGPConfiguration client refuses elsewhere.

var (
	standardCommunityRE = regexp.MustCompile(`^(\d+):(\d+)$`)
	largeCommunityRE    = regexp.MustCompile(`^(\d+):(\d+):(\d+)$`)
	ignoredInterfaceRE  = regexp.MustCompile(`^[a-zA-Z0-9_.*-]{1,15}$`)
)

// maxSelectorLength is the CRDs' limit on a BGPPeer's selectors.
const maxSelectorLength = 1024

func (v *validator) bgpConfiguration(name string, s *BGPConfigurationSpec) {
	v.oneOfFold("spec.logSeverityScreen", s.LogSeverityScreen, "Trace", "Debug", "Info", "Warning", "Error", "Fatal")
	v.asNumber("spec.asNumber", s.ASNumber)
	for _, blocks := range []struct {
		field string
		list  []ServiceIPBlock
	}{{"spec.serviceLoadBalancerIPs", s.ServiceLoadBalancerIPs}, {"spec.serviceExternalIPs", s.ServiceExternalIPs}, {"spec.serviceClusterIPs", s.ServiceClusterIPs}} {
		for i, b := range blocks.list {
			if b.CIDR != "" {
				v.network(fmt.Sprintf("%s[%d].cidr", blocks.field, i), b.CIDR)
			}
		}
	}
	v.enum("spec.serviceLoadBalancerAggregation", s.ServiceLoadBalancerAggregation, "Enabled", "Disabled")
	v.communities(s)
	meshOff := s.NodeToNodeMeshEnabled != nil && !*s.NodeToNodeMeshEnabled
	v.check("spec.nodeMeshPassword", s.NodeMeshPassword == nil || !meshOff, "cannot be set when nodeToNodeMeshEnabled is false")
	v.check("spec.nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime == nil || !meshOff, "cannot be set when nodeToNodeMeshEnabled is false")
	v.enum("spec.bindMode", s.BindMode, "None", "NodeIP")
	for i, iface := range s.IgnoredInterfaces {
		v.checkf(fmt.Sprintf("spec.ignoredInterfaces[%d]", i), iface != "*" && ignoredInterfaceRE.MatchString(iface),
			"%q must be 1-15 letters, digits, '_', '.', '-' or '*' (and not just '*')", iface)
	}
	if s.LocalWorkloadPeeringIPV4 != "" {
		a, ok := parseIP(s.LocalWorkloadPeeringIPV4)
		v.checkf("spec.localWorkloadPeeringIPV4", ok && a.Is4(), "%q is not an IPv4 address", s.LocalWorkloadPeeringIPV4)
	}
	if s.LocalWorkloadPeeringIPV6 != "" {
		a, ok := parseIP(s.LocalWorkloadPeeringIPV6)
		v.checkf("spec.localWorkloadPeeringIPV6", ok && a.Is6(), "%q is not an IPv6 address", s.LocalWorkloadPeeringIPV6)
	}
	v.enum("spec.programClusterRoutes", s.ProgramClusterRoutes, "Enabled", "Disabled", "EnabledIPIPOnly", "EnabledNoEncapOnly")
	for _, p := range []struct {
		field string
		value *int
	}{{"spec.ipv4NormalRoutePriority", s.IPv4NormalRoutePriority}, {"spec.ipv6NormalRoutePriority", s.IPv6NormalRoutePriority}} {
		v.check(p.field, p.value == nil || (*p.value >= 1 && *p.value <= math.MaxInt32-1), "must be 1 to 2147483646")
	}
	if name == "default" {
		return
	}
	for _, f := range []struct {
		field string
		set   bool
	}{
		{"spec.nodeToNodeMeshEnabled", s.NodeToNodeMeshEnabled != nil},
		{"spec.asNumber", s.ASNumber != nil},
		{"spec.serviceLoadBalancerIPs", len(s.ServiceLoadBalancerIPs) > 0},
		{"spec.serviceExternalIPs", len(s.ServiceExternalIPs) > 0},
		{"spec.serviceClusterIPs", len(s.ServiceClusterIPs) > 0},
		{"spec.nodeMeshPassword", s.NodeMeshPassword != nil},
		{"spec.nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime != nil},
	} {
		v.check(f.field, !f.set, `can only be set on BGPConfiguration "default"`)
	}
}

// communities checks the named communities and the prefix advertisements that use them.
func (v *validator) communities(s *BGPConfigurationSpec) {
	v.check("spec.communities", len(s.Communities) <= 500, "at most 500 communities")
	names := map[string]bool{}
	for i, c := range s.Communities {
		f := fmt.Sprintf("spec.communities[%d]", i)
		v.checkf(f+".name", validName(c.Name), "%q must be 1-253 lower-case letters, digits, '.' or '-', each dot-separated part starting and ending with a letter or digit", c.Name)
		v.community(f+".value", c.Value)
		v.check(f+".value", len(c.Value) <= 40, "longer than 40 characters")
		names[c.Name] = true
	}
	v.check("spec.communities", len(s.Communities) == 0 || len(s.PrefixAdvertisements) > 0, "communities are defined but not used in prefixAdvertisements")
	v.check("spec.prefixAdvertisements", len(s.PrefixAdvertisements) <= 500, "at most 500 prefix advertisements")
	for i, pa := range s.PrefixAdvertisements {
		f := fmt.Sprintf("spec.prefixAdvertisements[%d]", i)
		v.network(f+".cidr", pa.CIDR)
		v.check(f+".communities", len(pa.Communities) > 0 && len(pa.Communities) <= 50, "1 to 50 communities are required")
		for _, c := range pa.Communities {
			if standardCommunityRE.MatchString(c) || largeCommunityRE.MatchString(c) {
				v.community(f+".communities", c)
			} else {
				v.checkf(f+".communities", names[c], "%q is neither a community value nor the name of one in spec.communities", c)
			}
		}
	}
}

// community checks a community value.
func (v *validator) community(field, value string) {
	_, err := ParseCommunity(value)
	v.checkf(field, err == nil, "%v", err)
}

// ParseCommunity reads a community value: "aa:nn" (standard, 16-bit parts) gives two parts, "aa:nn:mm"
// (large, 32-bit parts) three.
func ParseCommunity(value string) ([]uint32, error) {
	kind, bits := "standard", 16
	parts := standardCommunityRE.FindStringSubmatch(value)
	if parts == nil {
		kind, bits = "large", 32
		if parts = largeCommunityRE.FindStringSubmatch(value); parts == nil {
			return nil, fmt.Errorf(`%q must be "aa:nn" (a standard community) or "aa:nn:mm" (a large community)`, value)
		}
	}
	out := make([]uint32, 0, 3)
	for _, p := range parts[1:] {
		n, err := strconv.ParseUint(p, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%q: each part of a %s community must be a %d-bit number", value, kind, bits)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

func (v *validator) bgpPeer(s *BGPPeerSpec) {
	v.checkf("spec.node", s.Node == "" || validName(s.Node), "%q is not a node name", s.Node)
	v.boundedSelector("spec.nodeSelector", s.NodeSelector)
	v.check("spec.nodeSelector", s.Node == "" || s.NodeSelector == "", "node and nodeSelector cannot both be set")
	var peerAddr netip.Addr
	if s.PeerIP != "" {
		addr, _, err := ParsePeerIP(s.PeerIP)
		if err != nil {
			v.checkf("spec.peerIP", false, "%q: %v", s.PeerIP, err)
		}
		v.check("spec.peerIP", len(s.PeerIP) <= 64, "longer than 64 characters")
		peerAddr = addr
	}
	v.asNumber("spec.asNumber", &s.ASNumber)
	v.asNumber("spec.localASNumber", s.LocalASNumber)
	v.boundedSelector("spec.peerSelector", s.PeerSelector)
	v.check("spec.peerSelector", s.PeerIP == "" || s.PeerSelector == "", "peerIP and peerSelector cannot both be set")
	v.check("spec.asNumber", s.PeerSelector == "" || s.ASNumber == 0, "must be empty when peerSelector is set (each peer's own AS number is used)")
	v.enum("spec.nextHopMode", s.NextHopMode, "Auto", "Self", "Keep")
	v.check("spec.nextHopMode", !s.KeepOriginalNextHop || s.NextHopMode == "", "keepOriginalNextHop and nextHopMode cannot both be set; keepOriginalNextHop is deprecated, use nextHopMode instead")
	v.enum("spec.sourceAddress", s.SourceAddress, SourceAddressUseNodeIP, SourceAddressNone)
	if s.ReachableBy != "" {
		gw, ok := parseIP(s.ReachableBy)
		v.checkf("spec.reachableBy", ok && len(s.ReachableBy) <= 64, "%q is not an IP address", s.ReachableBy)
		v.check("spec.reachableBy", s.PeerIP != "", "must be empty when peerIP is empty")
		v.check("spec.reachableBy", !peerAddr.IsValid() || gw.Is4() == peerAddr.Is4(), "reachableBy and peerIP address family mismatched")
	}
	for i, f := range s.Filters {
		v.checkf(fmt.Sprintf("spec.filters[%d]", i), validName(f), "%q is not a BGPFilter name", f)
	}
	v.boundedSelector("spec.localWorkloadSelector", s.LocalWorkloadSelector)
	if s.LocalWorkloadSelector != "" {
		v.check("spec.peerIP", s.PeerIP == "", "must be empty when localWorkloadSelector is set")
		v.check("spec.peerSelector", s.PeerSelector == "", "must be empty when localWorkloadSelector is set")
		v.check("spec.asNumber", s.ASNumber != 0, "is required when localWorkloadSelector is set")
	}
	v.enum("spec.reversePeering", s.ReversePeering, "Auto", "Manual")
}

// asNumber enforces the CRD schema's int32 format, which upstream checks even in etcd mode.
func (v *validator) asNumber(field string, n *ASNumber) {
	v.checkf(field, n == nil || *n <= math.MaxInt32, "%v is out of range: Calico's schema holds AS numbers up to 2147483647", n)
}

func (v *validator) boundedSelector(field, sel string) {
	v.selector(field, sel)
	v.checkf(field, len(sel) <= maxSelectorLength, "longer than %d characters", maxSelectorLength)
}

// network checks a CIDR written with its prefix length and no host bits (a bare address is refused).
func (v *validator) network(field, value string) {
	p, err := netip.ParsePrefix(value)
	v.checkf(field, err == nil && p == p.Masked(), "%q is not a CIDR without host bits", value)
}

// enum checks an optional field against its exact allowed values.
func (v *validator) enum(field, value string, allowed ...string) {
	ok := value == ""
	for _, a := range allowed {
		ok = ok || value == a
	}
	v.checkf(field, ok, "%q must be one of %s", value, strings.Join(allowed, ", "))
}
