package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func intp(i int) *int { return &i }

func proto(t *testing.T, s string) *Protocol {
	t.Helper()
	p, err := ProtocolFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

func ports(t *testing.T, ss ...string) []Port {
	t.Helper()
	var out []Port
	for _, s := range ss {
		p, err := PortFromString(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func goodPool() *IPPool {
	p := &IPPool{Spec: IPPoolSpec{CIDR: "192.168.0.0/16", NATOutgoing: true}}
	p.Name = "pool1"
	return p
}

func goodWEP() *WorkloadEndpoint {
	w := &WorkloadEndpoint{Spec: WorkloadEndpointSpec{
		Orchestrator: "libnetwork", Workload: "libnetwork", Node: "test", Endpoint: testEndpointID,
		IPNetworks: []string{"192.168.0.5/32", "fd00::5/128"}, InterfaceName: "cali50d858e0985",
		MAC: "a2:1b:3c:4d:5e:6f", Profiles: []string{"mynet"},
	}}
	w.Name = "test-libnetwork-libnetwork-" + testEndpointID
	w.Namespace = "libnetwork"
	return w
}

// k8sWEP is a pod's endpoint as Calico's CNI plugin writes it.
func k8sWEP() *WorkloadEndpoint {
	http, _ := ProtocolFromString("TCP")
	w := &WorkloadEndpoint{Spec: WorkloadEndpointSpec{
		Orchestrator: "k8s", Node: "test", Pod: "web-0", Endpoint: "eth0", ContainerID: testEndpointID,
		ServiceAccountName: "default", IPNetworks: []string{"10.0.0.5/32"}, InterfaceName: "cali1234567890a",
		MAC: "a2:1b:3c:4d:5e:6f", Profiles: []string{"kns.prod", "ksa.prod.default"},
		Ports: []EndpointPort{{Name: "http", Protocol: http, Port: 80}},
	}}
	w.Name = "test-k8s-web--0-eth0"
	w.Namespace = "prod"
	return w
}

// wep and k8s return a good endpoint changed by edit, named after its (edited) identifiers.
func wep(edit func(*WorkloadEndpoint)) func() Object { return edited(goodWEP(), edit) }

func k8s(edit func(*WorkloadEndpoint)) func() Object { return edited(k8sWEP(), edit) }

func edited(w *WorkloadEndpoint, edit func(*WorkloadEndpoint)) func() Object {
	return func() Object {
		edit(w)
		if name, err := WorkloadEndpointName(w.Spec); err == nil {
			w.Name = name
		}
		return w
	}
}

func goodProfile() *Profile {
	p := &Profile{Spec: ProfileSpec{
		Ingress:       []Rule{{Action: ActionAllow, Source: EntityRule{Selector: "has(mynet)"}}},
		Egress:        []Rule{{Action: ActionAllow}},
		LabelsToApply: map[string]string{"mynet": ""},
	}}
	p.Name = "mynet"
	return p
}

func goodGNP() *GlobalNetworkPolicy {
	g := &GlobalNetworkPolicy{Spec: PolicySpec{Selector: `role == "web"`, Ingress: []Rule{{Action: ActionDeny}}}}
	g.Name = "deny-web"
	return g
}

func goodNP() *NetworkPolicy {
	n := &NetworkPolicy{Spec: PolicySpec{Selector: "has(mynet)", Egress: []Rule{{Action: ActionAllow}}}}
	n.Name = "np1"
	n.Namespace = "libnetwork"
	return n
}

func goodNode() *Node {
	n := &Node{Spec: NodeSpec{BGP: &NodeBGPSpec{IPv4Address: "10.0.0.1/24", IPv6Address: "fd00::1/64"}, IPv4VXLANTunnelAddr: "192.168.10.0"}}
	n.Name = "my-host"
	return n
}

func goodClusterInfo() *ClusterInformation {
	ready := true
	c := &ClusterInformation{Spec: ClusterInformationSpec{ClusterGUID: "abc", DatastoreReady: &ready}}
	c.Name = "default"
	return c
}

func goodTier() *Tier {
	order := 1000000.0
	tr := &Tier{Spec: TierSpec{Order: &order, DefaultAction: "Deny"}}
	tr.Name = "default"
	return tr
}

func TestValidate(t *testing.T) {
	type tc struct {
		name  string
		obj   func() Object
		field string // "" means valid
	}
	rule := func(r Rule) func() Object {
		return func() Object {
			g := goodGNP()
			g.Spec.Ingress = []Rule{{Action: ActionAllow}, r}
			return g
		}
	}
	tests := []tc{
		// IPPool
		{"pool ok", func() Object { return goodPool() }, ""},
		{"pool v6 ok", func() Object { p := goodPool(); p.Spec.CIDR = "fd00:1::/64"; return p }, ""},
		{"pool CIDR host bits", func() Object { p := goodPool(); p.Spec.CIDR = "192.168.1.1/16"; return p }, "spec.cidr"},
		{"pool CIDR garbage", func() Object { p := goodPool(); p.Spec.CIDR = "not-a-cidr"; return p }, "spec.cidr"},
		{"pool CIDR missing", func() Object { p := goodPool(); p.Spec.CIDR = ""; return p }, "spec.cidr"},
		{"pool blockSize 19", func() Object { p := goodPool(); p.Spec.BlockSize = 19; return p }, "spec.blockSize"},
		{"pool blockSize 33", func() Object { p := goodPool(); p.Spec.BlockSize = 33; return p }, "spec.blockSize"},
		{"pool blockSize 20 ok", func() Object { p := goodPool(); p.Spec.CIDR = "10.0.0.0/8"; p.Spec.BlockSize = 20; return p }, ""},
		{"pool blockSize 32 ok", func() Object { p := goodPool(); p.Spec.BlockSize = 32; return p }, ""},
		{"pool v6 blockSize 128 ok", func() Object { p := goodPool(); p.Spec.CIDR = "fd00::/64"; p.Spec.BlockSize = 128; return p }, ""},
		{"pool v6 blockSize 115", func() Object { p := goodPool(); p.Spec.CIDR = "fd00::/64"; p.Spec.BlockSize = 115; return p }, "spec.blockSize"},
		{"pool v6 blockSize 26", func() Object { p := goodPool(); p.Spec.CIDR = "fd00::/64"; p.Spec.BlockSize = 26; return p }, "spec.blockSize"},
		{"pool block larger than pool", func() Object { p := goodPool(); p.Spec.CIDR = "10.0.0.0/28"; p.Spec.BlockSize = 26; return p }, "spec.blockSize"},
		{"pool bad ipipMode", func() Object { p := goodPool(); p.Spec.IPIPMode = "always"; return p }, "spec.ipipMode"},
		{"pool bad vxlanMode", func() Object { p := goodPool(); p.Spec.VXLANMode = "Sometimes"; return p }, "spec.vxlanMode"},
		{"pool ipip and vxlan", func() Object {
			p := goodPool()
			p.Spec.IPIPMode, p.Spec.VXLANMode = EncapAlways, EncapCrossSubnet
			return p
		}, "spec.ipipMode"},
		{"pool bad assignmentMode", func() Object { p := goodPool(); p.Spec.AssignmentMode = "Auto"; return p }, "spec.assignmentMode"},
		{"pool bad nodeSelector", func() Object { p := goodPool(); p.Spec.NodeSelector = "has("; return p }, "spec.nodeSelector"},
		{"pool bad allowedUses", func() Object { p := goodPool(); p.Spec.AllowedUses = []string{"Workload", "Pets"}; return p }, "spec.allowedUses"},
		{"pool name upper case", func() Object { p := goodPool(); p.Name = "Pool1"; return p }, "metadata.name"},
		{"pool name underscore", func() Object { p := goodPool(); p.Name = "pool_1"; return p }, "metadata.name"},
		{"pool name empty", func() Object { p := goodPool(); p.Name = ""; return p }, "metadata.name"},
		{"pool name trailing dash", func() Object { p := goodPool(); p.Name = "pool-"; return p }, "metadata.name"},
		{"pool name too long", func() Object { p := goodPool(); p.Name = strings.Repeat("a", 254); return p }, "metadata.name"},
		{"pool with namespace", func() Object { p := goodPool(); p.Namespace = "libnetwork"; return p }, "metadata.namespace"},
		{"pool bad label key", func() Object { p := goodPool(); p.Labels = map[string]string{"bad key": "v"}; return p }, "metadata.labels"},

		// Profile
		{"profile ok", func() Object { return goodProfile() }, ""},
		{"profile name like a docker network", func() Object { p := goodProfile(); p.Name = "My_Net.1"; return p }, ""},
		{"profile name with slash", func() Object { p := goodProfile(); p.Name = "a/b"; return p }, "metadata.name"},
		{"profile bad action", func() Object { p := goodProfile(); p.Spec.Egress[0].Action = "allow"; return p }, "spec.egress[0].action"},
		{"profile bad source selector", func() Object {
			p := goodProfile()
			p.Spec.Ingress[0].Source.Selector = "a =="
			return p
		}, "spec.ingress[0].source.selector"},
		{"profile bad labelsToApply", func() Object {
			p := goodProfile()
			p.Spec.LabelsToApply = map[string]string{"-x": ""}
			return p
		}, "spec.labelsToApply"},
		{"profile with namespace", func() Object { p := goodProfile(); p.Namespace = "ns"; return p }, "metadata.namespace"},

		// WorkloadEndpoint: every field as Calico's validator checks it.
		{"wep ok", wep(func(*WorkloadEndpoint) {}), ""},
		{"wep without namespace", func() Object { w := goodWEP(); w.Namespace = ""; return w }, "metadata.namespace"},
		{"wep bad namespace", func() Object { w := goodWEP(); w.Namespace = "Lib_Network"; return w }, "metadata.namespace"},
		{"wep name mismatch", func() Object { w := goodWEP(); w.Name = "other"; return w }, "metadata.name"},
		{"wep identifiers missing", func() Object { w := goodWEP(); w.Spec.Node = ""; return w }, "metadata.name"},
		{"wep name too long", wep(func(w *WorkloadEndpoint) { w.Spec.Node = strings.Repeat("n", 200) }), "metadata.name"},
		{"wep k8s ok", func() Object { return k8sWEP() }, ""},
		{"wep node upper case", wep(func(w *WorkloadEndpoint) { w.Spec.Node = "Test" }), "spec.node"},
		{"wep node with empty dot part", wep(func(w *WorkloadEndpoint) { w.Spec.Node = "a..b" }), "spec.node"},
		{"wep orchestrator with underscore", wep(func(w *WorkloadEndpoint) { w.Spec.Orchestrator = "lib_network" }), "spec.orchestrator"},
		{"wep workload upper case", wep(func(w *WorkloadEndpoint) { w.Spec.Orchestrator, w.Spec.Workload = "openstack", "VM1" }), "spec.workload"},
		{"wep endpoint upper case", wep(func(w *WorkloadEndpoint) { w.Spec.Endpoint = strings.ToUpper(testEndpointID) }), "spec.endpoint"},
		{"wep pod with dot ok", k8s(func(w *WorkloadEndpoint) { w.Spec.Pod = "web.v1" }), ""},
		{"wep pod upper case", k8s(func(w *WorkloadEndpoint) { w.Spec.Pod = "Web" }), "spec.pod"},
		{"wep serviceAccountName ok", k8s(func(w *WorkloadEndpoint) { w.Spec.ServiceAccountName = "build-bot.v2" }), ""},
		{"wep serviceAccountName upper case", k8s(func(w *WorkloadEndpoint) { w.Spec.ServiceAccountName = "Bot" }), "spec.serviceAccountName"},
		{"wep containerID upper case ok", k8s(func(w *WorkloadEndpoint) { w.Spec.ContainerID = "ABC-123" }), ""},
		{"wep containerID with dot", k8s(func(w *WorkloadEndpoint) { w.Spec.ContainerID = "abc.123" }), "spec.containerID"},
		{"wep containerID ending in dash", k8s(func(w *WorkloadEndpoint) { w.Spec.ContainerID = "abc-" }), "spec.containerID"},
		{"wep ipNetwork bare addresses ok", wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"192.168.0.5", "fd00::5"} }), ""},
		{"wep ipNetwork not /32", wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"192.168.0.0/24"} }), "spec.ipNetworks"},
		{"wep ipNetwork host bits", wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"192.168.0.5/24"} }), "spec.ipNetworks"},
		{"wep ipNetwork garbage", wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"192.168.0.x"} }), "spec.ipNetworks"},
		{"wep ipNetwork with zone", wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"fe80::1%eth0"} }), "spec.ipNetworks"},
		{"wep ipNAT ok", wep(func(w *WorkloadEndpoint) {
			w.Spec.IPNATs = []IPNAT{{InternalIP: "192.168.0.5", ExternalIP: "203.0.113.5"}}
		}), ""},
		{"wep ipNAT outside ipNetworks", wep(func(w *WorkloadEndpoint) {
			w.Spec.IPNATs = []IPNAT{{InternalIP: "192.168.0.6", ExternalIP: "203.0.113.5"}}
		}), "spec.ipNATs"},
		{"wep ipNAT mixed versions", wep(func(w *WorkloadEndpoint) {
			w.Spec.IPNATs = []IPNAT{{InternalIP: "192.168.0.5", ExternalIP: "2001:db8::5"}}
		}), "spec.ipNATs"},
		{"wep ipNAT CIDR", wep(func(w *WorkloadEndpoint) {
			w.Spec.IPNATs = []IPNAT{{InternalIP: "192.168.0.5/32", ExternalIP: "203.0.113.5"}}
		}), "spec.ipNATs"},
		{"wep ipNAT without external", wep(func(w *WorkloadEndpoint) { w.Spec.IPNATs = []IPNAT{{InternalIP: "192.168.0.5"}} }), "spec.ipNATs"},
		{"wep gateways ok", wep(func(w *WorkloadEndpoint) { w.Spec.IPv4Gateway, w.Spec.IPv6Gateway = "169.254.1.1", "fe80::1" }), ""},
		{"wep ipv4Gateway v6", wep(func(w *WorkloadEndpoint) { w.Spec.IPv4Gateway = "fe80::1" }), "spec.ipv4Gateway"},
		{"wep ipv4Gateway CIDR", wep(func(w *WorkloadEndpoint) { w.Spec.IPv4Gateway = "169.254.1.1/32" }), "spec.ipv4Gateway"},
		{"wep ipv6Gateway v4", wep(func(w *WorkloadEndpoint) { w.Spec.IPv6Gateway = "169.254.1.1" }), "spec.ipv6Gateway"},
		{"wep ipv6Gateway IPv4-mapped", wep(func(w *WorkloadEndpoint) { w.Spec.IPv6Gateway = "::ffff:169.254.1.1" }), "spec.ipv6Gateway"},
		{"wep profile named like a docker network ok", wep(func(w *WorkloadEndpoint) { w.Spec.Profiles = []string{"My_Net.1"} }), ""},
		{"wep profile with slash", wep(func(w *WorkloadEndpoint) { w.Spec.Profiles = []string{"a/b"} }), "spec.profiles"},
		{"wep interface eth0 ok", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "eth0" }), ""},
		{"wep interface lo ok", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "lo" }), ""},
		{"wep interface wildcard ok", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "*" }), ""},
		{"wep interface dotted ok", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "cali.100_a-b" }), ""},
		{"wep interface missing", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "" }), "spec.interfaceName"},
		{"wep interface too long", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "cali50d858e0985ec" }), "spec.interfaceName"},
		{"wep interface with slash", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "cali/../x" }), "spec.interfaceName"},
		{"wep interface with space", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "cali 1" }), "spec.interfaceName"},
		{"wep interface with glob", wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "cali*" }), "spec.interfaceName"},
		{"wep mac dashes ok", wep(func(w *WorkloadEndpoint) { w.Spec.MAC = "A2-1B-3C-4D-5E-6F" }), ""},
		{"wep mac EUI-64 ok", wep(func(w *WorkloadEndpoint) { w.Spec.MAC = "02:00:5e:10:00:00:00:01" }), ""},
		{"wep bad mac", wep(func(w *WorkloadEndpoint) { w.Spec.MAC = "a2:1b:3c" }), "spec.mac"},
		{"wep mac garbage", wep(func(w *WorkloadEndpoint) { w.Spec.MAC = "zz:1b:3c:4d:5e:6f" }), "spec.mac"},
		{"wep ports ok", k8s(func(*WorkloadEndpoint) {}), ""},
		{"wep unnamed host port ok", k8s(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Protocol: *proto(t, "UDP"), Port: 53, HostPort: 5353, HostIP: "10.0.0.0/8"}}
		}), ""},
		{"wep unnamed port", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Name = "" }), "spec.ports[0].name"},
		{"wep port name upper case", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Name = "HTTP" }), "spec.ports[0].name"},
		{"wep port name too long", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Name = "http-alternative" }), "spec.ports[0].name"},
		{"wep port name digits only", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Name = "8080" }), "spec.ports[0].name"},
		{"wep port name double dash", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Name = "web--1" }), "spec.ports[0].name"},
		{"wep port name leading dash", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Name = "-web" }), "spec.ports[0].name"},
		{"wep port ICMP", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Protocol = *proto(t, "ICMP") }), "spec.ports[0].protocol"},
		{"wep port without protocol", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Protocol = Protocol{} }), "spec.ports[0].protocol"},
		{"wep port zero", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].Port = 0 }), "spec.ports[0].port"},
		{"wep port hostIP host bits", k8s(func(w *WorkloadEndpoint) { w.Spec.Ports[0].HostIP = "10.0.0.1/8" }), "spec.ports[0].hostIP"},
		{"wep labels ok", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"example.com/tier": "db_1.a", "mynet": ""} }), ""},
		{"wep label key bad prefix", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"Example.com/tier": "x"} }), "metadata.labels"},
		{"wep label key empty prefix", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"/tier": "x"} }), "metadata.labels"},
		{"wep label key two slashes", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"a/b/c": "x"} }), "metadata.labels"},
		{"wep label value with space", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"tier": "a b"} }), "metadata.labels"},
		{"wep label value too long", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"tier": strings.Repeat("v", 64)} }), "metadata.labels"},
		{"wep label value trailing dot", wep(func(w *WorkloadEndpoint) { w.Labels = map[string]string{"tier": "v."} }), "metadata.labels"},

		// GlobalNetworkPolicy and its rules
		{"gnp ok", func() Object { return goodGNP() }, ""},
		{"gnp bad selector", func() Object { g := goodGNP(); g.Spec.Selector = "role = web"; return g }, "spec.selector"},
		{"gnp bad type", func() Object { g := goodGNP(); g.Spec.Types = []string{"ingress"}; return g }, "spec.types"},
		{"gnp name upper", func() Object { g := goodGNP(); g.Name = "Deny"; return g }, "metadata.name"},
		{"gnp with namespace", func() Object { g := goodGNP(); g.Namespace = "libnetwork"; return g }, "metadata.namespace"},
		{"rule tcp ports ok", rule(Rule{Action: ActionAllow, Protocol: proto(t, "TCP"), Destination: EntityRule{Ports: ports(t, "80", "8000:8080", "http")}}), ""},
		{"rule numeric udp ports ok", rule(Rule{Action: ActionAllow, Protocol: proto(t, "17"), Source: EntityRule{NotPorts: ports(t, "53")}}), ""},
		{"rule sctp ports ok", rule(Rule{Action: ActionAllow, Protocol: proto(t, "SCTP"), Destination: EntityRule{Ports: ports(t, "9")}}), ""},
		{"rule ports without protocol", rule(Rule{Action: ActionAllow, Destination: EntityRule{Ports: ports(t, "80")}}), "spec.ingress[1].protocol"},
		{"rule ports with icmp", rule(Rule{Action: ActionAllow, Protocol: proto(t, "ICMP"), Destination: EntityRule{Ports: ports(t, "80")}}), "spec.ingress[1].protocol"},
		{"rule notPorts with protocol 47", rule(Rule{Action: ActionAllow, Protocol: proto(t, "47"), Source: EntityRule{NotPorts: ports(t, "1:2")}}), "spec.ingress[1].protocol"},
		{"rule ports with notProtocol only", rule(Rule{Action: ActionAllow, NotProtocol: proto(t, "TCP"), Destination: EntityRule{Ports: ports(t, "80")}}), "spec.ingress[1].protocol"},
		{"rule icmp ok", rule(Rule{Action: ActionAllow, Protocol: proto(t, "ICMP"), ICMP: &ICMPFields{Type: intp(8), Code: intp(0)}}), ""},
		{"rule icmpv6 ok", rule(Rule{Action: ActionAllow, IPVersion: intp(6), Protocol: proto(t, "ICMPv6"), NotICMP: &ICMPFields{Type: intp(128)}}), ""},
		{"rule icmp code without type", rule(Rule{Action: ActionAllow, Protocol: proto(t, "ICMP"), ICMP: &ICMPFields{Code: intp(0)}}), "spec.ingress[1].icmp.code"},
		{"rule icmp without icmp protocol", rule(Rule{Action: ActionAllow, Protocol: proto(t, "TCP"), ICMP: &ICMPFields{Type: intp(8)}}), "spec.ingress[1].icmp"},
		{"rule icmp without protocol", rule(Rule{Action: ActionAllow, ICMP: &ICMPFields{Type: intp(8)}}), "spec.ingress[1].icmp"},
		{"rule ICMP with ipVersion 6", rule(Rule{Action: ActionAllow, IPVersion: intp(6), Protocol: proto(t, "ICMP")}), "spec.ingress[1].ipVersion"},
		{"rule ICMPv6 with ipVersion 4", rule(Rule{Action: ActionAllow, IPVersion: intp(4), Protocol: proto(t, "ICMPv6")}), "spec.ingress[1].ipVersion"},
		{"rule ipVersion 5", rule(Rule{Action: ActionAllow, IPVersion: intp(5)}), "spec.ingress[1].ipVersion"},
		{"rule bad action", rule(Rule{Action: "Drop"}), "spec.ingress[1].action"},
		{"rule empty action", rule(Rule{}), "spec.ingress[1].action"},
		{"rule bad nets", rule(Rule{Action: ActionAllow, Source: EntityRule{Nets: []string{"10.0.0.0/33"}}}), "spec.ingress[1].source.nets"},
		{"rule bad notNets", rule(Rule{Action: ActionAllow, Destination: EntityRule{NotNets: []string{"x"}}}), "spec.ingress[1].destination.nets"},
		{"rule plain address nets ok", rule(Rule{Action: ActionAllow, Source: EntityRule{Nets: []string{"10.0.0.1", "fd00::/8"}}}), ""},
		{"rule bad notSelector", rule(Rule{Action: ActionAllow, Destination: EntityRule{NotSelector: "has(x"}}), "spec.ingress[1].destination.notSelector"},

		// NetworkPolicy
		{"np ok", func() Object { return goodNP() }, ""},
		{"np without namespace", func() Object { n := goodNP(); n.Namespace = ""; return n }, "metadata.namespace"},
		{"np bad name", func() Object { n := goodNP(); n.Name = "np 1"; return n }, "metadata.name"},
		{"np bad egress rule", func() Object {
			n := goodNP()
			n.Spec.Egress = []Rule{{Action: ActionAllow, Protocol: proto(t, "UDP"), ICMP: &ICMPFields{Type: intp(3)}}}
			return n
		}, "spec.egress[0].icmp"},

		// Node
		{"node ok", func() Object { return goodNode() }, ""},
		{"node without bgp ok", func() Object { n := goodNode(); n.Spec.BGP = nil; return n }, ""},
		{"node ipv4Address without prefix", func() Object { n := goodNode(); n.Spec.BGP.IPv4Address = "10.0.0.1"; return n }, "spec.bgp.ipv4Address"},
		{"node bad ipv6Address", func() Object { n := goodNode(); n.Spec.BGP.IPv6Address = "fd00::zz/64"; return n }, "spec.bgp.ipv6Address"},
		{"node name with underscore", func() Object { n := goodNode(); n.Name = "my_host"; return n }, "metadata.name"},
		{"node with namespace", func() Object { n := goodNode(); n.Namespace = "x"; return n }, "metadata.namespace"},

		// ClusterInformation and Tier
		{"clusterinfo ok", func() Object { return goodClusterInfo() }, ""},
		{"clusterinfo bad name", func() Object { c := goodClusterInfo(); c.Name = "Default"; return c }, "metadata.name"},
		{"clusterinfo with namespace", func() Object { c := goodClusterInfo(); c.Namespace = "ns"; return c }, "metadata.namespace"},
		{"tier ok", func() Object { return goodTier() }, ""},
		{"tier bad name", func() Object { tr := goodTier(); tr.Name = "tier/1"; return tr }, "metadata.name"},
		{"tier with namespace", func() Object { tr := goodTier(); tr.Namespace = "ns"; return tr }, "metadata.namespace"},
	}
	for _, c := range bgpValidationCases() {
		tests = append(tests, tc(c))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.obj()
			Default(o)
			err := Validate(o)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error on %s", tt.field)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FieldError", err, err)
			}
			kind := KindOf(o).Kind
			name := o.GetObjectMeta().Name
			if fe.Kind != kind || fe.Name != name || fe.Field != tt.field {
				t.Errorf("FieldError{Kind:%q Name:%q Field:%q}, want {%q %q %q} (%v)", fe.Kind, fe.Name, fe.Field, kind, name, tt.field, err)
			}
			msg := err.Error()
			for _, want := range []string{kind, `"` + name + `"`, tt.field} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			if fe.Reason == "" {
				t.Error("empty reason")
			}
		})
	}
}

func TestValidateFirstErrorIsDeterministic(t *testing.T) {
	// Two problems at once: the reported one must not depend on map iteration order.
	for i := 0; i < 50; i++ {
		p := goodPool()
		Default(p)
		p.Spec.IPIPMode, p.Spec.VXLANMode = "bad1", "bad2"
		var fe *FieldError
		if !errors.As(Validate(p), &fe) || fe.Field != "spec.ipipMode" {
			t.Fatalf("run %d: got %v, want the spec.ipipMode error first", i, fe)
		}
		g := goodGNP()
		g.Spec.Ingress = []Rule{{Action: ActionAllow, Source: EntityRule{Selector: "("}, Destination: EntityRule{Selector: ")"}}}
		if !errors.As(Validate(g), &fe) || fe.Field != "spec.ingress[0].source.selector" {
			t.Fatalf("run %d: got %v, want the source error first", i, fe)
		}
	}
}

func TestDefaultIPPool(t *testing.T) {
	tests := []struct {
		cidr      string
		blockSize int
	}{
		{"192.168.0.0/16", 26},
		{"fd80:24e2:f998:72d6::/64", 122},
	}
	for _, tt := range tests {
		p := &IPPool{Spec: IPPoolSpec{CIDR: tt.cidr, NATOutgoing: true}}
		Default(p)
		want := IPPoolSpec{
			CIDR: tt.cidr, NATOutgoing: true, BlockSize: tt.blockSize,
			IPIPMode: EncapNever, VXLANMode: EncapNever, NodeSelector: "all()",
			AssignmentMode: AssignAutomatic, AllowedUses: []string{"Workload", "Tunnel"},
		}
		if !reflect.DeepEqual(p.Spec, want) {
			t.Errorf("%s: defaulted to\n%+v\nwant\n%+v", tt.cidr, p.Spec, want)
		}
	}

	// Values that are set are kept.
	p := &IPPool{Spec: IPPoolSpec{CIDR: "10.0.0.0/8", BlockSize: 24, IPIPMode: EncapCrossSubnet, VXLANMode: EncapNever,
		NodeSelector: "has(x)", AssignmentMode: AssignManual, AllowedUses: []string{"Tunnel"}}}
	before := p.Spec
	before.AllowedUses = []string{"Tunnel"}
	Default(p)
	if !reflect.DeepEqual(p.Spec, before) {
		t.Errorf("Default changed explicit values: %+v, want %+v", p.Spec, before)
	}

	// An unparsable CIDR gets no block size (Validate reports the CIDR instead).
	bad := &IPPool{Spec: IPPoolSpec{CIDR: "nonsense"}}
	Default(bad)
	if bad.Spec.BlockSize != 0 {
		t.Errorf("block size %d for a bad CIDR", bad.Spec.BlockSize)
	}
}

func TestDefaultPolicyTypes(t *testing.T) {
	in := []Rule{{Action: ActionAllow}}
	tests := []struct {
		name            string
		ingress, egress []Rule
		types           []string
		want            []string
	}{
		{"only ingress", in, nil, nil, []string{"Ingress"}},
		{"only egress", nil, in, nil, []string{"Egress"}},
		{"both", in, in, nil, []string{"Ingress", "Egress"}},
		{"none", nil, nil, nil, []string{"Ingress"}},
		{"explicit kept", in, nil, []string{"Egress"}, []string{"Egress"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &GlobalNetworkPolicy{Spec: PolicySpec{Ingress: tt.ingress, Egress: tt.egress, Types: tt.types}}
			Default(g)
			if !reflect.DeepEqual(g.Spec.Types, tt.want) || g.Spec.Tier != "default" {
				t.Errorf("GNP types %v tier %q, want %v tier default", g.Spec.Types, g.Spec.Tier, tt.want)
			}
			n := &NetworkPolicy{Spec: PolicySpec{Ingress: tt.ingress, Egress: tt.egress, Types: tt.types, Tier: "custom"}}
			Default(n)
			if !reflect.DeepEqual(n.Spec.Types, tt.want) || n.Spec.Tier != "custom" {
				t.Errorf("NP types %v tier %q, want %v tier custom", n.Spec.Types, n.Spec.Tier, tt.want)
			}
		})
	}
}

func TestDefaultWorkloadEndpointLabels(t *testing.T) {
	w := goodWEP()
	w.Labels = map[string]string{"mynet": "", LabelOrchestrator: "wrong"}
	Default(w)
	want := map[string]string{"mynet": "", LabelNamespace: "libnetwork", LabelOrchestrator: "libnetwork"}
	if !reflect.DeepEqual(w.Labels, want) {
		t.Errorf("labels %v, want %v", w.Labels, want)
	}
	w2 := goodWEP()
	Default(w2)
	if w2.Labels[LabelNamespace] != "libnetwork" || w2.Labels[LabelOrchestrator] != "libnetwork" {
		t.Errorf("labels %v", w2.Labels)
	}
}

func TestDefaultLeavesOtherKindsAlone(t *testing.T) {
	for _, o := range []Object{goodProfile(), goodNode(), goodClusterInfo(), goodTier()} {
		before, _ := Marshal(o)
		Default(o)
		after, _ := Marshal(o)
		if string(before) != string(after) {
			t.Errorf("%s changed by Default:\n%s\n%s", KindOf(o).Kind, before, after)
		}
	}
}
