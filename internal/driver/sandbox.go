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
// Each endpoint routes its network's pools through its own interface, so that whichever network Docker
// gives the default route (another Calico network, Docker's bridge), that network's peers see the address
// they know and its policy applies. An endpoint's routes never name another endpoint's gateway: Docker up
// to 27 moves the interfaces of a container joined before it starts into its namespace in its own order
// (by network name), not in the order of the Joins, so such a route could come before its next hop.

// route is a static route for Docker to install: connected when via is invalid.
type route struct {
	dst netip.Prefix
	via netip.Addr
}

// sandboxes remembers the gateways and pools given to each endpoint of a container: Docker installs them
// only after Join returns, so the container's routing table does not show them yet.
type sandboxes struct {
	mu    sync.Mutex
	byKey map[string]map[string]*grant // sandbox key → endpoint ID → grant
}

type grant struct {
	gw4    netip.Addr
	routes []netip.Prefix
}

func newSandboxes() *sandboxes { return &sandboxes{byKey: map[string]map[string]*grant{}} }

// plan picks the endpoint's IPv4 gateway (when it has IPv4) and the routes its Join must return, given the
// destinations already routed in the container (inKernel), the endpoint's pools and its IPv6 gateway. A
// destination the container already routes is left to that route.
func (s *sandboxes) plan(key, endpointID string, inKernel []netip.Prefix, pools []netip.Prefix, v4 bool, gw6 netip.Addr) (netip.Addr, []route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := map[netip.Prefix]bool{}
	for _, p := range inKernel {
		taken[p] = true
	}
	for ep, g := range s.byKey[key] {
		if ep != endpointID {
			for _, p := range g.routes {
				taken[p] = true
			}
		}
	}
	g := &grant{}
	if v4 {
		for n := 1; n <= 254 && !g.gw4.IsValid(); n++ {
			if candidate := netip.AddrFrom4([4]byte{169, 254, 1, byte(n)}); !taken[netip.PrefixFrom(candidate, 32)] {
				g.gw4 = candidate
			}
		}
		if !g.gw4.IsValid() {
			return netip.Addr{}, nil, fmt.Errorf("container has no free gateway address in %s", gatewayRange)
		}
	}
	var routes []route
	add := func(dst netip.Prefix, via netip.Addr) {
		if !taken[dst] {
			taken[dst] = true
			routes = append(routes, route{dst: dst, via: via})
			g.routes = append(g.routes, dst)
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
	return g.gw4, routes, nil
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
