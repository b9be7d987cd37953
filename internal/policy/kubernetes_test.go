package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// k8sWorld holds, beside a Docker container (a1, namespace libnetwork), two Kubernetes-style pods as
// Calico's CNI writes them: p1 in namespace prod with service account api and named ports http
// (TCP 8080) and dns (UDP 53), d1 in namespace dev with service account default and http on TCP 9090.
// Namespace and service account labels reach the pods through the kns./ksa. profiles, as in Calico.
func k8sWorld(t *testing.T) *Index {
	t.Helper()
	x := NewIndex(node)
	profile := func(labels map[string]string) *api.Profile {
		return &api.Profile{Spec: api.ProfileSpec{LabelsToApply: labels,
			Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}}
	}
	x.SetProfile("kns.prod", profile(map[string]string{"pcns.projectcalico.org/name": "prod", "pcns.team": "a"}))
	x.SetProfile("kns.dev", profile(map[string]string{"pcns.projectcalico.org/name": "dev", "pcns.team": "b"}))
	x.SetProfile("ksa.prod.api", profile(map[string]string{"pcsa.projectcalico.org/name": "api", "pcsa.role": "frontend"}))
	x.SetProfile("ksa.dev.default", profile(map[string]string{"pcsa.projectcalico.org/name": "default"}))
	x.SetProfile("net-a", networkProfile("net-a"))
	x.SetEndpoint("a1", wep(node, "calia1", "10.0.0.1", []string{"net-a"}, nil))
	x.SetEndpoint("p1", pod("prod", "api", "calip1", "10.0.5.1", api.EndpointPort{Name: "http", Protocol: proto("TCP"), Port: 8080},
		api.EndpointPort{Name: "dns", Protocol: proto("UDP"), Port: 53}))
	x.SetEndpoint("d1", pod("dev", "default", "calid1", "10.0.6.1", api.EndpointPort{Name: "http", Protocol: proto("TCP"), Port: 9090}))
	x.TakeChanges()
	return x
}

func pod(namespace, account, iface, ip string, ports ...api.EndpointPort) *api.WorkloadEndpoint {
	w := wep(node, iface, ip, []string{"kns." + namespace, "ksa." + namespace + "." + account},
		map[string]string{api.LabelNamespace: namespace, api.LabelOrchestrator: "k8s", api.LabelServiceAccount: account})
	w.Namespace, w.Spec.Orchestrator, w.Spec.Ports = namespace, "k8s", ports
	return w
}

func proto(name string) api.Protocol { p, _ := api.ProtocolFromString(name); return p }

// reach lists who reaches whom with one kind of packet ("a1>p1 d1>p1"); every endpoint is local.
func reach(x *Index, protocol uint8, dport uint16) string {
	var b strings.Builder
	for _, from := range []string{"a1", "p1", "d1"} {
		for _, to := range []string{"a1", "p1", "d1"} {
			if from == to {
				continue
			}
			pkt := packet{src: addr(from, x), dst: addr(to, x), proto: protocol, sport: 40000, dport: dport}
			out, _ := x.Interface(x.endpoints[from].iface)
			in, _ := x.Interface(x.endpoints[to].iface)
			if x.verdict(out.Plans[Egress], pkt) && x.verdict(in.Plans[Ingress], pkt) {
				fmt.Fprintf(&b, "%s>%s ", from, to)
			}
		}
	}
	return strings.TrimSpace(b.String())
}

func rules(t *testing.T, js string) []api.Rule {
	t.Helper()
	var rs []api.Rule
	if err := json.Unmarshal([]byte(js), &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestKubernetesSemantics(t *testing.T) {
	const (
		tcp = 6
		udp = 17
	)
	type probe struct {
		proto uint8
		port  uint16
		want  string
	}
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, x *Index)
		probes []probe
	}{
		{name: "profiles alone: pods allow all, the container only its network",
			probes: []probe{{tcp, 8080, "a1>p1 a1>d1 p1>d1 d1>p1"}}},
		{name: "a policy namespaceSelector applies only to that namespace's pods",
			setup: func(t *testing.T, x *Index) {
				spec := gnp(1, "all()", []string{"Ingress"}, rules(t, `[{"action":"Deny"}]`), nil)
				spec.NamespaceSelector = "team == 'a'"
				x.SetPolicy("", "deny-team-a", spec)
			},
			probes: []probe{{tcp, 8080, "a1>d1 p1>d1"}}},
		{name: "a policy namespaceSelector all() applies to every endpoint with a namespace: Docker's too (libnetwork)",
			setup: func(t *testing.T, x *Index) {
				spec := gnp(1, "", []string{"Ingress"}, rules(t, `[{"action":"Deny"}]`), nil)
				spec.NamespaceSelector = "all()"
				x.SetPolicy("", "deny-pods", spec)
				x.SetPolicy("", "allow-a1", gnp(2, "has(net-a)", []string{"Ingress"}, rules(t, `[{"action":"Allow"}]`), nil))
			},
			probes: []probe{{tcp, 8080, ""}}},
		{name: "a rule namespaceSelector picks the source namespace",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "from-dev", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","source":{"namespaceSelector":"projectcalico.org/name == 'dev'"}}]`), nil))
			},
			probes: []probe{{tcp, 8080, "d1>a1 d1>p1"}}},
		{name: "a NetworkPolicy's rules stay in its namespace unless a namespaceSelector widens them",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("prod", "in-ns", gnp(1, "all()", []string{"Ingress"}, rules(t, `[{"action":"Allow","source":{"selector":"all()"}}]`), nil))
				x.SetPolicy("dev", "any-ns", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","source":{"namespaceSelector":"all()","selector":"all()"}}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>d1 p1>d1"}}},
		{name: "a namespaced notSelector: only the policy's namespace, minus the negated",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("dev", "not-web", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","source":{"notSelector":"app == 'web'"}}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 d1>p1"}}},
		{name: "serviceAccounts by name and by selector",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "by-name", gnp(1, "has(net-a)", []string{"Ingress"},
					rules(t, `[{"action":"Allow","source":{"serviceAccounts":{"names":["api"]}}}]`), nil))
				x.SetPolicy("", "by-selector", gnp(1, "projectcalico.org/namespace == 'dev'", []string{"Ingress"},
					rules(t, `[{"action":"Allow","source":{"serviceAccounts":{"selector":"role == 'frontend'"}}}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 p1>a1 p1>d1 d1>p1"}}},
		{name: "a policy serviceAccountSelector",
			setup: func(t *testing.T, x *Index) {
				spec := gnp(1, "", []string{"Ingress"}, rules(t, `[{"action":"Deny"}]`), nil)
				spec.ServiceAccountSelector = "projectcalico.org/name == 'default'"
				x.SetPolicy("", "deny-default-sa", spec)
			},
			probes: []probe{{tcp, 8080, "a1>p1 d1>p1"}}},
		{name: "a named port is the port of the destination's own name",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "http", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","protocol":"TCP","destination":{"ports":["http"]}}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 d1>p1"}, {tcp, 9090, "a1>d1 p1>d1"}, {udp, 8080, ""}}},
		{name: "named and numeric ports mixed, with a selector",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "mixed", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","protocol":"UDP","destination":{"selector":"projectcalico.org/namespace == 'prod'","ports":["dns",5353]}}]`), nil))
			},
			probes: []probe{{udp, 53, "a1>p1 d1>p1"}, {udp, 5353, "a1>p1 d1>p1"}, {tcp, 53, ""}}},
		{name: "named notPorts",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "not-http", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","protocol":"TCP","destination":{"notPorts":["http"]}}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>d1 p1>a1 p1>d1 d1>a1"}, {tcp, 9090, "a1>p1 p1>a1 d1>a1 d1>p1"}}},
		{name: "a named source port",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "from-http", gnp(1, "all()", []string{"Ingress"},
					rules(t, `[{"action":"Allow","protocol":"TCP","source":{"ports":["http"]}}]`), nil))
			},
			probes: []probe{{tcp, 8080, ""}}}, // the probes' source port is 40000
		{name: "fail closed: a Deny with an HTTP match denies everything it would otherwise match",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "deny-get", gnp(1, "all()", []string{"Ingress"}, rules(t,
					`[{"action":"Deny","http":{"methods":["GET"]},"source":{"namespaceSelector":"team == 'b'"}},{"action":"Allow"}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 a1>d1 p1>a1 p1>d1"}}},
		{name: "fail closed: a Deny with a services match",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "deny-svc", gnp(1, "all()", []string{"Ingress"}, rules(t,
					`[{"action":"Deny","source":{"services":{"name":"x","namespace":"dev"},"serviceAccounts":{"names":["default"]}}},{"action":"Allow"}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 a1>d1 p1>a1 p1>d1"}}},
		{name: "fail closed: an Allow with an HTTP match allows nothing",
			setup: func(t *testing.T, x *Index) {
				x.SetPolicy("", "allow-get", gnp(1, "all()", []string{"Ingress"}, rules(t, `[{"action":"Allow","http":{"methods":["GET"]}}]`), nil))
			},
			probes: []probe{{tcp, 8080, ""}}},
		{name: "fail closed: a Pass with an HTTP match drops what it might pass",
			setup: func(t *testing.T, x *Index) {
				// In Calico d1's GETs would pass to the profiles (allow), the rest reach the Deny; here all of
				// d1's traffic drops, so nothing is allowed that Calico denies.
				x.SetPolicy("", "pass-get", gnp(1, "all()", []string{"Ingress"}, rules(t,
					`[{"action":"Pass","http":{"methods":["GET"]},"source":{"namespaceSelector":"team == 'b'"}},{"action":"Deny","source":{"namespaceSelector":"team == 'b'"}},{"action":"Pass"}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 a1>d1 p1>d1"}}},
		{name: "equal order: Felix's name/namespace/kind text decides",
			setup: func(t *testing.T, x *Index) {
				// "a-b/" sorts before "a/" ('-' < '/'), so the Deny comes first.
				x.SetPolicy("", "a", gnp(5, "all()", []string{"Ingress"}, rules(t, `[{"action":"Allow"}]`), nil))
				x.SetPolicy("", "a-b", gnp(5, "all()", []string{"Ingress"}, rules(t, `[{"action":"Deny"}]`), nil))
			},
			probes: []probe{{tcp, 8080, ""}}},
		{name: "equal order and name: the GlobalNetworkPolicy's empty namespace sorts first",
			setup: func(t *testing.T, x *Index) {
				// "x//GlobalNetworkPolicy" < "x/prod/NetworkPolicy": the Deny decides p1's ingress.
				x.SetPolicy("", "x", gnp(5, "projectcalico.org/namespace == 'prod'", []string{"Ingress"}, rules(t, `[{"action":"Deny"}]`), nil))
				x.SetPolicy("prod", "x", gnp(5, "all()", []string{"Ingress"}, rules(t, `[{"action":"Allow"}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>d1 p1>d1"}}},
		{name: "equal order: the name comes before the namespace",
			setup: func(t *testing.T, x *Index) {
				// "x/prod/NetworkPolicy" < "x0//GlobalNetworkPolicy" ('/' < '0'): the Allow decides.
				x.SetPolicy("", "x0", gnp(5, "projectcalico.org/namespace == 'prod'", []string{"Ingress"}, rules(t, `[{"action":"Deny"}]`), nil))
				x.SetPolicy("prod", "x", gnp(5, "all()", []string{"Ingress"}, rules(t, `[{"action":"Allow"}]`), nil))
			},
			probes: []probe{{tcp, 8080, "a1>p1 a1>d1 p1>d1 d1>p1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := k8sWorld(t)
			if tc.setup != nil {
				tc.setup(t, x)
			}
			for _, p := range tc.probes {
				if got := reach(x, p.proto, p.port); got != p.want {
					t.Errorf("proto %d port %d: got %q, want %q", p.proto, p.port, got, p.want)
				}
			}
		})
	}
}

// Named-port sets follow endpoints' ports: a changed port number moves the member.
func TestNamedPortSetIncremental(t *testing.T) {
	x := k8sWorld(t)
	x.SetPolicy("", "http", gnp(1, "all()", []string{"Ingress"},
		rules(t, `[{"action":"Allow","protocol":"TCP","destination":{"ports":["http"]}}]`), nil))
	rs, _ := x.RuleSet(RuleSetID{Kind: KindGlobalPolicy, Name: "http", Dir: Ingress})
	id := rs[0].Dst.NamedPorts[0]
	if !IsNamedPortSet(id) {
		t.Fatalf("set %s is not a named-port set", id)
	}
	expectMembers(t, x, id, "10.0.5.1,6:8080", "10.0.6.1,6:9090")
	x.TakeChanges()
	x.SetEndpoint("d1", pod("dev", "default", "calid1", "10.0.6.1", api.EndpointPort{Name: "http", Protocol: proto("TCP"), Port: 9091}))
	if c := x.TakeChanges(); !sameKeys(c.Sets, []string{id}) {
		t.Errorf("changed sets %v, want [%s]", keys(c.Sets), id)
	}
	expectMembers(t, x, id, "10.0.5.1,6:8080", "10.0.6.1,6:9091")
	x.SetEndpoint("p1", nil)
	expectMembers(t, x, id, "10.0.6.1,6:9091")
}

// Named ports of another node's endpoints are members too: a local endpoint's egress to a remote pod
// matches that pod's own "http" in ports, and its "dns" in notPorts.
func TestRemoteNamedPorts(t *testing.T) {
	x := k8sWorld(t)
	remote := pod("prod", "api", "calir1", "10.0.7.1", api.EndpointPort{Name: "http", Protocol: proto("TCP"), Port: 7070},
		api.EndpointPort{Name: "dns", Protocol: proto("UDP"), Port: 7070})
	remote.Spec.Node = "host2"
	x.SetEndpoint("r1", remote)
	x.SetPolicy("", "out", gnp(1, "has(net-a)", []string{"Egress"}, nil,
		rules(t, `[{"action":"Allow","protocol":"TCP","destination":{"ports":["http",9]}},
		           {"action":"Allow","protocol":"UDP","destination":{"notPorts":["dns"]}}]`)))
	rs, _ := x.RuleSet(RuleSetID{Kind: KindGlobalPolicy, Name: "out", Dir: Egress})
	expectMembers(t, x, rs[0].Dst.NamedPorts[0], "10.0.5.1,6:8080", "10.0.6.1,6:9090", "10.0.7.1,6:7070")
	expectMembers(t, x, rs[1].Dst.NotNamedPorts[0], "10.0.5.1,17:53", "10.0.7.1,17:7070")
	a1, _ := x.Interface("calia1")
	for _, tc := range []struct {
		proto uint8
		port  uint16
		want  bool
	}{{6, 7070, true}, {6, 9, true}, {6, 8080, false}, {17, 7070, false}, {17, 8080, true}} {
		pkt := packet{src: addr("a1", x), dst: addr("r1", x), proto: tc.proto, sport: 40000, dport: tc.port}
		if got := x.verdict(a1.Plans[Egress], pkt); got != tc.want {
			t.Errorf("a1 to the remote pod, proto %d port %d: allowed %v, want %v", tc.proto, tc.port, got, tc.want)
		}
	}
}
