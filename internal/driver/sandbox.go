package driver

import (
	"fmt"
	"net/netip"
	"sync"
)

// Each endpoint of a container gets its own IPv4 gateway 169.254.1.N (N from 1) with an on-link route
// to it: Docker refuses two identical routes in one container, which is why upstream Calico allowed only
// one network per container. The host answers for every such gateway by proxy ARP. (IPv6 gateways are
// each host interface's own link-local address, unique already.)
//
// Each endpoint routes its network's own pool through its own interface, so that whichever network Docker
// gives the default route (another Calico network, Docker's bridge), that network's peers see the address
// they know and its policy applies. (A network drawing on every pool routes none: it cannot have them all.)
// An endpoint's routes never name another endpoint's gateway that the container does not have yet: Docker
// up to 27 moves the interfaces of a container joined before it starts into its namespace in its own
// order (by network name), not in the order of the Joins, so such a route could come before its next hop.
//
// Docker refuses an interface whose address lies inside a route the container has ("conflicts with
// existing route"): a running container's earlier pool route that holds the new endpoint's address (two
// networks drawing on one pool) is taken out before the Join answers, and given back, through the same
// gateway, among the new endpoint's routes.

// route is a static route for Docker to install: connected when via is invalid.
type route struct {
	dst netip.Prefix
	via netip.Addr
}

// sandboxes remembers the gateways and routes given to each endpoint of a container: Docker installs them
// only after Join returns, so the container's routing table does not show them yet.
type sandboxes struct {
	mu    sync.Mutex
	byKey map[string]map[string]*grant // sandbox key → endpoint ID → grant
}

type grant struct {
	gw4    netip.Addr
	routes []route
}

func newSandboxes() *sandboxes { return &sandboxes{byKey: map[string]map[string]*grant{}} }

// joinPlan is what a Join answers, and the routes to take out of the container first.
type joinPlan struct {
	gw4      netip.Addr
	routes   []route
	displace []netip.Prefix
}

// plan picks the endpoint's IPv4 gateway (when it has IPv4) and the routes its Join must return, given the
// destinations the container routes already (inKernel), the endpoint's addresses, its network's own pools
// and its IPv6 gateway. A destination the container routes already is left to that route, unless it holds
// one of the endpoint's addresses.
func (s *sandboxes) plan(key, endpointID string, inKernel []netip.Prefix, addrs, pools []netip.Prefix, v4 bool, gw6 netip.Addr) (joinPlan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := map[netip.Prefix]bool{}
	for _, p := range inKernel {
		taken[p] = true
	}
	g := &grant{}
	var out joinPlan
	for ep, other := range s.byKey[key] {
		if ep == endpointID {
			continue
		}
		kept := other.routes[:0]
		for _, r := range other.routes {
			if r.via.IsValid() && taken[r.dst] && holdsAny(r.dst, addrs) {
				out.displace = append(out.displace, r.dst)
				g.routes = append(g.routes, r)
				out.routes = append(out.routes, r)
				continue
			}
			taken[r.dst] = true
			kept = append(kept, r)
		}
		other.routes = kept
	}
	if v4 {
		for n := 1; n <= 254 && !g.gw4.IsValid(); n++ {
			if candidate := netip.AddrFrom4([4]byte{169, 254, 1, byte(n)}); !taken[netip.PrefixFrom(candidate, 32)] {
				g.gw4 = candidate
			}
		}
		if !g.gw4.IsValid() {
			return joinPlan{}, fmt.Errorf("container has no free gateway address in %s", gatewayRange)
		}
	}
	add := func(dst netip.Prefix, via netip.Addr) {
		if !taken[dst] {
			taken[dst] = true
			out.routes = append(out.routes, route{dst: dst, via: via})
			g.routes = append(g.routes, route{dst: dst, via: via})
		}
	}
	if g.gw4.IsValid() {
		add(netip.PrefixFrom(g.gw4, 32), netip.Addr{})
	}
	if gw6.IsValid() {
		add(netip.PrefixFrom(gw6, 128), netip.Addr{})
	}
	for _, p := range pools {
		if p.Addr().Is6() {
			add(p, gw6)
		} else {
			add(p, g.gw4)
		}
	}
	if s.byKey[key] == nil {
		s.byKey[key] = map[string]*grant{}
	}
	s.byKey[key][endpointID] = g
	out.gw4 = g.gw4
	return out, nil
}

func holdsAny(p netip.Prefix, addrs []netip.Prefix) bool {
	for _, a := range addrs {
		if p.Contains(a.Addr()) {
			return true
		}
	}
	return false
}

var gatewayRange = netip.MustParsePrefix("169.254.1.0/24")

// release forgets an endpoint's grant (Leave, or a failed Join).
func (s *sandboxes) release(endpointID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, eps := range s.byKey {
		if _, ok := eps[endpointID]; ok {
			delete(eps, endpointID)
			if len(eps) == 0 {
				delete(s.byKey, key)
			}
			return
		}
	}
}
