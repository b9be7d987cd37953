package api

import (
	"fmt"
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
	// Calico resource names: lower-case DNS subdomain style.
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	// Profiles are named after Docker networks, which may use upper case and '_'.
	profileNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9_])?$`)
	labelKeyRE    = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?/)?[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$`)
	ifacePrefixRE = regexp.MustCompile(`^[a-zA-Z0-9]+(,[a-zA-Z0-9]+)*$`)
	macRE         = regexp.MustCompile(`^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$`)
)

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
	} else if info.Kind != KindWorkloadEndpoint {
		v.check("metadata.name", nameRE.MatchString(meta.Name), "must be 1-253 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit")
	}
	if info.Namespaced {
		v.check("metadata.namespace", nameRE.MatchString(meta.Namespace), "a namespace is required (lower-case letters, digits, '.' or '-')")
	} else {
		v.check("metadata.namespace", meta.Namespace == "", "must be empty: "+info.Kind+" is not namespaced")
	}
	for k := range meta.Labels {
		v.check("metadata.labels", labelKeyRE.MatchString(k), fmt.Sprintf("invalid label key %q", k))
	}
	switch r := o.(type) {
	case *IPPool:
		v.ipPool(&r.Spec)
	case *Profile:
		v.rules("spec.ingress", r.Spec.Ingress)
		v.rules("spec.egress", r.Spec.Egress)
		for k := range r.Spec.LabelsToApply {
			v.check("spec.labelsToApply", labelKeyRE.MatchString(k), fmt.Sprintf("invalid label key %q", k))
		}
	case *WorkloadEndpoint:
		v.workloadEndpoint(r)
	case *NetworkPolicy:
		v.policy(&r.Spec)
	case *GlobalNetworkPolicy:
		v.policy(&r.Spec)
	case *FelixConfiguration:
		v.felixConfiguration(&r.Spec)
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

func (v *validator) ipPool(s *IPPoolSpec) {
	prefix, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		v.check("spec.cidr", false, fmt.Sprintf("%q is not a valid CIDR", s.CIDR))
		return
	}
	v.check("spec.cidr", prefix == prefix.Masked(), fmt.Sprintf("%q has host bits set (did you mean %s?)", s.CIDR, prefix.Masked()))
	lo, hi := 20, 32
	if prefix.Addr().Is6() {
		lo, hi = 116, 128
	}
	v.check("spec.blockSize", s.BlockSize >= lo && s.BlockSize <= hi, fmt.Sprintf("%d is out of range: must be %d to %d", s.BlockSize, lo, hi))
	v.check("spec.blockSize", s.BlockSize >= prefix.Bits(), fmt.Sprintf("%d is larger than the pool itself (/%d)", s.BlockSize, prefix.Bits()))
	for _, m := range []struct{ field, mode string }{{"spec.ipipMode", s.IPIPMode}, {"spec.vxlanMode", s.VXLANMode}} {
		v.check(m.field, slices.Contains([]string{EncapNever, EncapAlways, EncapCrossSubnet}, m.mode), fmt.Sprintf("%q must be Never, Always or CrossSubnet", m.mode))
	}
	v.check("spec.ipipMode", s.IPIPMode == EncapNever || s.VXLANMode == EncapNever, "IPIP and VXLAN cannot both be enabled on one pool")
	v.check("spec.assignmentMode", s.AssignmentMode == AssignAutomatic || s.AssignmentMode == AssignManual, fmt.Sprintf("%q must be Automatic or Manual", s.AssignmentMode))
	v.selector("spec.nodeSelector", s.NodeSelector)
	for _, use := range s.AllowedUses {
		v.check("spec.allowedUses", slices.Contains([]string{"Workload", "Tunnel", "LoadBalancer"}, use), fmt.Sprintf("%q must be Workload, Tunnel or LoadBalancer", use))
	}
}

// felixConfiguration checks the modelled fields with the rules of Calico's validator (Felix itself also
// accepts the upper-case spellings of the actions, as in its environment variables).
func (v *validator) felixConfiguration(s *FelixConfigurationSpec) {
	oneOf := func(field, value string, allowed ...string) {
		ok := value == ""
		for _, a := range allowed {
			ok = ok || strings.EqualFold(value, a)
		}
		v.check(field, ok, fmt.Sprintf("%q must be one of %s", value, strings.Join(allowed, ", ")))
	}
	oneOf("spec.logSeverityScreen", s.LogSeverityScreen, "Debug", "Info", "Warning", "Error", "Fatal")
	oneOf("spec.defaultEndpointToHostAction", s.DefaultEndpointToHostAction, "Drop", "Accept", "Return")
	oneOf("spec.chainInsertMode", s.ChainInsertMode, "Insert", "Append")
	oneOf("spec.iptablesBackend", s.IptablesBackend, "Legacy", "NFT", "Auto")
	oneOf("spec.nftablesMode", s.NFTablesMode, "Disabled", "Enabled", "Auto")
	oneOf("spec.routeSource", s.RouteSource, "CalicoIPAM", "WorkloadIPs")
	v.check("spec.interfacePrefix", s.InterfacePrefix == "" || ifacePrefixRE.MatchString(s.InterfacePrefix),
		fmt.Sprintf("%q must be interface name prefixes (letters and digits) separated by commas", s.InterfacePrefix))
	if s.ReportingInterval != "" {
		_, err := time.ParseDuration(s.ReportingInterval)
		v.check("spec.reportingInterval", err == nil, fmt.Sprintf("%q is not a duration", s.ReportingInterval))
	}
	inRange := func(field string, n *int, lo, hi int) {
		v.check(field, n == nil || (*n >= lo && *n <= hi), fmt.Sprintf("must be %d to %d", lo, hi))
	}
	inRange("spec.vxlanPort", s.VXLANPort, 1, 65535)
	inRange("spec.vxlanVNI", s.VXLANVNI, 1, 1<<24-1)
	inRange("spec.vxlanMTU", s.VXLANMTU, 0, 65535)
	inRange("spec.vxlanMTUV6", s.VXLANMTUV6, 0, 65535)
	inRange("spec.ipipMTU", s.IPIPMTU, 0, 65535)
	inRange("spec.deviceRouteProtocol", s.DeviceRouteProtocol, 0, 255)
	if s.NATOutgoingAddress != "" {
		a, err := netip.ParseAddr(s.NATOutgoingAddress)
		v.check("spec.natOutgoingAddress", err == nil && a.Is4(), fmt.Sprintf("%q is not an IPv4 address", s.NATOutgoingAddress))
	}
}

func (v *validator) workloadEndpoint(r *WorkloadEndpoint) {
	want, err := WorkloadEndpointName(r.Spec)
	if err != nil {
		v.check("metadata.name", false, err.Error())
		return
	}
	v.check("metadata.name", r.Name == want, fmt.Sprintf("does not match the endpoint's identifiers (want %q)", want))
	for _, n := range r.Spec.IPNetworks {
		p, err := netip.ParsePrefix(n)
		v.check("spec.ipNetworks", err == nil && p.IsSingleIP(), fmt.Sprintf("%q must be a /32 or /128 address", n))
	}
	v.check("spec.mac", r.Spec.MAC == "" || macRE.MatchString(r.Spec.MAC), fmt.Sprintf("%q is not a MAC address", r.Spec.MAC))
	v.check("spec.interfaceName", len(r.Spec.InterfaceName) <= 15, fmt.Sprintf("%q is longer than 15 characters", r.Spec.InterfaceName))
}

func (v *validator) policy(s *PolicySpec) {
	v.selector("spec.selector", s.Selector)
	v.selector("spec.namespaceSelector", s.NamespaceSelector)
	v.selector("spec.serviceAccountSelector", s.ServiceAccountSelector)
	for _, t := range s.Types {
		v.check("spec.types", t == PolicyTypeIngress || t == PolicyTypeEgress, fmt.Sprintf("%q must be Ingress or Egress", t))
	}
	v.rules("spec.ingress", s.Ingress)
	v.rules("spec.egress", s.Egress)
}

func (v *validator) rules(field string, rules []Rule) {
	for i, r := range rules {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.check(f+".action", slices.Contains([]string{ActionAllow, ActionDeny, ActionLog, ActionPass}, r.Action), fmt.Sprintf("%q must be Allow, Deny, Log or Pass", r.Action))
		if r.IPVersion != nil {
			v.check(f+".ipVersion", *r.IPVersion == 4 || *r.IPVersion == 6, fmt.Sprintf("%d must be 4 or 6", *r.IPVersion))
			if r.Protocol != nil {
				n := r.Protocol.NumberValue()
				v.check(f+".ipVersion", (n != 1 || *r.IPVersion == 4) && (n != 58 || *r.IPVersion == 6), fmt.Sprintf("%d does not match protocol %s", *r.IPVersion, r.Protocol))
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
				v.check(f+side+".nets", err == nil, fmt.Sprintf("%q is not a valid CIDR", n))
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
	v.check(field, err == nil, fmt.Sprintf("%q is not an address with prefix length", value))
}
