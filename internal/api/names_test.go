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

func TestLibnetworkInterface(t *testing.T) {
	if got := LibnetworkInterface(testEndpointID); got != "cali50d858e0985" {
		t.Errorf("LibnetworkInterface = %q, want cali50d858e0985", got)
	}
	for name, want := range map[string]bool{
		"cali50d858e0985": true, "caliabcdef12345": true,
		"cali50D858E0985": false, "cali50d858e098": false, "cali50d858e0985e": false, "cali-x": false,
		"calig0d858e0985": false, "tap50d858e09850": false, "eth0": false, "lo": false, "": false,
	} {
		if got := IsLibnetworkInterface(name); got != want {
			t.Errorf("IsLibnetworkInterface(%q) = %v, want %v", name, got, want)
		}
	}
}

// Only the plugin's own endpoints on this node, naming the interface the plugin gives them, own it.
func TestOwnedInterface(t *testing.T) {
	own := func(edit func(*WorkloadEndpoint)) *WorkloadEndpoint {
		w, err := LibnetworkEndpoint("host1", testEndpointID)
		if err != nil {
			t.Fatal(err)
		}
		w.Spec.InterfaceName = LibnetworkInterface(testEndpointID)
		edit(w)
		return w
	}
	for _, tc := range []struct {
		name string
		wep  *WorkloadEndpoint
		want bool
	}{
		{"ours", own(func(*WorkloadEndpoint) {}), true},
		{"ours, abbreviated ID", own(func(w *WorkloadEndpoint) { w.Spec.Endpoint = testEndpointID[:12] }), true},
		{"another node", own(func(w *WorkloadEndpoint) { w.Spec.Node = "host2" }), false},
		{"k8s", own(func(w *WorkloadEndpoint) { w.Spec.Orchestrator = "k8s" }), false},
		{"another namespace", own(func(w *WorkloadEndpoint) { w.Namespace = "prod" }), false},
		{"eth0", own(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "eth0" }), false},
		{"lo", own(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "lo" }), false},
		{"another endpoint's interface", own(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "caliabcdef12345" }), false},
		{"endpoint not a Docker ID", own(func(w *WorkloadEndpoint) { w.Spec.Endpoint, w.Spec.InterfaceName = "ep1", "caliep1" }), false},
		{"endpoint upper case", own(func(w *WorkloadEndpoint) {
			w.Spec.Endpoint = strings.ToUpper(testEndpointID)
			w.Spec.InterfaceName = LibnetworkInterface(w.Spec.Endpoint)
		}), false},
	} {
		iface, ok := OwnedInterface("host1", tc.wep)
		if ok != tc.want || ok && iface != "cali50d858e0985" {
			t.Errorf("%s: OwnedInterface = %q, %v; want %v", tc.name, iface, ok, tc.want)
		}
	}
}

func TestParseIPNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1/32": "10.0.0.1/32", "10.0.0.1": "10.0.0.1/32", "fd00::1": "fd00::1/128",
		"10.0.0.0/24": "10.0.0.0/24", "::ffff:10.0.0.1": "10.0.0.1/32",
		"fe80::1%eth0": "", "10.0.0.x": "", "": "",
	} {
		p, err := ParseIPNetwork(in)
		if got := p.String(); (err == nil) != (want != "") || err == nil && got != want {
			t.Errorf("ParseIPNetwork(%q) = %s, %v; want %q", in, got, err, want)
		}
	}
}
