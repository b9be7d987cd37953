package routing

import (
	"net/netip"
	"slices"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/bgp"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// Calico's BGP defaults, which calico/node applies when a BGPConfiguration leaves a field unset.
const (
	defaultListenPort  = 179
	defaultRestartTime = 120 * time.Second // graceful restart: how long peers keep our routes
)

// Session types, as calicoctl node status names them.
const (
	peerMesh   = "node-to-node mesh"
	peerGlobal = "global"
	peerNode   = "node specific"
)

// bgpView is the BGP share of the datastore: the configurations default and node.<self>, and the peers.
type bgpView struct {
	def, node *api.BGPConfigurationSpec // nil when absent (or invalid)
	peers     []*api.BGPPeer
}

// bgpPlan is what the speaker does, as calico/node's BIRD would be configured: sessions with every other
// node (the node-to-node mesh, unless BGPConfiguration default turns it off) and with the BGPPeers that
// select this node, over IPv4 and, where both ends have one, IPv6; a node with routeReflectorClusterID
// reflecting for the nodes without one; this node's blocks and the addresses it borrowed advertised; what
// peers advertise for unencapsulated pools programmed.
func (v *view) bgpPlan() bgp.Plan {
	self, ok := v.nodes[v.self]
	if !ok || self.Spec.BGP == nil {
		return bgp.Plan{}
	}
	routerID := nodePrefix(self.Spec.BGP.IPv4Address).Addr()
	if !routerID.Is4() {
		return bgp.Plan{}
	}
	cfg := v.bgpConfig
	self6 := nodeAddr6(self)
	p := bgp.Plan{ASN: v.nodeASN(self), RouterID: routerID, NextHop6: self6, ListenPort: defaultListenPort}
	for _, c := range []*api.BGPConfigurationSpec{cfg.def, cfg.node} {
		if c != nil && c.ListenPort != 0 {
			p.ListenPort = int32(c.ListenPort)
		}
		if c != nil && c.BindMode == "NodeIP" {
			p.ListenAddrs = []netip.Addr{routerID}
		}
	}
	peers := map[netip.Addr]bgp.Peer{}
	if cfg.def == nil || cfg.def.NodeToNodeMeshEnabled == nil || *cfg.def.NodeToNodeMeshEnabled {
		restart := defaultRestartTime
		if cfg.def != nil && cfg.def.NodeMeshMaxRestartTime != nil {
			restart = time.Duration(*cfg.def.NodeMeshMaxRestartTime)
		}
		for name, n := range v.nodes {
			if name == v.self {
				continue
			}
			for _, addr := range sessionAddrs(n, self6.IsValid()) {
				source := routerID
				if addr.Is6() {
					source = self6
				}
				peers[addr] = bgp.Peer{Addr: addr, Port: uint16(p.ListenPort), ASN: v.nodeASN(n), Source: source,
					Type: peerMesh, Name: name, RestartTime: seconds(restart), RRClusterID: reflectsFor(self, n)}
			}
		}
	}
	// Explicit peers come after the mesh and replace its session with the same address, as in confd.
	for _, bp := range cfg.peers {
		for _, peer := range v.peersOf(bp, self, routerID) {
			peers[peer.Addr] = peer
		}
	}
	for _, peer := range peers {
		if peer.Addr != routerID {
			p.Peers = append(p.Peers, peer)
		}
	}
	slices.SortFunc(p.Peers, func(a, b bgp.Peer) int { return a.Addr.Compare(b.Addr) })

	for _, b := range v.blocks {
		if !v.exported(b.cidr) || (b.cidr.Addr().Is6() && !self6.IsValid()) {
			continue
		}
		if b.owner == v.self {
			p.Advertise = append(p.Advertise, b.cidr)
		}
		for _, lent := range b.borrowed {
			if lent.node == v.self && b.owner != v.self {
				p.Advertise = append(p.Advertise, netip.PrefixFrom(lent.addr, lent.addr.BitLen()))
			}
		}
	}
	slices.SortFunc(p.Advertise, netip.Prefix.Compare)
	for _, pool := range v.pools {
		if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && v.encapFor(cidr).kind == kindDirect {
			p.Pools = append(p.Pools, cidr)
		}
	}
	return p
}

// sessionAddrs are the addresses to peer with node n: its IPv4 one, and its IPv6 one when this node has
// IPv6 too.
func sessionAddrs(n *api.Node, v6 bool) []netip.Addr {
	var out []netip.Addr
	if a := nodeAddr4(n); a.IsValid() {
		out = append(out, a)
	}
	if a := nodeAddr6(n); a.IsValid() && v6 {
		out = append(out, a)
	}
	return out
}

// peersOf is what BGPPeer bp means for this node: nothing unless its node or nodeSelector selects self
// (neither: every node); then the IPv4 peer at peerIP, or every other node peerSelector selects.
func (v *view) peersOf(bp *api.BGPPeer, self *api.Node, routerID netip.Addr) []bgp.Peer {
	s := bp.Spec
	kind := peerGlobal
	switch {
	case s.Node != "":
		if s.Node != v.self {
			return nil
		}
		kind = peerNode
	case s.NodeSelector != "":
		if !selects(s.NodeSelector, self.Labels) {
			return nil
		}
		kind = peerNode
	}
	if s.LocalWorkloadSelector != "" {
		return nil // peering with workloads needs BIRD's dynamic sessions, which the speaker does not have
	}
	base := bgp.Peer{Type: kind, Name: bp.Name, RestartTime: seconds(defaultRestartTime)}
	if s.SourceAddress != api.SourceAddressNone {
		base.Source = routerID
	}
	if s.MaxRestartTime != nil {
		base.RestartTime = seconds(time.Duration(*s.MaxRestartTime))
	}
	if s.TTLSecurity != nil {
		base.TTLSecurity = *s.TTLSecurity
	}
	self6 := nodeAddr6(self)
	source := func(peer bgp.Peer) bgp.Peer {
		if peer.Source.IsValid() && peer.Addr.Is6() {
			peer.Source = self6
		}
		return peer
	}
	if s.PeerIP != "" {
		addr, port, err := api.ParsePeerIP(s.PeerIP)
		if err != nil || (addr.Is6() && !self6.IsValid()) {
			return nil
		}
		base.Addr, base.Port, base.ASN = addr, port, uint32(s.ASNumber)
		return []bgp.Peer{source(base)}
	}
	var out []bgp.Peer
	for name, n := range v.nodes {
		if name == v.self || !selects(s.PeerSelector, n.Labels) {
			continue
		}
		for _, addr := range sessionAddrs(n, self6.IsValid()) {
			peer := base
			peer.Addr, peer.ASN, peer.RRClusterID = addr, v.nodeASN(n), reflectsFor(self, n)
			out = append(out, source(peer))
		}
	}
	return out
}

// reflectsFor is the cluster ID with which self reflects routes for peer: self's routeReflectorClusterID
// when peer is a node that is no route reflector itself, as calico/node configures BIRD; "" otherwise.
func reflectsFor(self, peer *api.Node) string {
	id := self.Spec.BGP.RouteReflectorClusterID
	if id == "" || (peer.Spec.BGP != nil && peer.Spec.BGP.RouteReflectorClusterID != "") {
		return ""
	}
	return id
}

func selects(sel string, labels map[string]string) bool {
	s, err := selector.Parse(sel)
	return err == nil && s.Matches(labels)
}

func nodeAddr4(n *api.Node) netip.Addr {
	if n.Spec.BGP == nil {
		return netip.Addr{}
	}
	if a := nodePrefix(n.Spec.BGP.IPv4Address).Addr(); a.Is4() {
		return a
	}
	return netip.Addr{}
}

func nodeAddr6(n *api.Node) netip.Addr {
	if n.Spec.BGP == nil {
		return netip.Addr{}
	}
	if a := nodePrefix(n.Spec.BGP.IPv6Address).Addr(); a.Is6() {
		return a
	}
	return netip.Addr{}
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

// exported reports whether the pool holding cidr lets its routes be advertised (disableBGPExport unset).
func (v *view) exported(cidr netip.Prefix) bool {
	for _, pool := range v.pools {
		if pc, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && pc.Bits() <= cidr.Bits() && pc.Contains(cidr.Addr()) {
			return !pool.Spec.DisableBGPExport
		}
	}
	return false
}

// nodeASN is a node's AS number: its own, else BGPConfiguration default's, else Calico's default.
func (v *view) nodeASN(n *api.Node) uint32 {
	if n.Spec.BGP != nil && n.Spec.BGP.ASNumber != nil {
		return uint32(*n.Spec.BGP.ASNumber)
	}
	if d := v.bgpConfig.def; d != nil && d.ASNumber != nil {
		return uint32(*d.ASNumber)
	}
	return uint32(api.DefaultASNumber)
}
