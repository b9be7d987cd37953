package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LearnedProtocol marks routes learnt over BGP: BIRD's protocol number, which calico/node's routes carry,
// so tools that know Calico recognise them.
const LearnedProtocol = unix.RTPROT_BIRD

// LearnedRoute is a route to another host's workloads learnt over BGP: Dst through the BGP next hop Via.
type LearnedRoute struct {
	Dst netip.Prefix
	Via netip.Addr
}

func (r LearnedRoute) String() string { return fmt.Sprintf("%s via %s", r.Dst, r.Via) }

// SyncLearnedRoutes makes the main table's LearnedProtocol routes inside pools exactly want (routes of
// that protocol elsewhere are some other BGP daemon's, and stay). A next hop on a connected network is the
// gateway; one further away is resolved through the kernel's route to it, as BIRD's "gateway recursive",
// which Calico uses when hosts peer across subnets. A route whose next hop cannot be resolved is left out
// and reported, as is one whose next hop is reached through an interface matching an ignored pattern
// (BGPConfiguration ignoredInterfaces: BIRD knows no network on those); the others are still programmed.
func SyncLearnedRoutes(want []LearnedRoute, pools []netip.Prefix, ignored []string) error {
	var errs []error
	wanted := map[netip.Prefix]*netlink.Route{}
	for _, r := range want {
		kr, err := kernelLearnedRoute(r, ignored)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		wanted[r.Dst] = kr
	}
	present, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: LearnedProtocol}, netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing learnt routes: %w", err))...)
	}
	for _, have := range present {
		dst, ok := prefixOf(have.Dst)
		if !ok || !slices.ContainsFunc(pools, func(p netip.Prefix) bool { return p.Overlaps(dst) && p.Bits() <= dst.Bits() }) {
			continue
		}
		if w := wanted[dst]; w != nil && w.LinkIndex == have.LinkIndex && w.Gw.Equal(have.Gw) {
			delete(wanted, dst)
			continue
		}
		if w := wanted[dst]; w == nil {
			if err := netlink.RouteDel(&have); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("deleting route %s: %w", dst, err))
			}
		}
	}
	for dst, kr := range wanted {
		if err := netlink.RouteReplace(kr); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", dst, kr.Gw, err))
		}
	}
	return errors.Join(errs...)
}

// AddLearnedRoutes programs want as SyncLearnedRoutes does but deletes no route (it is given no pool): a
// speaker just started keeps the routes it learnt before while its peers send them again.
func AddLearnedRoutes(want []LearnedRoute, ignored []string) error {
	return SyncLearnedRoutes(want, nil, ignored)
}

func kernelLearnedRoute(r LearnedRoute, ignored []string) (*netlink.Route, error) {
	via, err := netlink.RouteGet(r.Via.AsSlice())
	if err != nil || len(via) == 0 {
		return nil, fmt.Errorf("route %s: no route to the next hop: %v", r, err)
	}
	dev, err := netlink.LinkByIndex(via[0].LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("route %s: the next hop's interface: %w", r, err)
	}
	for _, pattern := range ignored {
		if ok, _ := path.Match(pattern, dev.Attrs().Name); ok {
			return nil, fmt.Errorf("route %s: the next hop is on %s, an ignored interface (%q)", r, dev.Attrs().Name, pattern)
		}
	}
	kr := &netlink.Route{
		Dst:       &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Protocol:  LearnedProtocol,
		Table:     unix.RT_TABLE_MAIN,
		LinkIndex: via[0].LinkIndex,
		Gw:        r.Via.AsSlice(),
	}
	if via[0].Gw != nil {
		kr.Gw = via[0].Gw
	}
	return kr, nil
}
