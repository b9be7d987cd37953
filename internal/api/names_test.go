package api

import (
	"strings"
	"testing"
)

const testEndpointID = "50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c"

func TestWorkloadEndpointName(t *testing.T) {
	tests := []struct {
		name    string
		spec    WorkloadEndpointSpec
		want    string
		wantErr []string // substrings of the error; nil means success
	}{
		{
			name: "libnetwork simple node",
			spec: WorkloadEndpointSpec{Orchestrator: "libnetwork", Workload: "libnetwork", Node: "test", Endpoint: testEndpointID},
			want: "test-libnetwork-libnetwork-" + testEndpointID,
		},
		{
			name: "libnetwork node with dash is doubled",
			spec: WorkloadEndpointSpec{Orchestrator: "libnetwork", Workload: "libnetwork", Node: "my-host", Endpoint: testEndpointID},
			want: "my--host-libnetwork-libnetwork-" + testEndpointID,
		},
		{
			name: "libnetwork ignores the workload field",
			spec: WorkloadEndpointSpec{Orchestrator: "libnetwork", Workload: "something-else", Node: "test", Endpoint: "ep1"},
			want: "test-libnetwork-libnetwork-ep1",
		},
		{
			name: "libnetwork with empty workload still works",
			spec: WorkloadEndpointSpec{Orchestrator: "libnetwork", Node: "test", Endpoint: "ep1"},
			want: "test-libnetwork-libnetwork-ep1",
		},
		{
			name: "k8s uses pod",
			spec: WorkloadEndpointSpec{Orchestrator: "k8s", Node: "node1", Pod: "nginx-abc", Endpoint: "eth0", Workload: "ignored"},
			want: "node1-k8s-nginx--abc-eth0",
		},
		{
			name:    "k8s without pod",
			spec:    WorkloadEndpointSpec{Orchestrator: "k8s", Node: "node1", Workload: "w", Endpoint: "eth0"},
			wantErr: []string{"spec.pod", "must be set"},
		},
		{
			name: "cni uses containerID",
			spec: WorkloadEndpointSpec{Orchestrator: "cni", Node: "node1", ContainerID: "abc123", Endpoint: "eth0"},
			want: "node1-cni-abc123-eth0",
		},
		{
			name:    "cni without containerID",
			spec:    WorkloadEndpointSpec{Orchestrator: "cni", Node: "node1", Endpoint: "eth0"},
			wantErr: []string{"spec.containerID", "must be set"},
		},
		{
			name: "other orchestrator uses workload",
			spec: WorkloadEndpointSpec{Orchestrator: "openstack", Node: "compute-1", Workload: "vm-42", Endpoint: "tap-1"},
			want: "compute--1-openstack-vm--42-tap--1",
		},
		{
			name:    "other orchestrator without workload",
			spec:    WorkloadEndpointSpec{Orchestrator: "openstack", Node: "n", Endpoint: "e"},
			wantErr: []string{"spec.workload", "must be set"},
		},
		{
			name:    "empty node",
			spec:    WorkloadEndpointSpec{Orchestrator: "libnetwork", Endpoint: "e"},
			wantErr: []string{"spec.node", "must be set"},
		},
		{
			name:    "empty orchestrator",
			spec:    WorkloadEndpointSpec{Node: "n", Workload: "w", Endpoint: "e"},
			wantErr: []string{"spec.orchestrator", "must be set"},
		},
		{
			name:    "empty endpoint",
			spec:    WorkloadEndpointSpec{Orchestrator: "libnetwork", Node: "n"},
			wantErr: []string{"spec.endpoint", "must be set"},
		},
		{
			name:    "node with leading dash",
			spec:    WorkloadEndpointSpec{Orchestrator: "libnetwork", Node: "-host", Endpoint: "e"},
			wantErr: []string{"spec.node", `"-host"`, "begin or end with '-'"},
		},
		{
			name:    "node with trailing dash",
			spec:    WorkloadEndpointSpec{Orchestrator: "libnetwork", Node: "host-", Endpoint: "e"},
			wantErr: []string{"spec.node", `"host-"`, "begin or end with '-'"},
		},
		{
			name:    "endpoint with trailing dash",
			spec:    WorkloadEndpointSpec{Orchestrator: "libnetwork", Node: "host", Endpoint: "ep-"},
			wantErr: []string{"spec.endpoint", "begin or end with '-'"},
		},
		{
			name:    "pod with leading dash",
			spec:    WorkloadEndpointSpec{Orchestrator: "k8s", Node: "host", Pod: "-pod", Endpoint: "eth0"},
			wantErr: []string{"spec.pod", "begin or end with '-'"},
		},
		{
			name: "multiple dashes inside are all doubled",
			spec: WorkloadEndpointSpec{Orchestrator: "libnetwork", Node: "a-b--c", Endpoint: "e-1"},
			want: "a--b----c-libnetwork-libnetwork-e--1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WorkloadEndpointName(tt.spec)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got name %q, want an error containing %q", got, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLibnetworkEndpoint(t *testing.T) {
	wep, err := LibnetworkEndpoint("my-host", testEndpointID)
	if err != nil {
		t.Fatal(err)
	}
	if wep.Name != "my--host-libnetwork-libnetwork-"+testEndpointID {
		t.Errorf("name %q", wep.Name)
	}
	if wep.Namespace != "libnetwork" || wep.Spec.Orchestrator != "libnetwork" || wep.Spec.Workload != "libnetwork" ||
		wep.Spec.Node != "my-host" || wep.Spec.Endpoint != testEndpointID {
		t.Errorf("identifiers not as Calico's libnetwork plugin writes them: %+v %+v", wep.ObjectMeta, wep.Spec)
	}
	if _, err := LibnetworkEndpoint("bad-", testEndpointID); err == nil {
		t.Error("node ending in '-' accepted")
	}
}
