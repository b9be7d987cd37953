package link

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes this package owns (Calico's "proto 80"), so reconciliation can
// tell them from routes others installed.
const RouteProtocol netlink.RouteProtocol = 80

// Route is a workload route found in the kernel: IP (/32 or /128) is routed to Iface.
type Route struct {
	Iface string
	IP    net.IP
}

// AddWorkloadRoute routes ip to the workload behind iface ("ip/32 dev iface scope link proto 80",
// /128 for IPv6) and, when mac is given, pins a permanent neighbour entry so the host never
// has to resolve the workload. Both are replaced if present, so it is idempotent.
func AddWorkloadRoute(iface string, ip net.IP, mac net.HardwareAddr) error {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("route to %s: looking up %s: %w", ip, iface, err)
	}
	route, family, err := workloadRoute(l, ip)
	if err != nil {
		return err
	}
	if mac != nil {
		neigh := &netlink.Neigh{LinkIndex: route.LinkIndex, Family: family,
			State: netlink.NUD_PERMANENT, IP: route.Dst.IP, HardwareAddr: mac}
		if err := netlink.NeighSet(neigh); err != nil {
			return fmt.Errorf("neighbour %s lladdr %s dev %s: %w", ip, mac, iface, err)
		}
	}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("route %s dev %s: %w", route.Dst, iface, err)
	}
	return nil
}

// DeleteWorkloadRoute removes what AddWorkloadRoute installed. Anything already gone (including
// the interface, which takes its routes and neighbours with it) counts as success.
func DeleteWorkloadRoute(iface string, ip net.IP) error {
	l, err := netlink.LinkByName(iface)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("route to %s: looking up %s: %w", ip, iface, err)
	}
	route, family, err := workloadRoute(l, ip)
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(route); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("deleting route %s dev %s: %w", route.Dst, iface, err)
	}
	neigh := &netlink.Neigh{LinkIndex: route.LinkIndex, Family: family, IP: route.Dst.IP}
	if err := netlink.NeighDel(neigh); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting neighbour %s dev %s: %w", ip, iface, err)
	}
	return nil
}

// ListWorkloadRoutes returns the host routes with RouteProtocol whose interface name starts with
// prefix: what AddWorkloadRoute installed, for reconciliation against the desired state.
func ListWorkloadRoutes(prefix string) ([]Route, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string)
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, prefix) {
			names[l.Attrs().Index] = name
		}
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var found []Route
	for _, r := range routes {
		name, ok := names[r.LinkIndex]
		if !ok || r.Dst == nil {
			continue
		}
		if ones, bits := r.Dst.Mask.Size(); ones == bits {
			found = append(found, Route{Iface: name, IP: r.Dst.IP})
		}
	}
	return found, nil
}

// workloadRoute builds the route for ip on l; add and delete use the same one so they match.
func workloadRoute(l netlink.Link, ip net.IP) (*netlink.Route, int, error) {
	family, bits := netlink.FAMILY_V6, 128
	if ip4 := ip.To4(); ip4 != nil {
		ip, family, bits = ip4, netlink.FAMILY_V4, 32
	} else if ip.To16() == nil {
		return nil, 0, fmt.Errorf("invalid workload IP %q", ip)
	}
	return &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)},
		Scope:     netlink.SCOPE_LINK,
		Protocol:  RouteProtocol,
	}, family, nil
}
