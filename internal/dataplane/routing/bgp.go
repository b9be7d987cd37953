package routing

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
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
		if c != nil && c.LogSeverityScreen != "" {
			p.LogLevel = logLevel(c.LogSeverityScreen)
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
	// Explicit peers come after the mesh and replace its session with the same address, as in confd; then
	// the reverse of other nodes' peerings with this one, where no explicit peer has the address.
	explicit := map[netip.Addr]bgp.Peer{}
	for _, bp := range cfg.peers {
		for _, peer := range v.peersOf(bp, self, routerID) {
			explicit[peer.Addr] = peer
		}
	}
	for _, bp := range cfg.peers {
		for _, peer := range v.reversePeersOf(bp, self, routerID) {
			if _, ok := explicit[peer.Addr]; !ok {
				explicit[peer.Addr] = peer
			}
		}
	}
	maps.Copy(peers, explicit)
	nodeAddrs := map[netip.Addr]bool{}
	for _, n := range v.nodes {
		for _, a := range sessionAddrs(n, true) {
			nodeAddrs[a] = true
		}
	}
	for _, peer := range peers {
		if peer.Addr == routerID {
			continue
		}
		if nodeAddrs[peer.Addr] {
			local := routerID
			if peer.Addr.Is6() {
				local = self6
			}
			// Between two Calico nodes only the side with the higher address connects, as confd compares
			// them (as strings): two speakers that both connect can keep refusing each other's attempts,
			// each in its idle hold time after its own last one. confd makes BIRD passive so for mesh and
			// global sessions only, and active for the others, so a calico/node peer always connects
			// where this side waits.
			peer.Passive = peer.Addr.String() > local.String()
		}
		p.Peers = append(p.Peers, peer)
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
	p.Communities = communityRules(cfg)
	// As confd: default's ignoredInterfaces, and always Calico's workload and kube-proxy IPVS interfaces.
	if cfg.def != nil {
		p.IgnoredInterfaces = slices.Clone(cfg.def.IgnoredInterfaces)
	}
	p.IgnoredInterfaces = append(p.IgnoredInterfaces, "cali*", "kube-ipvs*")
	for _, pool := range v.pools {
		if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && v.encapFor(cidr).kind == kindDirect {
			p.Pools = append(p.Pools, cidr)
		}
	}
	return p
}

// communityRules are the prefixAdvertisements of BGPConfiguration node.<self> when it has them, else
// default's, names resolved in the same resource's communities, as confd configures BIRD.
func communityRules(cfg bgpView) []bgp.CommunityRule {
	c := cfg.node
	if c == nil || c.PrefixAdvertisements == nil {
		c = cfg.def
	}
	if c == nil {
		return nil
	}
	named := map[string]string{}
	for _, n := range c.Communities {
		named[n.Name] = n.Value
	}
	var out []bgp.CommunityRule
	for _, pa := range c.PrefixAdvertisements {
		cidr, err := netip.ParsePrefix(pa.CIDR)
		if err != nil {
			continue
		}
		rule := bgp.CommunityRule{CIDR: cidr.Masked()}
		for _, value := range pa.Communities {
			parts, err := api.ParseCommunity(value)
			if err != nil {
				parts, _ = api.ParseCommunity(named[value])
			}
			switch len(parts) {
			case 2:
				rule.Standard = append(rule.Standard, parts[0]<<16|parts[1])
			case 3:
				rule.Large = append(rule.Large, [3]uint32(parts))
			}
		}
		out = append(out, rule)
	}
	return out
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
	if s.PeerIP != "" {
		addr, port, err := api.ParsePeerIP(s.PeerIP)
		if err != nil {
			return nil
		}
		return v.sessionsOf(bp, kind, self, routerID, map[netip.Addr]uint32{addr: uint32(s.ASNumber)}, port)
	}
	selected := func(_ string, n *api.Node) bool { return selects(s.PeerSelector, n.Labels) }
	return v.sessionsOf(bp, kind, self, routerID, v.nodeSessions(selected, true, true), 0)
}

// reversePeersOf are the sessions BGPPeer bp gives other nodes with this one, which confd configures on
// this side too (unless reversePeering is Manual): when peerSelector selects self, or peerIP and asNumber
// are self's, the nodes that node or nodeSelector select (neither: every node), in the same IP family
// as peerIP.
func (v *view) reversePeersOf(bp *api.BGPPeer, self *api.Node, routerID netip.Addr) []bgp.Peer {
	s := bp.Spec
	if s.ReversePeering == "Manual" || s.LocalWorkloadSelector != "" {
		return nil
	}
	v4, v6 := true, true
	if s.PeerSelector != "" {
		if !selects(s.PeerSelector, self.Labels) {
			return nil
		}
	} else {
		addr, _, err := api.ParsePeerIP(s.PeerIP)
		if err != nil || (addr != routerID && addr != nodeAddr6(self)) || uint32(s.ASNumber) != v.nodeASN(self) {
			return nil
		}
		v4, v6 = addr.Is4(), addr.Is6()
	}
	peers := func(name string, n *api.Node) bool {
		return s.NodeSelector == "" && (s.Node == "" || s.Node == name) || s.NodeSelector != "" && selects(s.NodeSelector, n.Labels)
	}
	return v.sessionsOf(bp, peerNode, self, routerID, v.nodeSessions(peers, v4, v6), 0)
}

// nodeSessions are the addresses, with their AS numbers, of the other nodes that match, in the families
// asked for.
func (v *view) nodeSessions(match func(name string, n *api.Node) bool, v4, v6 bool) map[netip.Addr]uint32 {
	out := map[netip.Addr]uint32{}
	for name, n := range v.nodes {
		if name == v.self || !match(name, n) {
			continue
		}
		for _, addr := range sessionAddrs(n, true) {
			if (addr.Is4() && v4) || (addr.Is6() && v6) {
				out[addr] = v.nodeASN(n)
			}
		}
	}
	return out
}

// sessionsOf are the sessions of BGPPeer bp's kind with the given addresses and AS numbers, with bp's
// source address, restart time and TTL security; IPv6 ones only when this node has IPv6; a node peer gets
// this node as its route reflector where reflectsFor says so.
func (v *view) sessionsOf(bp *api.BGPPeer, kind string, self *api.Node, routerID netip.Addr, addrs map[netip.Addr]uint32, port uint16) []bgp.Peer {
	s := bp.Spec
	self6 := nodeAddr6(self)
	var out []bgp.Peer
	for addr, asn := range addrs {
		if addr.Is6() && !self6.IsValid() {
			continue
		}
		peer := bgp.Peer{Addr: addr, Port: port, ASN: asn, Type: kind, Name: bp.Name, RestartTime: seconds(defaultRestartTime)}
		if s.SourceAddress != api.SourceAddressNone {
			peer.Source = routerID
			if addr.Is6() {
				peer.Source = self6
			}
		}
		if s.MaxRestartTime != nil {
			peer.RestartTime = seconds(time.Duration(*s.MaxRestartTime))
		}
		if s.TTLSecurity != nil {
			peer.TTLSecurity = *s.TTLSecurity
		}
		peer.NextHop = nextHopMode(s)
		if n := v.nodeByAddr(addr); n != nil {
			peer.RRClusterID = reflectsFor(self, n)
		}
		out = append(out, peer)
	}
	return out
}

// nextHopMode is a BGPPeer's nextHopMode, or when unset its deprecated keepOriginalNextHop, as confd reads
// them; Auto is the speaker's usual.
func nextHopMode(s api.BGPPeerSpec) bgp.NextHopMode {
	switch {
	case s.NextHopMode == "Self":
		return bgp.NextHopSelf
	case s.NextHopMode == "Keep", s.NextHopMode == "" && s.KeepOriginalNextHop:
		return bgp.NextHopKeep
	}
	return ""
}

// nodeByAddr is the node with BGP address a, or nil.
func (v *view) nodeByAddr(a netip.Addr) *api.Node {
	for _, n := range v.nodes {
		if nodeAddr4(n) == a || nodeAddr6(n) == a {
			return n
		}
	}
	return nil
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

// logLevel is the speaker's log level for a logSeverityScreen (validated already): Trace is Debug, and Fatal
// logs errors as Error does, since the speaker has no fatal messages.
func logLevel(severity string) slog.Level {
	switch strings.ToLower(severity) {
	case "trace", "debug":
		return slog.LevelDebug
	case "warning":
		return slog.LevelWarn
	case "error", "fatal":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

// poolCIDRs are the pools' CIDRs.
func (v *view) poolCIDRs() []netip.Prefix {
	var out []netip.Prefix
	for _, pool := range v.pools {
		if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil {
			out = append(out, cidr)
		}
	}
	return out
}

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
