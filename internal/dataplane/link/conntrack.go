package link

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// flowEnds are the four places an address can take in a conntrack entry. Each gets a filter of its
// own: the fields of one filter must all match, the filters of one call are alternatives.
var flowEnds = []netlink.ConntrackFilterType{
	netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP, netlink.ConntrackReplySrcIP, netlink.ConntrackReplyDstIP,
}

// DeleteFlows deletes the conntrack entries in which ip is the source or destination of either
// direction, and nothing else, returning how many went. A released workload address calls for it, as
// Felix does: otherwise a workload given the address next would inherit the old one's flows, which
// the firewall accepts as established without asking its policy.
func DeleteFlows(ip net.IP) (uint, error) {
	family := netlink.InetFamily(netlink.FAMILY_V6)
	if ip4 := ip.To4(); ip4 != nil {
		ip, family = ip4, netlink.FAMILY_V4
	} else if ip.To16() == nil {
		return 0, fmt.Errorf("invalid workload IP %q", ip)
	}
	filters := make([]netlink.CustomConntrackFilter, len(flowEnds))
	for i, end := range flowEnds {
		f := &netlink.ConntrackFilter{}
		if err := f.AddIP(end, ip); err != nil {
			return 0, err
		}
		filters[i] = f
	}
	// An interrupted dump still had its entries deleted; the next attempt finds the rest.
	var deleted uint
	_, err := retryDump(func() (struct{}, error) {
		n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...)
		deleted += n
		return struct{}{}, err
	})
	if err != nil {
		return deleted, fmt.Errorf("deleting conntrack entries of %s: %w", ip, err)
	}
	return deleted, nil
}
