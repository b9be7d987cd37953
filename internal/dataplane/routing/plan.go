package routing

import (
	"fmt"
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
	kindIPIP                       // via the remote host's address, on-link over tunl0
)

// route is one wanted route, before interface names are resolved.
type route struct {
	dst  netip.Prefix
	kind routeKind
	via  netip.Addr
}

// String renders r as "blackhole <dst>", "<dst> via <node address>", "<dst> vxlan <tunnel address>" or
// "<dst> ipip <node address>".
func (r route) String() string {
	switch r.kind {
	case kindBlackhole:
		return "blackhole " + r.dst.String()
	case kindVXLAN:
		return r.dst.String() + " vxlan " + r.via.String()
	case kindIPIP:
		return r.dst.String() + " ipip " + r.via.String()
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

// ipipDevice is what this host's tunl0 carries.
type ipipDevice struct {
	addr netip.Addr // this node's IPIP tunnel address; invalid until allocated
	mtu  int        // 0: the parent's, less the IPIP overhead
}

// plan is everything the kernel should hold, computed from the datastore alone.
type plan struct {
	routes []route
	device *vtep // nil: no VXLAN device
	remote []remoteVTEP
	ipip   *ipipDevice    // nil: no pool uses IP-in-IP
	pools4 []netip.Prefix // the IPv4 pools' CIDRs, whose addresses tunl0 must not keep without IP-in-IP
	// unroutable says, for each pool whose mode this dataplane cannot route, what happens instead.
	unroutable []string
	viaBGP     bool // see view.bgp
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
	felix  api.FelixConfigurationSpec // tunnel settings of FelixConfiguration default, overridden by node.<self>; zero when none
	bgp    bool                       // unencapsulated pools are routed by BGP, not here
	// bgpConfig is BGP's configuration, read only when bgp is set.
	bgpConfig bgpView
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
	ipip         netip.Addr  // its IPIP tunnel address, if any
}

func parseNode(n *api.Node) node {
	var out node
	if bgp := n.Spec.BGP; bgp != nil {
		out.addr4, out.addr6 = nodePrefix(bgp.IPv4Address), nodePrefix(bgp.IPv6Address)
		if a, err := netip.ParseAddr(bgp.IPv4IPIPTunnelAddr); err == nil && a.Is4() {
			out.ipip = a
		}
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
// every block affine to another node is routed to that node (directly, through VXLAN or through IP-in-IP,
// as its pool says), each address borrowed from a block by a node other than the block's owner gets a host route to
// the borrower, and this node's blocks are blackholed so their unused addresses never leave the host.
func (v *view) compute() plan {
	nodes := make(map[string]node, len(v.nodes))
	for name, n := range v.nodes {
		nodes[name] = parseNode(n)
	}
	self := nodes[v.self]
	p := plan{local4: self.addr4, local6: self.addr6, viaBGP: v.bgp}
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
	for _, pool := range v.pools {
		if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && cidr.Addr().Is6() && !pool.Spec.Disabled &&
			pool.Spec.VXLANMode != "" && pool.Spec.VXLANMode != api.EncapNever {
			p.unroutable = append(p.unroutable, fmt.Sprintf("IP pool %q: VXLAN over IPv6 is not implemented; its blocks are "+
				"routed directly, which reaches hosts on this host's subnet only", pool.Name))
		}
	}
	if slices.ContainsFunc(v.pools, tunneladdr.UsesIPIP) {
		p.ipip = &ipipDevice{addr: self.ipip, mtu: valueOr(v.felix.IPIPMTU, 0)}
	} else {
		for _, pool := range v.pools {
			if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && cidr.Addr().Is4() {
				p.pools4 = append(p.pools4, cidr)
			}
		}
	}
	seen := map[netip.Prefix]bool{}
	add := func(r route) {
		if !seen[r.dst] {
			seen[r.dst] = true
			p.routes = append(p.routes, r)
		}
	}
	for _, b := range v.blocks {
		enc := v.encapFor(b.cidr)
		for _, lent := range b.borrowed {
			if lent.node != v.self {
				if r, ok := p.to(nodes, lent.node, netip.PrefixFrom(lent.addr, lent.addr.BitLen()), enc); ok {
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
			if r, ok := p.to(nodes, b.owner, b.cidr, enc); ok {
				add(r)
			}
		}
	}
	slices.SortFunc(p.routes, func(a, b route) int { return a.dst.Compare(b.dst) })
	return p
}

// encap is how a pool's IPv4 traffic crosses hosts: its encapsulation (kindVXLAN, kindIPIP, or
// kindDirect for none) and that encapsulation's mode (Always or CrossSubnet).
type encap struct {
	kind routeKind
	mode string
}

// to is the route to dst at node name, if that node can be reached: IPv4 by the pool's encapsulation
// (CrossSubnet: directly within this host's subnet, encapsulated across), IPv6 always directly.
func (p *plan) to(nodes map[string]node, name string, dst netip.Prefix, enc encap) (route, bool) {
	n, ok := nodes[name]
	if !ok {
		return route{}, false
	}
	if p.viaBGP && enc.kind == kindDirect {
		return route{}, false
	}
	if dst.Addr().Is6() {
		return route{dst: dst, kind: kindDirect, via: n.addr6.Addr()}, n.addr6.IsValid() && p.local6.IsValid()
	}
	if !n.addr4.IsValid() || !p.local4.IsValid() {
		return route{}, false
	}
	kind := enc.kind
	if enc.mode == api.EncapCrossSubnet && p.local4.Contains(n.addr4.Addr()) {
		kind = kindDirect
	}
	switch kind {
	case kindVXLAN:
		if p.device == nil || n.vtep == nil {
			return route{}, false // no tunnel yet at one end: Calico waits for both VTEPs too
		}
		return route{dst: dst, kind: kindVXLAN, via: n.vtep.tunnel}, true
	case kindIPIP:
		return route{dst: dst, kind: kindIPIP, via: n.addr4.Addr()}, p.ipip != nil
	}
	return route{dst: dst, kind: kindDirect, via: n.addr4.Addr()}, true
}

// encapFor is the encapsulation of the pool holding cidr (none when no pool does: the pool was deleted
// but its blocks still hold addresses). Validation allows at most one of vxlanMode and ipipMode.
func (v *view) encapFor(cidr netip.Prefix) encap {
	for _, pool := range v.pools {
		if pc, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && pc.Bits() <= cidr.Bits() && pc.Contains(cidr.Addr()) {
			switch {
			case pool.Spec.VXLANMode != "" && pool.Spec.VXLANMode != api.EncapNever:
				return encap{kind: kindVXLAN, mode: pool.Spec.VXLANMode}
			case pool.Spec.IPIPMode != "" && pool.Spec.IPIPMode != api.EncapNever:
				return encap{kind: kindIPIP, mode: pool.Spec.IPIPMode}
			}
			return encap{kind: kindDirect}
		}
	}
	return encap{kind: kindDirect}
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
