package api

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// FieldError names the resource, the field and what is wrong with it.
type FieldError struct {
	Kind, Name, Field, Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s: %s", e.Kind, e.Name, e.Field, e.Reason)
}

var (
	// Calico resource names and the identifiers in a workload endpoint: DNS subdomains (Kubernetes' rule).
	subdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// Profiles are named after Docker networks, which may use upper case and '_'.
	profileNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9_])?$`)
	// A label key's name part (after an optional "<subdomain>/" prefix) and a label value.
	labelNameRE   = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRE  = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	containerIDRE = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	interfaceRE   = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	// Named ports (Kubernetes' IsValidPortName): lower-case letters, digits and single inner '-'.
	portNameRE    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	ifacePrefixRE = regexp.MustCompile(`^[a-zA-Z0-9]+(,[a-zA-Z0-9]+)*$`)
)

// validName is Calico's rule for resource names: a DNS subdomain of at most 253 characters.
func validName(s string) bool { return len(s) <= 253 && subdomainRE.MatchString(s) }

// validLabelKey is Kubernetes' qualified name: an optional subdomain prefix and '/', then a name of at
// most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit.
func validLabelKey(k string) bool {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = prefix
	} else if !validName(prefix) {
		return false
	}
	return len(name) <= 63 && labelNameRE.MatchString(name)
}

// validLabelValue is Kubernetes' rule for label values: empty, or at most 63 characters as validLabelKey's name.
func validLabelValue(v string) bool { return len(v) <= 63 && labelValueRE.MatchString(v) }

// parseIP parses an address as Go's net.ParseIP, which Calico uses: no zone, IPv4-mapped means IPv4.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil && a.Zone() == ""
}

// Default fills in the fields Calico defaults when they are omitted.
func Default(o Object) {
	switch r := o.(type) {
	case *IPPool:
		s := &r.Spec
		if prefix, err := netip.ParsePrefix(s.CIDR); err == nil && s.BlockSize == 0 {
			s.BlockSize = 26
			if prefix.Addr().Is6() {
				s.BlockSize = 122
			}
		}
		s.IPIPMode = defaultString(s.IPIPMode, EncapNever)
		s.VXLANMode = defaultString(s.VXLANMode, EncapNever)
		s.NodeSelector = defaultString(s.NodeSelector, "all()")
		s.AssignmentMode = defaultString(s.AssignmentMode, AssignAutomatic)
		if len(s.AllowedUses) == 0 {
			s.AllowedUses = []string{"Workload", "Tunnel"}
		}
	case *NetworkPolicy:
		defaultPolicy(&r.Spec)
	case *GlobalNetworkPolicy:
		defaultPolicy(&r.Spec)
	case *BGPConfiguration:
		// The CRD schema's defaults, which upstream calicoctl writes in etcd mode as the API server does.
		r.Spec.LogSeverityScreen = defaultString(r.Spec.LogSeverityScreen, "Info")
		r.Spec.ServiceLoadBalancerAggregation = defaultString(r.Spec.ServiceLoadBalancerAggregation, "Enabled")
	case *WorkloadEndpoint:
		if r.Labels == nil {
			r.Labels = map[string]string{}
		}
		r.Labels[LabelNamespace] = r.Namespace
		r.Labels[LabelOrchestrator] = r.Spec.Orchestrator
	}
}

func defaultPolicy(s *PolicySpec) {
	s.Tier = defaultString(s.Tier, "default")
	if len(s.Types) == 0 {
		if len(s.Ingress) > 0 || len(s.Egress) == 0 {
			s.Types = append(s.Types, PolicyTypeIngress)
		}
		if len(s.Egress) > 0 {
			s.Types = append(s.Types, PolicyTypeEgress)
		}
	}
}

func defaultString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Validate checks an object the way Calico's validator does, returning a *FieldError for the first problem.
func Validate(o Object) error {
	info := KindOf(o)
	meta := o.GetObjectMeta()
	v := &validator{kind: info.Kind, name: meta.Name}
	if info.Kind == KindProfile {
		v.check("metadata.name", profileNameRE.MatchString(meta.Name), "must be 1-253 characters of letters, digits, '_', '.' or '-', starting with a letter or digit")
	} else if info.Kind != KindWorkloadEndpoint { // checked after the identifiers it is made of
		v.check("metadata.name", validName(meta.Name), "must be 1-253 lower-case letters, digits, '.' or '-', each dot-separated part starting and ending with a letter or digit")
	}
	if info.Namespaced {
		v.check("metadata.namespace", validName(meta.Namespace), "a namespace is required (lower-case letters, digits, '.' or '-')")
	} else {
		v.check("metadata.namespace", meta.Namespace == "", "must be empty: "+info.Kind+" is not namespaced")
	}
	v.labels("metadata.labels", meta.Labels)
	switch r := o.(type) {
	case *IPPool:
		v.ipPool(&r.Spec)
	case *Profile:
		v.rules("spec.ingress", r.Spec.Ingress)
		v.rules("spec.egress", r.Spec.Egress)
		v.labels("spec.labelsToApply", r.Spec.LabelsToApply)
	case *WorkloadEndpoint:
		v.workloadEndpoint(r)
	case *NetworkPolicy:
		v.policy(&r.Spec)
	case *GlobalNetworkPolicy:
		v.policy(&r.Spec)
	case *FelixConfiguration:
		v.felixConfiguration(&r.Spec)
	case *BGPConfiguration:
		v.bgpConfiguration(r.Name, &r.Spec)
	case *BGPPeer:
		v.bgpPeer(&r.Spec)
	case *Node:
		if r.Spec.BGP != nil {
			v.optionalPrefix("spec.bgp.ipv4Address", r.Spec.BGP.IPv4Address)
			v.optionalPrefix("spec.bgp.ipv6Address", r.Spec.BGP.IPv6Address)
		}
	}
	return v.err
}

type validator struct {
	kind, name string
	err        error
}

func (v *validator) check(field string, ok bool, reason string) {
	if !ok && v.err == nil {
		v.err = &FieldError{Kind: v.kind, Name: v.name, Field: field, Reason: reason}
	}
}

// checkf is check with a reason formatted only when it is needed: most resources pass, and formatting
// every reason was most of the garbage of reading a large cluster.
func (v *validator) checkf(field string, ok bool, format string, args ...any) {
	if !ok && v.err == nil {
		v.check(field, false, fmt.Sprintf(format, args...))
	}
}

func (v *validator) ipPool(s *IPPoolSpec) {
	prefix, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		v.checkf("spec.cidr", false, "%q is not a valid CIDR", s.CIDR)
		return
	}
	v.checkf("spec.cidr", prefix == prefix.Masked(), "%q has host bits set (did you mean %s?)", s.CIDR, prefix.Masked())
	lo, hi := 20, 32
	if prefix.Addr().Is6() {
		lo, hi = 116, 128
	}
	v.checkf("spec.blockSize", s.BlockSize >= lo && s.BlockSize <= hi, "%d is out of range: must be %d to %d", s.BlockSize, lo, hi)
	v.checkf("spec.blockSize", s.BlockSize >= prefix.Bits(), "%d is larger than the pool itself (/%d)", s.BlockSize, prefix.Bits())
	for _, m := range []struct{ field, mode string }{{"spec.ipipMode", s.IPIPMode}, {"spec.vxlanMode", s.VXLANMode}} {
		v.checkf(m.field, slices.Contains([]string{EncapNever, EncapAlways, EncapCrossSubnet}, m.mode), "%q must be Never, Always or CrossSubnet", m.mode)
	}
	v.check("spec.ipipMode", s.IPIPMode == EncapNever || s.VXLANMode == EncapNever, "IPIP and VXLAN cannot both be enabled on one pool")
	v.checkf("spec.assignmentMode", s.AssignmentMode == AssignAutomatic || s.AssignmentMode == AssignManual, "%q must be Automatic or Manual", s.AssignmentMode)
	v.selector("spec.nodeSelector", s.NodeSelector)
	for _, use := range s.AllowedUses {
		v.checkf("spec.allowedUses", slices.Contains([]string{"Workload", "Tunnel", "LoadBalancer"}, use), "%q must be Workload, Tunnel or LoadBalancer", use)
	}
}

// felixConfiguration checks the modelled fields with the rules of Calico's validator (Felix itself also
// accepts the upper-case spellings of the actions, as in its environment variables).
func (v *validator) felixConfiguration(s *FelixConfigurationSpec) {
	v.oneOfFold("spec.logSeverityScreen", s.LogSeverityScreen, "Debug", "Info", "Warning", "Error", "Fatal")
	v.oneOfFold("spec.defaultEndpointToHostAction", s.DefaultEndpointToHostAction, "Drop", "Accept", "Return")
	v.oneOfFold("spec.chainInsertMode", s.ChainInsertMode, "Insert", "Append")
	v.oneOfFold("spec.iptablesBackend", s.IptablesBackend, "Legacy", "NFT", "Auto")
	v.oneOfFold("spec.nftablesMode", s.NFTablesMode, "Disabled", "Enabled", "Auto")
	v.oneOfFold("spec.routeSource", s.RouteSource, "CalicoIPAM", "WorkloadIPs")
	v.checkf("spec.interfacePrefix", s.InterfacePrefix == "" || ifacePrefixRE.MatchString(s.InterfacePrefix),
		"%q must be interface name prefixes (letters and digits) separated by commas", s.InterfacePrefix)
	if s.ReportingInterval != "" {
		_, err := time.ParseDuration(s.ReportingInterval)
		v.checkf("spec.reportingInterval", err == nil, "%q is not a duration", s.ReportingInterval)
	}
	inRange := func(field string, n *int, lo, hi int) {
		v.checkf(field, n == nil || (*n >= lo && *n <= hi), "must be %d to %d", lo, hi)
	}
	inRange("spec.vxlanPort", s.VXLANPort, 1, 65535)
	inRange("spec.vxlanVNI", s.VXLANVNI, 1, 1<<24-1)
	inRange("spec.vxlanMTU", s.VXLANMTU, 0, 65535)
	inRange("spec.vxlanMTUV6", s.VXLANMTUV6, 0, 65535)
	inRange("spec.ipipMTU", s.IPIPMTU, 0, 65535)
	inRange("spec.deviceRouteProtocol", s.DeviceRouteProtocol, 0, 255)
	if s.NATOutgoingAddress != "" {
		a, err := netip.ParseAddr(s.NATOutgoingAddress)
		v.checkf("spec.natOutgoingAddress", err == nil && a.Is4(), "%q is not an IPv4 address", s.NATOutgoingAddress)
	}
}

// oneOfFold checks an optional field against its allowed values, in any case.
func (v *validator) oneOfFold(field, value string, allowed ...string) {
	ok := value == ""
	for _, a := range allowed {
		ok = ok || strings.EqualFold(value, a)
	}
	v.checkf(field, ok, "%q must be one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) labels(field string, labels map[string]string) {
	for k, val := range labels {
		v.checkf(field, validLabelKey(k), "invalid label key %q", k)
		v.checkf(field, validLabelValue(val), "label %q: invalid value %q (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", k, val)
	}
}

// workloadEndpoint checks every modelled field with the rules of Calico's validator (libcalico-go's v3
// validator and the field tags of its WorkloadEndpointSpec), except that profiles may be named as Docker
// networks are (see profileNameRE).
func (v *validator) workloadEndpoint(r *WorkloadEndpoint) {
	s := &r.Spec
	for _, f := range []struct{ field, value string }{
		{"spec.orchestrator", s.Orchestrator}, {"spec.workload", s.Workload}, {"spec.node", s.Node},
		{"spec.pod", s.Pod}, {"spec.endpoint", s.Endpoint}, {"spec.serviceAccountName", s.ServiceAccountName},
	} {
		v.checkf(f.field, f.value == "" || subdomainRE.MatchString(f.value),
			"%q must be lower-case letters, digits, '.' or '-', each dot-separated part starting and ending with a letter or digit", f.value)
	}
	want, err := WorkloadEndpointName(*s)
	if err != nil {
		v.check("metadata.name", false, err.Error())
		return
	}
	v.checkf("metadata.name", r.Name == want, "does not match the endpoint's identifiers (want %q)", want)
	v.check("metadata.name", len(r.Name) <= 253, "longer than 253 characters")
	v.checkf("spec.containerID", s.ContainerID == "" || containerIDRE.MatchString(s.ContainerID),
		"%q must be letters, digits or '-', starting and ending with a letter or digit", s.ContainerID)
	var networks []netip.Prefix
	for _, n := range s.IPNetworks {
		p, err := ParseIPNetwork(n)
		v.checkf("spec.ipNetworks", err == nil && p.IsSingleIP(), "%q must be one address (a.b.c.d, a.b.c.d/32 or an IPv6 /128)", n)
		networks = append(networks, p)
	}
	for _, nat := range s.IPNATs {
		in, okIn := parseIP(nat.InternalIP)
		ext, okExt := parseIP(nat.ExternalIP)
		v.checkf("spec.ipNATs", okIn && okExt && in.Is4() == ext.Is4(),
			"%q -> %q must be two addresses of one IP version", nat.InternalIP, nat.ExternalIP)
		v.checkf("spec.ipNATs", slices.ContainsFunc(networks, func(p netip.Prefix) bool { return p.Contains(in) }),
			"internal address %q is not one of the endpoint's ipNetworks", nat.InternalIP)
	}
	if s.IPv4Gateway != "" {
		a, ok := parseIP(s.IPv4Gateway)
		v.checkf("spec.ipv4Gateway", ok && a.Is4(), "%q is not an IPv4 address", s.IPv4Gateway)
	}
	if s.IPv6Gateway != "" {
		a, ok := parseIP(s.IPv6Gateway)
		v.checkf("spec.ipv6Gateway", ok && a.Is6(), "%q is not an IPv6 address", s.IPv6Gateway)
	}
	for _, p := range s.Profiles {
		v.checkf("spec.profiles", profileNameRE.MatchString(p), "%q is not a profile name", p)
	}
	v.checkf("spec.interfaceName", s.InterfaceName == "*" || interfaceRE.MatchString(s.InterfaceName),
		"%q must be 1-15 letters, digits, '_', '.' or '-'", s.InterfaceName)
	if s.MAC != "" {
		_, err := net.ParseMAC(s.MAC)
		v.checkf("spec.mac", err == nil, "%q is not a MAC address", s.MAC)
	}
	for i, port := range s.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		if port.Name == "" {
			v.check(f+".name", port.HostPort != 0, "a port without a hostPort needs a name")
		} else {
			v.checkf(f+".name", len(port.Name) <= 15 && portNameRE.MatchString(port.Name) && strings.ContainsAny(port.Name, "abcdefghijklmnopqrstuvwxyz"),
				"%q must be at most 15 lower-case letters, digits and single inner '-', with a letter", port.Name)
		}
		v.checkf(f+".protocol", port.Protocol.SupportsPorts(), "%s has no ports", port.Protocol)
		v.check(f+".port", port.Port > 0, "must be 1-65535")
		if port.HostIP != "" {
			p, err := ParseIPNetwork(port.HostIP)
			v.checkf(f+".hostIP", err == nil && p == p.Masked(), "%q is not an address or a network", port.HostIP)
		}
	}
}

func (v *validator) policy(s *PolicySpec) {
	v.selector("spec.selector", s.Selector)
	v.selector("spec.namespaceSelector", s.NamespaceSelector)
	v.selector("spec.serviceAccountSelector", s.ServiceAccountSelector)
	for _, t := range s.Types {
		v.checkf("spec.types", t == PolicyTypeIngress || t == PolicyTypeEgress, "%q must be Ingress or Egress", t)
	}
	v.rules("spec.ingress", s.Ingress)
	v.rules("spec.egress", s.Egress)
}

func (v *validator) rules(field string, rules []Rule) {
	for i, r := range rules {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.checkf(f+".action", slices.Contains([]string{ActionAllow, ActionDeny, ActionLog, ActionPass}, r.Action), "%q must be Allow, Deny, Log or Pass", r.Action)
		if r.IPVersion != nil {
			v.checkf(f+".ipVersion", *r.IPVersion == 4 || *r.IPVersion == 6, "%d must be 4 or 6", *r.IPVersion)
			if r.Protocol != nil {
				n := r.Protocol.NumberValue()
				v.checkf(f+".ipVersion", (n != 1 || *r.IPVersion == 4) && (n != 58 || *r.IPVersion == 6), "%d does not match protocol %s", *r.IPVersion, r.Protocol)
			}
		}
		hasPorts := len(r.Source.Ports)+len(r.Source.NotPorts)+len(r.Destination.Ports)+len(r.Destination.NotPorts) > 0
		v.check(f+".protocol", !hasPorts || (r.Protocol != nil && r.Protocol.SupportsPorts()), "ports require protocol TCP, UDP, SCTP or UDPLite")
		for _, icmp := range []*ICMPFields{r.ICMP, r.NotICMP} {
			if icmp == nil {
				continue
			}
			isICMP := r.Protocol != nil && (r.Protocol.NumberValue() == 1 || r.Protocol.NumberValue() == 58)
			v.check(f+".icmp", isICMP, "icmp requires protocol ICMP or ICMPv6")
			v.check(f+".icmp.code", icmp.Code == nil || icmp.Type != nil, "an ICMP code requires a type")
		}
		for _, se := range []struct {
			side string
			e    EntityRule
		}{{".source", r.Source}, {".destination", r.Destination}} {
			side, e := se.side, se.e
			v.selector(f+side+".selector", e.Selector)
			v.selector(f+side+".notSelector", e.NotSelector)
			v.selector(f+side+".namespaceSelector", e.NamespaceSelector)
			if e.ServiceAccounts != nil {
				v.selector(f+side+".serviceAccounts.selector", e.ServiceAccounts.Selector)
			}
			for _, n := range append(slices.Clone(e.Nets), e.NotNets...) {
				_, err := netip.ParsePrefix(n)
				if err != nil {
					_, err = netip.ParseAddr(n)
				}
				v.checkf(f+side+".nets", err == nil, "%q is not a valid CIDR", n)
			}
		}
	}
}

func (v *validator) selector(field, sel string) {
	if err := selector.Validate(sel); err != nil {
		v.check(field, false, err.Error())
	}
}

func (v *validator) optionalPrefix(field, value string) {
	if value == "" {
		return
	}
	_, err := netip.ParsePrefix(value)
	v.checkf(field, err == nil, "%q is not an address with prefix length", value)
}
