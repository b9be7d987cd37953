package dataplane

import (
	"net/netip"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
)

// What the agent may do to a host interface. It routes to, and deletes, only veths named as the driver
// names them (api.LibnetworkInterface): another tool's interface that merely starts with "cali" (a dummy,
// a bridge, a CNI's veth for a pod on this host) and whatever a workload endpoint names (eth0, lo) are
// left alone. Policy is another matter: every local endpoint keeps its dispatch entries, as under Felix,
// and the firewall's chains only ever see interfaces named cali*.

// ifaceClass is what one host interface is to the agent.
type ifaceClass int

const (
	notOurs ifaceClass = iota // never routed to, never deleted, its routes left alone
	owned                     // the host end of one of the plugin's endpoints: routed as the endpoint says
	stale                     // shaped like ours but claimed by no endpoint of this node: deleted after a grace period
)

// claim is what this node's workload endpoints say about one interface name.
type claim struct {
	claimed bool       // an endpoint of this node (of any orchestrator, even one that fails validation) names it
	owner   bool       // a valid endpoint of the plugin's names it (api.OwnedInterface)
	routes  routeState // that endpoint's addresses and MAC
}

// classify decides what a host interface is to the agent.
func classify(l link.Iface, c claim) ifaceClass {
	switch {
	case !l.IsVeth() || !api.IsLibnetworkInterface(l.Name):
		return notOurs
	case c.owner:
		return owned
	case c.claimed || !l.Made(): // e.g. a CNI's veth that happens to look like ours
		return notOurs
	default:
		return stale
	}
}

// claims indexes the interface names this node's workload endpoints claim.
type claims struct {
	node    string
	byKey   map[string]endpointClaim       // by datastore key
	byName  map[string]map[string]struct{} // interface name → keys of the endpoints naming it
	changed map[string]struct{}            // names whose claim changed since takeChanged
}

// endpointClaim is one endpoint's claim.
type endpointClaim struct {
	iface  string
	owner  bool
	routes routeState
}

func newClaims(node string) *claims {
	return &claims{node: node, byKey: map[string]endpointClaim{}, byName: map[string]map[string]struct{}{},
		changed: map[string]struct{}{}}
}

// set records the claim of the endpoint stored under key (nil: deleted). An endpoint that failed
// validation (valid false) is not acted on, but its interface is still claimed: the sweep never deletes
// an interface some endpoint names.
func (c *claims) set(key string, w *api.WorkloadEndpoint, valid bool) {
	old, had := c.byKey[key]
	var now endpointClaim
	has := w != nil && w.Spec.Node == c.node && w.Spec.InterfaceName != ""
	if has {
		now.iface = w.Spec.InterfaceName
		if _, ours := api.OwnedInterface(c.node, w); ours && valid {
			now.owner, now.routes = true, routesOf(w)
		}
	}
	if had == has && old.iface == now.iface && old.owner == now.owner && old.routes.equal(now.routes) {
		return
	}
	if had {
		delete(c.byName[old.iface], key)
		if len(c.byName[old.iface]) == 0 {
			delete(c.byName, old.iface)
		}
		delete(c.byKey, key)
		c.changed[old.iface] = struct{}{}
	}
	if has {
		if c.byName[now.iface] == nil {
			c.byName[now.iface] = map[string]struct{}{}
		}
		c.byName[now.iface][key] = struct{}{}
		c.byKey[key] = now
		c.changed[now.iface] = struct{}{}
	}
}

// lookup returns the claim on an interface name. Should two of the plugin's endpoints name it, the one
// with the smaller key wins, so the answer does not depend on event order.
func (c *claims) lookup(name string) claim {
	var out claim
	ownerKey := ""
	for key := range c.byName[name] {
		out.claimed = true
		if e := c.byKey[key]; e.owner && (!out.owner || key < ownerKey) {
			out.owner, out.routes, ownerKey = true, e.routes, key
		}
	}
	return out
}

// takeChanged returns the interface names whose claim changed since the previous call.
func (c *claims) takeChanged() map[string]struct{} {
	ch := c.changed
	c.changed = map[string]struct{}{}
	return ch
}

// routesOf is what an endpoint's interface is routed: its addresses, with its MAC in the neighbour table.
func routesOf(w *api.WorkloadEndpoint) routeState {
	rs := routeState{mac: w.Spec.MAC}
	for _, n := range w.Spec.IPNetworks {
		if p, err := api.ParseIPNetwork(n); err == nil {
			rs.addrs = append(rs.addrs, p.Addr())
		}
	}
	return rs
}

// routeState is what the agent routes to one interface: its endpoint's addresses and MAC.
type routeState struct {
	mac   string
	addrs []netip.Addr
}

func (r routeState) equal(o routeState) bool {
	return r.mac == o.mac && slices.Equal(r.addrs, o.addrs)
}
