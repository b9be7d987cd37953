package routing

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/bgp"
)

// Calico's BGP defaults (BGPConfiguration default).
const (
	defaultASN        = 64512
	defaultListenPort = 179
	meshRestartTime   = 120 // seconds peers keep our routes across a restart (nodeMeshMaxRestartTime)
)

// bgpPlan is what the speaker does, as calico/node's BIRD would be configured: a session with every other
// node that has an IPv4 address (the node-to-node mesh), this node's IPv4 blocks and the addresses it
// borrowed advertised, and what peers advertise for unencapsulated pools programmed.
func (v *view) bgpPlan() bgp.Plan {
	self, ok := v.nodes[v.self]
	if !ok || self.Spec.BGP == nil {
		return bgp.Plan{}
	}
	routerID := nodePrefix(self.Spec.BGP.IPv4Address).Addr()
	if !routerID.Is4() {
		return bgp.Plan{}
	}
	p := bgp.Plan{ASN: nodeASN(self), RouterID: routerID, ListenPort: defaultListenPort}
	for name, n := range v.nodes {
		if name == v.self || n.Spec.BGP == nil {
			continue
		}
		if addr := nodePrefix(n.Spec.BGP.IPv4Address).Addr(); addr.Is4() {
			p.Peers = append(p.Peers, bgp.Peer{Addr: addr, Port: uint16(p.ListenPort), ASN: nodeASN(n), Source: routerID,
				Type: "node-to-node mesh", Name: name, RestartTime: meshRestartTime})
		}
	}
	slices.SortFunc(p.Peers, func(a, b bgp.Peer) int { return a.Addr.Compare(b.Addr) })
	for _, b := range v.blocks {
		if !b.cidr.Addr().Is4() || !v.exported(b.cidr) {
			continue
		}
		if b.owner == v.self {
			p.Advertise = append(p.Advertise, b.cidr)
		}
		for _, lent := range b.borrowed {
			if lent.node == v.self && b.owner != v.self {
				p.Advertise = append(p.Advertise, netip.PrefixFrom(lent.addr, 32))
			}
		}
	}
	slices.SortFunc(p.Advertise, netip.Prefix.Compare)
	for _, pool := range v.pools {
		if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && cidr.Addr().Is4() && v.encapFor(cidr).kind == kindDirect {
			p.Pools = append(p.Pools, cidr)
		}
	}
	return p
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

// nodeASN is a node's AS number: its own, else Calico's default. Dotted notation ("1.10") is upstream's
// for 4-byte numbers: high and low 16 bits.
func nodeASN(n *api.Node) uint32 {
	if n.Spec.BGP != nil && n.Spec.BGP.ASNumber != "" {
		if asn, ok := parseASN(string(n.Spec.BGP.ASNumber)); ok {
			return asn
		}
	}
	return defaultASN
}

func parseASN(s string) (uint32, bool) {
	if hi, lo, dotted := strings.Cut(s, "."); dotted {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		return uint32(h<<16 | l), err1 == nil && err2 == nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}
