package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// addPod plugs a Kubernetes-style workload the way Calico's CNI and Felix would on this node: a WEP of
// orchestrator k8s in a namespace, with a service account and named ports, whose routes (protocol boot,
// Felix's) and permanent neighbour entries the test installs itself; the agent only enforces its policy.
func (r *rig) addPod(name string, n int, namespace, account string, ports ...api.EndpointPort) *workload {
	r.t.Helper()
	return r.addPodOn(testNode, "cali"+name, name, n, namespace, account, ports...)
}

// addRemotePod adds a pod of another node, host2, whose CNI names its interface cali<name> there. Here it
// sits behind the link to-<name>, which stands for the route to host2: not a workload interface, so only
// the local endpoints' policy applies to its traffic, as on a real host.
func (r *rig) addRemotePod(name string, n int, namespace, account string, ports ...api.EndpointPort) *workload {
	r.t.Helper()
	return r.addPodOn("host2", "to-"+name, name, n, namespace, account, ports...)
}

// addPodOn adds a pod of node, plugged into the rig's host through the link iface.
func (r *rig) addPodOn(node, iface, name string, n int, namespace, account string, ports ...api.EndpointPort) *workload {
	r.t.Helper()
	w := &workload{Workload: linktest.Workload{NS: linktest.NewNS(r.t, "pod"), HostIface: iface,
		IPv4: net.ParseIP(fmt.Sprintf("10.65.1.%d", n)), IPv6: net.ParseIP(fmt.Sprintf("fd00:65:1::%d", n))}}
	mac := linktest.Plug(r.t, r.host, w.Workload)
	linktest.RouteAsFelix(r.t, r.host, w.Workload, mac)
	wep := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Orchestrator: "k8s", Workload: "", Pod: name,
		Endpoint: "eth0", Node: node, InterfaceName: "cali" + name, MAC: mac.String(), Ports: ports,
		Profiles:   []string{"kns." + namespace, "ksa." + namespace + "." + account},
		IPNetworks: []string{w.IPv4.String() + "/32", w.IPv6.String() + "/128"}}}
	wep.Namespace = namespace
	wep.Labels = map[string]string{api.LabelServiceAccount: account}
	name, err := api.WorkloadEndpointName(wep.Spec)
	linktest.Must(r.t, err)
	wep.Name = name
	linktest.Must(r.t, r.store.Create(context.Background(), wep))
	linktest.Serve(r.t, w.NS, probePort)
	w.wep = wep
	r.wl[wep.Spec.Pod] = w
	r.settle()
	return w
}

func allowAllProfile(name string, labels map[string]string) *api.Profile {
	p := &api.Profile{Spec: api.ProfileSpec{LabelsToApply: labels,
		Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}}
	p.Name = name
	return p
}

func policyRules(t *testing.T, js string) []api.Rule {
	t.Helper()
	var rs []api.Rule
	linktest.Must(t, json.Unmarshal([]byte(js), &rs))
	return rs
}

// Policy over namespaces, service accounts and named ports, for Kubernetes-style endpoints written as
// calico/node's CNI writes them beside Docker containers, enforced in the kernel with real traffic;
// and a Deny carrying a match the dataplane cannot enforce keeps denying.
func TestKubernetesStylePolicy(t *testing.T) {
	var unenforced atomic.Int64
	r := newRig(t, Config{ObserveUnenforced: func(n int) { unenforced.Store(int64(n)) }})
	r.put(networkProfile("net-a"))
	r.put(allowAllProfile("kns.prod", map[string]string{"pcns.projectcalico.org/name": "prod", "pcns.team": "a"}))
	r.put(allowAllProfile("kns.dev", map[string]string{"pcns.projectcalico.org/name": "dev", "pcns.team": "b"}))
	r.put(allowAllProfile("ksa.prod.api", map[string]string{"pcsa.projectcalico.org/name": "api", "pcsa.role": "frontend"}))
	r.put(allowAllProfile("ksa.dev.default", map[string]string{"pcsa.projectcalico.org/name": "default"}))
	r.addWorkload("a1", 1, []string{"net-a"}, nil)
	tcp := api.Protocol{Name: "TCP"}
	r.addPod("p1", 1, "prod", "api", api.EndpointPort{Name: "http", Protocol: tcp, Port: probePort})
	r.addPod("d1", 2, "dev", "default", api.EndpointPort{Name: "http", Protocol: tcp, Port: probePort + 1})
	all := []string{"a1", "p1", "d1"}
	r.expectReach(all, paths("a1>p1 a1>d1 p1>d1 d1>p1"))

	// Into namespaces of team a (p1), only dev's pods, and only on the destination's own "http".
	toTeamA := gnp("to-team-a", 10, "", []string{"Ingress"}, policyRules(t,
		`[{"action":"Allow","protocol":"TCP","source":{"namespaceSelector":"projectcalico.org/name == 'dev'"},"destination":{"ports":["http"]}}]`), nil)
	toTeamA.Spec.NamespaceSelector = "team == 'a'"
	r.put(toTeamA)
	r.expectReach(all, paths("a1>d1 p1>d1"), paths("d1>p1", "tcp4", "tcp6"))

	// Into dev (d1): service account api only, and its http is 8081, so TCP 8080 stays out; a named
	// notPorts lets it in on everything but http.
	toDev := gnp("to-dev", 10, "projectcalico.org/namespace == 'dev'", []string{"Ingress"}, policyRules(t,
		`[{"action":"Allow","protocol":"TCP","source":{"serviceAccounts":{"names":["api"]}},"destination":{"ports":["http"]}}]`), nil)
	r.put(toDev)
	r.expectReach(all, paths("d1>p1", "tcp4", "tcp6"))
	toDev.Spec.Ingress = append(toDev.Spec.Ingress, policyRules(t,
		`[{"action":"Allow","protocol":"UDP","source":{"serviceAccounts":{"selector":"role == 'frontend'"}},"destination":{"notPorts":["http"]}}]`)...)
	toDev.ResourceVersion = ""
	r.put(toDev)
	r.expectReach(all, paths("d1>p1", "tcp4", "tcp6"), paths("p1>d1", "udp4", "udp6"))

	// Fail closed: a Deny with an HTTP match and one with a services match deny all they would otherwise
	// match (everything from the pods); the Pass hands the rest (a1's traffic) to the next tier, here the
	// profiles, which let it into the pods.
	r.put(gnp("deny-get", 1, "all()", []string{"Ingress"}, policyRules(t,
		`[{"action":"Deny","source":{"serviceAccounts":{"names":["default"]}},"http":{"methods":["GET"]}},
		  {"action":"Deny","destination":{"services":{"name":"web","namespace":"dev"}},"source":{"serviceAccounts":{"names":["api"]}}},
		  {"action":"Pass"}]`), nil))
	r.expectReach(all, paths("a1>p1 a1>d1"))
	if n := unenforced.Load(); n != 2 {
		t.Errorf("%d rules reported as failing closed, want 2", n)
	}
}

// Named ports of another node's pod, in ports and notPorts, enforced in the kernel: a local container's
// egress reaches the remote pod on that pod's own "http" and on UDP but its "dns", and follows the pod
// when its ports change.
func TestRemoteNamedPorts(t *testing.T) {
	r := newRig(t, Config{})
	r.put(networkProfile("net-a"))
	r.put(allowAllProfile("kns.prod", map[string]string{"pcns.projectcalico.org/name": "prod"}))
	r.put(allowAllProfile("ksa.prod.api", map[string]string{"pcsa.projectcalico.org/name": "api"}))
	r.addWorkload("a1", 1, []string{"net-a"}, nil)
	tcp, udp := api.Protocol{Name: "TCP"}, api.Protocol{Name: "UDP"}
	remote := r.addRemotePod("r1", 3, "prod", "api", api.EndpointPort{Name: "http", Protocol: tcp, Port: probePort},
		api.EndpointPort{Name: "dns", Protocol: udp, Port: probePort})
	all := []string{"a1", "r1"}
	// Without policy: a1's profile lets all out; nothing of a1's lets r1 in.
	r.expectReach(all, paths("a1>r1"))

	r.put(gnp("out", 10, "has(net-a)", []string{"Egress"}, nil, policyRules(t,
		`[{"action":"Allow","protocol":"TCP","destination":{"ports":["http",9]}},
		  {"action":"Allow","protocol":"UDP","destination":{"notPorts":["dns"]}}]`)))
	r.expectReach(all, paths("a1>r1", "tcp4", "tcp6"))

	remote.wep.Spec.Ports = []api.EndpointPort{{Name: "http", Protocol: tcp, Port: probePort + 1},
		{Name: "dns", Protocol: udp, Port: probePort + 1}}
	remote.wep.ResourceVersion = ""
	r.put(remote.wep)
	r.expectReach(all, paths("a1>r1", "udp4", "udp6"))
}
