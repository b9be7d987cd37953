package api

import (
	"fmt"
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
		escaped[i] = strings.ReplaceAll(s, "-", "--")
	}
	return strings.Join(escaped, "-"), nil
}

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
