package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
)

// DetectAddress finds this host's address (with prefix length) the way calico/node's
// IP_AUTODETECTION_METHOD does: "first-found" (the interface holding the default route, else the first
// global address), "interface=NAME" or "can-reach=ADDR" (the source address the kernel would use).
func DetectAddress(method string, v6 bool) (netip.Prefix, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	kind, arg, _ := strings.Cut(method, "=")
	switch kind {
	case "", "first-found":
		if routes, err := netlink.RouteListFiltered(family, &netlink.Route{Dst: nil}, netlink.RT_FILTER_DST); err == nil {
			for _, r := range routes {
				if r.LinkIndex > 0 {
					if p, err := globalAddress(r.LinkIndex, family, netip.Addr{}); err == nil {
						return p, nil
					}
				}
			}
		}
		return globalAddress(0, family, netip.Addr{})
	case "interface":
		l, err := netlink.LinkByName(arg)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("IP_AUTODETECTION_METHOD=%s: %w", method, err)
		}
		return globalAddress(l.Attrs().Index, family, netip.Addr{})
	case "can-reach":
		dst := net.ParseIP(arg)
		if dst == nil {
			return netip.Prefix{}, fmt.Errorf("IP_AUTODETECTION_METHOD=%s: %q is not an IP address", method, arg)
		}
		routes, err := netlink.RouteGet(dst)
		if err != nil || len(routes) == 0 {
			return netip.Prefix{}, fmt.Errorf("IP_AUTODETECTION_METHOD=%s: no route: %v", method, err)
		}
		src, _ := netip.AddrFromSlice(routes[0].Src)
		return globalAddress(routes[0].LinkIndex, family, src.Unmap())
	}
	return netip.Prefix{}, fmt.Errorf("IP_AUTODETECTION_METHOD=%q: want first-found, interface=NAME or can-reach=ADDR", method)
}

// globalAddress returns a global unicast address of the link (any link when index is 0), preferring want.
func globalAddress(index, family int, want netip.Addr) (netip.Prefix, error) {
	var l netlink.Link
	if index > 0 {
		var err error
		if l, err = netlink.LinkByIndex(index); err != nil {
			return netip.Prefix{}, err
		}
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, family) })
	if err != nil {
		return netip.Prefix{}, err
	}
	var found []netip.Prefix
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		if !ip.IsGlobalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip, ones)
		if ip == want {
			return p, nil
		}
		found = append(found, p)
	}
	if len(found) == 0 {
		return netip.Prefix{}, errors.New("no global address found")
	}
	return found[0], nil
}
