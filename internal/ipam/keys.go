package ipam

import (
	"net/netip"
	"strconv"
	"strings"
)

// Calico's IPAM keys (libcalico-go backend/model). A CIDR appears in a key with its '/' replaced by '-'.
const (
	ipamPrefix   = "/calico/ipam/v2/"
	blockPrefix  = ipamPrefix + "assignment/"
	hostPrefix   = ipamPrefix + "host/"
	handlePrefix = ipamPrefix + "handle/"
	configKey    = ipamPrefix + "config"
)

// family is 4 or 6.
func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

func familyName(f int) string { return "IPv" + strconv.Itoa(f) }

func cidrSegment(p netip.Prefix) string { return strings.Replace(p.Masked().String(), "/", "-", 1) }

func parseCIDRSegment(s string) (netip.Prefix, bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s[:i] + "/" + s[i+1:])
	return p.Masked(), err == nil
}

// blockListPrefix lists the blocks of one family (0: both).
func blockListPrefix(fam int) string {
	if fam == 0 {
		return blockPrefix
	}
	return blockPrefix + "ipv" + strconv.Itoa(fam) + "/block/"
}

// BlockKey is where Calico stores the block with this CIDR.
func BlockKey(cidr netip.Prefix) string { return blockListPrefix(family(cidr)) + cidrSegment(cidr) }

// parseBlockKey returns the CIDR of /calico/ipam/v2/assignment/ipvN/block/<cidr>.
func parseBlockKey(key string) (netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, blockPrefix)
	_, seg, found := strings.Cut(rest, "/block/")
	if !ok || !found {
		return netip.Prefix{}, false
	}
	return parseCIDRSegment(seg)
}

// affinityListPrefix lists one node's affinities of one family.
func affinityListPrefix(node string, fam int) string {
	return hostPrefix + node + "/ipv" + strconv.Itoa(fam) + "/block/"
}

func affinityKey(node string, cidr netip.Prefix) string {
	return affinityListPrefix(node, family(cidr)) + cidrSegment(cidr)
}

// parseAffinityKey returns the node and block of /calico/ipam/v2/host/<node>/ipvN/block/<cidr>.
func parseAffinityKey(key string) (string, netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, hostPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[2] != "block" {
		return "", netip.Prefix{}, false
	}
	cidr, ok := parseCIDRSegment(parts[3])
	return parts[0], cidr, ok
}

func handleKey(id string) string { return handlePrefix + id }
