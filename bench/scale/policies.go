package main

import (
	"fmt"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// The policies: seven in ten are Kubernetes NetworkPolicies spread over the ordinary namespaces, the rest
// GlobalNetworkPolicies over the Docker containers and across namespaces. Their rules use every kind of
// selector (equality, in, has, !=, namespaceSelector, serviceAccounts, named ports); most rule selectors
// are distinct per policy and small, a few are shared and large (a team's namespaces, every pod's named
// port, a role across all containers), as in a real cluster.

const probePolicy = "scale-probe"

func port(n uint16) api.Port          { return api.Port{MinPort: n, MaxPort: n} }
func named(name string) api.Port      { return api.Port{Name: name} }
func proto(name string) *api.Protocol { return &api.Protocol{Name: name} }

func allow(protocol string, src, dst api.EntityRule) api.Rule {
	return api.Rule{Action: api.ActionAllow, Protocol: proto(protocol), Source: src, Destination: dst}
}

// policies are the cluster's policies, by index.
func (c *cluster) policies() []api.Object {
	out := make([]api.Object, 0, c.Policies)
	var np, gnp int
	for i := range c.Policies {
		if i%10 < 7 && c.namespaces > 2 {
			out = append(out, c.networkPolicy(np))
			np++
		} else {
			out = append(out, c.globalPolicy(gnp))
			gnp++
		}
	}
	return out
}

// networkPolicy is the k-th NetworkPolicy: namespaces in turn, and in each the next of seven kinds.
func (c *cluster) networkPolicy(k int) *api.NetworkPolicy {
	ordinary := c.namespaces - 2
	nsIdx := 2 + k%ordinary
	kind := k / ordinary
	order := float64(100 + kind)
	p := &api.NetworkPolicy{}
	p.Namespace = c.namespace(nsIdx)
	p.Name = fmt.Sprintf("np-%d", kind)
	s := &p.Spec
	s.Order = &order
	app := k8sApps[kind%len(k8sApps)].name
	peer := k8sApps[(kind+1)%len(k8sApps)].name
	switch kind % 7 {
	case 0: // one app from another, in the namespace: a small set per policy
		s.Selector = fmt.Sprintf("app == '%s'", app)
		s.Ingress = []api.Rule{allow("TCP", api.EntityRule{Selector: fmt.Sprintf("app == '%s'", peer)},
			api.EntityRule{Ports: []api.Port{port(8080)}})}
	case 1: // from two apps to the named port http: the named-port set holds every pod's http
		s.Selector = fmt.Sprintf("app == '%s'", app)
		s.Ingress = []api.Rule{allow("TCP", api.EntityRule{Selector: fmt.Sprintf("app in {'%s', '%s'}", peer, app)},
			api.EntityRule{Ports: []api.Port{named("http")}})}
	case 2: // Prometheus scrapes the named port metrics: shared sets
		s.Selector = "has(app)"
		s.Ingress = []api.Rule{allow("TCP",
			api.EntityRule{NamespaceSelector: "projectcalico.org/name == 'monitoring'", Selector: "app == 'prometheus'"},
			api.EntityRule{Ports: []api.Port{named("metrics")}})}
	case 3: // from every namespace of the team: ten shared large sets
		s.Selector = "tier == 'backend'"
		s.Ingress = []api.Rule{allow("TCP", api.EntityRule{NamespaceSelector: fmt.Sprintf("team == 'team-%d'", nsIdx%10)},
			api.EntityRule{Ports: []api.Port{port(8080), port(8443)}})}
	case 4: // default deny
		s.Selector = "all()"
		s.Types = []string{api.PolicyTypeIngress, api.PolicyTypeEgress}
	case 5: // DNS: one shared set
		s.Selector = "all()"
		s.Egress = []api.Rule{allow("UDP",
			api.EntityRule{},
			api.EntityRule{NamespaceSelector: "projectcalico.org/name == 'kube-system'", Selector: "k8s-app == 'kube-dns'",
				Ports: []api.Port{port(53)}})}
	case 6: // stable backends to the data tier, by service account too
		s.Selector = "tier == 'data'"
		s.Ingress = []api.Rule{allow("TCP",
			api.EntityRule{Selector: "tier == 'backend' && version != 'canary'", NotSelector: "has(debug)"},
			api.EntityRule{Ports: []api.Port{port(5432), port(6379)}}),
			allow("TCP", api.EntityRule{ServiceAccounts: &api.ServiceAccountMatch{Names: []string{serviceAccount(peer)}}},
				api.EntityRule{Ports: []api.Port{port(5432)}})}
	}
	return p
}

// globalPolicy is the k-th GlobalNetworkPolicy: mostly app to app between Docker containers (a set of
// about 100 a policy), then role-wide and cross-namespace ones with large shared sets.
func (c *cluster) globalPolicy(k int) *api.GlobalNetworkPolicy {
	order := float64(200 + k%50)
	p := &api.GlobalNetworkPolicy{}
	p.Name = fmt.Sprintf("gnp-%04d", k)
	s := &p.Spec
	s.Order = &order
	app, peer := k%c.libApps, (k+1)%c.libApps
	env := envs[k%2]
	switch kind := k % 10; {
	case kind < 6:
		s.Selector = fmt.Sprintf("app == 'svc-%03d'", app)
		s.Ingress = []api.Rule{allow("TCP", api.EntityRule{Selector: fmt.Sprintf("app == 'svc-%03d'", peer)},
			api.EntityRule{Ports: []api.Port{port(80), port(443)}})}
	case kind == 6:
		s.Selector = fmt.Sprintf("role == 'db' && env == '%s'", env)
		s.Ingress = []api.Rule{allow("TCP", api.EntityRule{Selector: fmt.Sprintf("role == 'backend' && env == '%s'", env)},
			api.EntityRule{Ports: []api.Port{port(5432)}})}
	case kind == 7:
		s.Selector = "has(role)"
		s.Egress = []api.Rule{{Action: api.ActionAllow, Destination: api.EntityRule{Nets: []string{"0.0.0.0/0"},
			NotNets: []string{pool.String()}}}}
	case kind == 8:
		s.Selector = "role in {'frontend'}"
		s.Ingress = []api.Rule{allow("TCP",
			api.EntityRule{Selector: fmt.Sprintf("role in {'frontend', 'backend'} && version != 'canary' && env == '%s'", env)},
			api.EntityRule{Ports: []api.Port{port(80)}})}
	default: // cross-namespace: pods of prod namespaces by service account
		s.NamespaceSelector = "env == 'prod'"
		s.Selector = "tier == 'data'"
		s.Ingress = []api.Rule{allow("TCP",
			api.EntityRule{ServiceAccounts: &api.ServiceAccountMatch{Names: []string{serviceAccount(k8sApps[k%len(k8sApps)].name)}}},
			api.EntityRule{Ports: []api.Port{port(5432)}})}
	}
	return p
}

// probe is the policy the label probes go through: it selects this host's containers and admits the
// remote endpoints labelled scale-probe=on, so its set holds the probe endpoint's address only while the
// label is on.
func probe() *api.GlobalNetworkPolicy {
	order := 1.0
	p := &api.GlobalNetworkPolicy{Spec: api.PolicySpec{Order: &order, Selector: "scale-local == 'true'",
		Ingress: []api.Rule{allow("TCP", api.EntityRule{Selector: "scale-probe == 'on'"},
			api.EntityRule{Ports: []api.Port{port(9999)}})}}}
	p.Name = probePolicy
	return p
}
