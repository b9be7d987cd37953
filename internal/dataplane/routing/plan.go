package routing

import (
	"net"
	"net/netip"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/tunneladdr"
)

// routeKind says how a destination is reached.
type routeKind int

const (
	kindBlackhole routeKind = iota // one of this host's blocks: unused addresses go nowhere
	kindDirect                     // via the remote host's address, on-link on the parent interface
	kindVXLAN                      // via the remote host's tunnel address over the VXLAN device
)

// route is one wanted route, before interface names are resolved.
type route struct {
	dst  netip.Prefix
	kind routeKind
	via  netip.Addr
}

// String renders r as "blackhole <dst>", "<dst> via <node address>" or "<dst> vxlan <tunnel address>".
func (r route) String() string {
	switch r.kind {
	case kindBlackhole:
		return "blackhole " + r.dst.String()
	case kindVXLAN:
		return r.dst.String() + " vxlan " + r.via.String()
	default:
		return r.dst.String() + " via " + r.via.String()
	}
}

// vtep is this host's own VXLAN endpoint.
type vtep struct {
	local, tunnel netip.Addr
	mac           net.HardwareAddr
	vni, port     int
	mtu           int // 0: the parent's, less the VXLAN overhead
}

// plan is everything the kernel should hold, computed from the datastore alone.
type plan struct {
	routes []route
	device *vtep // nil: no VXLAN device
	remote []remoteVTEP
	// local4 and local6 are this host's addresses with prefix (invalid when unknown): the parent
	// interfaces of direct routes and tunnels are the interfaces holding them.
	local4, local6 netip.Prefix
}

type remoteVTEP struct {
	tunnel, node netip.Addr
	mac          net.HardwareAddr
}

// view is the datastore content the plan is computed from.
type view struct {
	self   string
	nodes  map[string]*api.Node
	pools  []*api.IPPool
	blocks []blockRoute
	felix  api.FelixConfigurationSpec // VXLAN settings of FelixConfiguration default, overridden by node.<self>; zero when none
}

// blockRoute is what of an IPAM block the routes depend on: its CIDR, its owner and the addresses other
// nodes borrowed from it. The reconciler keeps only this of each block, because every host watches every
// block of the cluster and most of a block is its allocations' attributes.
type blockRoute struct {
	cidr     netip.Prefix
	owner    string
	borrowed []borrowedAddr // in address order
}

// borrowedAddr is an address of a block held by a node other than the block's owner.
type borrowedAddr struct {
	addr netip.Addr
	node string
}

func routeOf(b *ipam.Block) blockRoute {
	r := blockRoute{cidr: b.CIDR, owner: b.Owner()}
	for ord, a := range b.Allocated() {
		if user := a.Secondary[ipam.AttrNode]; user != "" && user != r.owner {
			r.borrowed = append(r.borrowed, borrowedAddr{b.Addr(ord), user})
		}
	}
	return r
}

func routesOf(blocks ...*ipam.Block) []blockRoute {
	out := make([]blockRoute, len(blocks))
	for i, b := range blocks {
		out[i] = routeOf(b)
	}
	return out
}

func (r blockRoute) equal(o blockRoute) bool {
	return r.cidr == o.cidr && r.owner == o.owner && slices.Equal(r.borrowed, o.borrowed)
}

// Routes is what node self routes given this datastore content, one route a line as route.String renders
// it, ordered by destination: the reconciler's plan without a kernel, for checking it against datastores
// written by others.
func Routes(self string, nodes []*api.Node, pools []*api.IPPool, blocks []*ipam.Block) []string {
	v := view{self: self, nodes: make(map[string]*api.Node, len(nodes)), pools: pools, blocks: routesOf(blocks...)}
	for _, n := range nodes {
		v.nodes[n.Name] = n
	}
	p := v.compute()
	out := make([]string, len(p.routes))
	for i, r := range p.routes {
		out[i] = r.String()
	}
	return out
}

// node is a Node as routing sees it.
type node struct {
	addr4, addr6 netip.Prefix
	vtep         *remoteVTEP // nil until the node has a tunnel address
}

func parseNode(n *api.Node) node {
	var out node
	if bgp := n.Spec.BGP; bgp != nil {
		out.addr4, out.addr6 = nodePrefix(bgp.IPv4Address), nodePrefix(bgp.IPv6Address)
	}
	tunnel, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
	if err == nil && tunnel.Is4() && out.addr4.IsValid() {
		out.vtep = &remoteVTEP{tunnel: tunnel, node: out.addr4.Addr(), mac: vtepMAC(n)}
	}
	return out
}

// nodePrefix parses a Node address: CIDR form, or a bare address (a host prefix).
func nodePrefix(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.Prefix{}
}

// compute derives the wanted routes and tunnel state, as Felix does from blocks, pools and nodes:
// every block affine to another node is routed to that node (directly or through VXLAN, as its pool
// says), each address borrowed from a block by a node other than the block's owner gets a host route to
// the borrower, and this node's blocks are blackholed so their unused addresses never leave the host.
func (v *view) compute() plan {
	nodes := make(map[string]node, len(v.nodes))
	for name, n := range v.nodes {
		nodes[name] = parseNode(n)
	}
	self := nodes[v.self]
	p := plan{local4: self.addr4, local6: self.addr6}
	if self.vtep != nil && v.vxlanEnabled() {
		p.device = &vtep{local: self.addr4.Addr(), tunnel: self.vtep.tunnel, mac: self.vtep.mac,
			vni: valueOr(v.felix.VXLANVNI, VXLANVNI), port: valueOr(v.felix.VXLANPort, VXLANPort), mtu: valueOr(v.felix.VXLANMTU, 0)}
		for name, n := range nodes {
			if name != v.self && n.vtep != nil {
				p.remote = append(p.remote, *n.vtep)
			}
		}
		slices.SortFunc(p.remote, func(a, b remoteVTEP) int { return a.tunnel.Compare(b.tunnel) })
	}
	seen := map[netip.Prefix]bool{}
	add := func(r route) {
		if !seen[r.dst] {
			seen[r.dst] = true
			p.routes = append(p.routes, r)
		}
	}
	for _, b := range v.blocks {
		mode := v.encapFor(b.cidr)
		for _, lent := range b.borrowed {
			if lent.node != v.self {
				if r, ok := p.to(nodes, lent.node, netip.PrefixFrom(lent.addr, lent.addr.BitLen()), mode); ok {
					add(r)
				}
			}
		}
		switch {
		case b.owner == v.self:
			if b.cidr.Bits() < b.cidr.Addr().BitLen() {
				add(route{dst: b.cidr, kind: kindBlackhole})
			}
		case b.owner != "":
			if r, ok := p.to(nodes, b.owner, b.cidr, mode); ok {
				add(r)
			}
		}
	}
	slices.SortFunc(p.routes, func(a, b route) int { return a.dst.Compare(b.dst) })
	return p
}

// to is the route to dst at node name, if that node can be reached: IPv4 by the pool's encapsulation
// (CrossSubnet: directly within this host's subnet, VXLAN across), IPv6 always directly.
func (p *plan) to(nodes map[string]node, name string, dst netip.Prefix, mode string) (route, bool) {
	n, ok := nodes[name]
	if !ok {
		return route{}, false
	}
	if dst.Addr().Is6() {
		return route{dst: dst, kind: kindDirect, via: n.addr6.Addr()}, n.addr6.IsValid() && p.local6.IsValid()
	}
	direct := mode == api.EncapNever || (mode == api.EncapCrossSubnet && p.local4.Contains(n.addr4.Addr()))
	if direct {
		return route{dst: dst, kind: kindDirect, via: n.addr4.Addr()}, n.addr4.IsValid() && p.local4.IsValid()
	}
	if p.device == nil || n.vtep == nil {
		return route{}, false // no tunnel yet at one end: Calico waits for both VTEPs too
	}
	return route{dst: dst, kind: kindVXLAN, via: n.vtep.tunnel}, true
}

// encapFor is the VXLAN mode of the pool holding cidr (Never when no pool does: the pool was deleted but
// its blocks still hold addresses). IPIP is not implemented; its pools are routed directly.
func (v *view) encapFor(cidr netip.Prefix) string {
	for _, pool := range v.pools {
		if pc, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && pc.Bits() <= cidr.Bits() && pc.Contains(cidr.Addr()) {
			if pool.Spec.VXLANMode == "" {
				return api.EncapNever
			}
			return pool.Spec.VXLANMode
		}
	}
	return api.EncapNever
}

// valueOr is *p, or def when p is nil (the field is not set).
func valueOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// vxlanEnabled reports whether any enabled IPv4 pool uses VXLAN, which is when Felix creates the device.
func (v *view) vxlanEnabled() bool {
	return slices.ContainsFunc(v.pools, tunneladdr.UsesVXLAN)
}

// vtepMAC is a node's VTEP MAC: vxlanTunnelMACAddr when set, else the one Felix derives from its name.
func vtepMAC(n *api.Node) net.HardwareAddr {
	if mac, err := net.ParseMAC(n.Spec.VXLANTunnelMACAddr); err == nil && len(mac) == 6 {
		return mac
	}
	return tunneladdr.DerivedMAC(n.Name)
}
