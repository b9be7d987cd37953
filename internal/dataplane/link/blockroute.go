package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BlockRoute is a route to other hosts' workloads (an IPAM block or a borrowed address), or a blackhole
// for this host's own blocks: Calico's cross-host routes, marked with RouteProtocol.
type BlockRoute struct {
	Dst       netip.Prefix
	Blackhole bool
	Via       netip.Addr // next hop, on-link on Dev (unused for a blackhole)
	Dev       string
}

// Equal reports whether two routes would program the same kernel route.
func (r BlockRoute) Equal(o BlockRoute) bool {
	if r.Dst != o.Dst || r.Blackhole != o.Blackhole {
		return false
	}
	return r.Blackhole || (r.Via == o.Via && r.Dev == o.Dev)
}

func (r BlockRoute) String() string {
	if r.Blackhole {
		return "blackhole " + r.Dst.String()
	}
	return fmt.Sprintf("%s via %s dev %s onlink", r.Dst, r.Via, r.Dev)
}

// ListBlockRoutes returns the main table's RouteProtocol routes that are not on an interface named
// workloadPrefix*: those belong to AddWorkloadRoute, everything else with our protocol to ReplaceBlockRoute.
func ListBlockRoutes(workloadPrefix string) ([]BlockRoute, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var out []BlockRoute
	for _, r := range routes {
		dev := names[r.LinkIndex]
		if r.Dst == nil || (r.Type != unix.RTN_BLACKHOLE && strings.HasPrefix(dev, workloadPrefix)) {
			continue
		}
		dst, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		br := BlockRoute{Dst: dst, Blackhole: r.Type == unix.RTN_BLACKHOLE}
		if !br.Blackhole {
			br.Dev = dev
			br.Via, _ = netip.AddrFromSlice(r.Gw)
			br.Via = br.Via.Unmap()
		}
		out = append(out, br)
	}
	return out, nil
}

// ReplaceBlockRoute installs r, replacing any route to the same destination.
func ReplaceBlockRoute(r BlockRoute) error {
	kr, err := kernelRoute(r)
	if err != nil {
		return err
	}
	if err := netlink.RouteReplace(kr); err != nil {
		return fmt.Errorf("route %s: %w", r, err)
	}
	return nil
}

// DeleteBlockRoute removes r; a route already gone counts as success.
func DeleteBlockRoute(r BlockRoute) error {
	kr, err := kernelRoute(r)
	if errors.Is(err, errNoDevice) {
		return nil // the interface took its routes with it
	}
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(kr); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("deleting route %s: %w", r, err)
	}
	return nil
}

var errNoDevice = errors.New("no such interface")

func kernelRoute(r BlockRoute) (*netlink.Route, error) {
	kr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Protocol: RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
	if r.Blackhole {
		kr.Type = unix.RTN_BLACKHOLE
		return kr, nil
	}
	l, err := netlink.LinkByName(r.Dev)
	if isLinkNotFound(err) {
		return nil, fmt.Errorf("route %s: %w", r, errNoDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("route %s: looking up %s: %w", r, r.Dev, err)
	}
	kr.LinkIndex, kr.Gw, kr.Flags = l.Attrs().Index, r.Via.AsSlice(), int(netlink.FLAG_ONLINK)
	return kr, nil
}

// prefixOf converts a kernel destination to a netip.Prefix (IPv4 unmapped).
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}
