package api

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Libnetwork identifiers used in workload endpoint names and fields.
const (
	OrchestratorLibnetwork = "libnetwork"
	NamespaceLibnetwork    = "libnetwork"
)

// WorkloadEndpointName computes Calico's name for a workload endpoint: the identifying segments joined
// with "-", each "-" inside a segment doubled. For libnetwork the orchestrator is used twice
// (node-libnetwork-libnetwork-endpoint), exactly as Calico does.
func WorkloadEndpointName(spec WorkloadEndpointSpec) (string, error) {
	segments := []string{spec.Node, spec.Orchestrator, spec.Workload, spec.Endpoint}
	fields := []string{"node", "orchestrator", "workload", "endpoint"}
	switch spec.Orchestrator {
	case "k8s":
		segments[2], fields[2] = spec.Pod, "pod"
	case "cni":
		segments[2], fields[2] = spec.ContainerID, "containerID"
	case OrchestratorLibnetwork:
		segments[2], fields[2] = spec.Orchestrator, "orchestrator"
	}
	escaped := make([]string, len(segments))
	for i, s := range segments {
		if s == "" {
			return "", fmt.Errorf("workload endpoint name: spec.%s must be set", fields[i])
		}
		if strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") {
			return "", fmt.Errorf("workload endpoint name: spec.%s %q may not begin or end with '-'", fields[i], s)
		}
		escaped[i] = escapeSegment(s)
	}
	return strings.Join(escaped, "-"), nil
}

// EndpointNamePrefix is how the names of a node's workload endpoints begin (those of a few other nodes
// may too: "a-" begins "a--b-...", of node a-b).
func EndpointNamePrefix(node string) string { return escapeSegment(node) + "-" }

func escapeSegment(s string) string { return strings.ReplaceAll(s, "-", "--") }

// LibnetworkEndpoint builds the identifying part of a libnetwork workload endpoint.
func LibnetworkEndpoint(node, endpointID string) (*WorkloadEndpoint, error) {
	wep := &WorkloadEndpoint{Spec: WorkloadEndpointSpec{
		Orchestrator: OrchestratorLibnetwork,
		Workload:     OrchestratorLibnetwork,
		Node:         node,
		Endpoint:     endpointID,
	}}
	wep.Namespace = NamespaceLibnetwork
	name, err := WorkloadEndpointName(wep.Spec)
	wep.Name = name
	return wep, err
}

var (
	// Docker's object IDs: 64 lower-case hexadecimal characters, or an abbreviation of at least 12.
	dockerIDRE = regexp.MustCompile(`^[0-9a-f]{12,64}$`)
	// The shape LibnetworkInterface gives every name: Docker endpoint IDs are hexadecimal.
	libnetworkIfaceRE = regexp.MustCompile(`^cali[0-9a-f]{11}$`)
)

// IsDockerID reports whether s is a Docker ID (network, endpoint, container).
func IsDockerID(s string) bool { return dockerIDRE.MatchString(s) }

// LibnetworkInterface is the host end of a libnetwork endpoint's veth, named as Calico's libnetwork plugin
// names it: "cali" + the first 11 characters of the endpoint ID (15 characters, the kernel's limit).
func LibnetworkInterface(endpointID string) string {
	return "cali" + endpointID[:min(len(endpointID), 11)]
}

// IsLibnetworkInterface reports whether name has the shape LibnetworkInterface gives a Docker endpoint ID.
func IsLibnetworkInterface(name string) bool { return libnetworkIfaceRE.MatchString(name) }

// OwnedInterface returns the host interface of w if w is an endpoint this plugin made on node: orchestrator
// and namespace libnetwork, a Docker endpoint ID, and the interface name LibnetworkInterface gives that ID.
// The interface of any other endpoint (a CNI's on the same host, one naming eth0) is not the plugin's: it
// is never routed to nor deleted.
func OwnedInterface(node string, w *WorkloadEndpoint) (string, bool) {
	s := w.Spec
	if s.Node != node || s.Orchestrator != OrchestratorLibnetwork || w.Namespace != NamespaceLibnetwork ||
		!IsDockerID(s.Endpoint) || s.InterfaceName != LibnetworkInterface(s.Endpoint) {
		return "", false
	}
	return s.InterfaceName, true
}

// ParseIPNetwork parses an entry of a workload endpoint's ipNetworks as Calico does: a CIDR, or a bare
// address standing for its /32 or /128 (IPv4-mapped addresses mean their IPv4 address).
func ParseIPNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
	}
	a = a.Unmap() // an IPv4-mapped address is the IPv4 address, as in Go's net.ParseIP
	return netip.PrefixFrom(a, a.BitLen()), nil
}
