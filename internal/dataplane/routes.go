package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
)

// routeInterfaces brings the routes of some interfaces in line with their claims, by difference from
// what the agent routed before.
func (a *Agent) routeInterfaces(ifaces map[string]struct{}) error {
	var errs []error
	for iface := range ifaces {
		errs = append(errs, a.routeInterface(iface))
	}
	return errors.Join(errs...)
}

// routeInterface routes an endpoint's addresses to its interface once that exists (Join creates it after
// the endpoint, then calls EndpointUp) and is one of ours, and removes routes the endpoint no longer has.
func (a *Agent) routeInterface(iface string) error {
	c := a.view.claims.lookup(iface)
	var want routeState
	if c.owner {
		want = c.routes
	}
	have := a.routed[iface]
	if have.equal(want) {
		return nil
	}
	delete(a.routed, iface) // until all is done: a failure is retried
	var released []netip.Addr
	for _, addr := range have.addrs {
		if !slices.Contains(want.addrs, addr) {
			released = append(released, addr)
		}
	}
	l, exists, err := link.Lookup(iface)
	if err != nil {
		return errors.Join(err, a.release(released...))
	}
	var errs []error
	if exists && l.IsVeth() { // else what we routed went with our veth
		for _, addr := range released {
			errs = append(errs, link.DeleteWorkloadRoute(iface, addr.AsSlice()))
		}
	}
	errs = append(errs, a.release(released...))
	if !exists || classify(l, c) != owned {
		return errors.Join(errs...)
	}
	mac, _ := net.ParseMAC(want.mac)
	for _, addr := range want.addrs {
		errs = append(errs, a.addRoute(iface, addr, mac))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.routed[iface] = want
	return nil
}

// addRoute routes addr to iface, once the flows of its last release are gone.
func (a *Agent) addRoute(iface string, addr netip.Addr, mac net.HardwareAddr) error {
	if err := a.deleteFlows(addr); err != nil {
		return err
	}
	return link.AddWorkloadRoute(iface, addr.AsSlice(), mac)
}

// reconcileRoutes converges the routes of our interfaces with their endpoints, whatever the agent
// believed it had done: it removes our routes that no endpoint wants (releasing their addresses' flows),
// adds missing ones, and deletes
// stale interfaces (see classify) that have been so for StaleInterfaceGrace. Interfaces that are not
// ours, and their routes, are left alone.
func (a *Agent) reconcileRoutes() error {
	a.view.claims.takeChanged() // everything is converged here
	links, err := link.ListLinks(workloadPrefix)
	if err != nil {
		return err
	}
	classes := map[string]ifaceClass{}
	for _, l := range links {
		classes[l.Name] = classify(l, a.view.claims.lookup(l.Name))
	}
	present, err := link.ListWorkloadRoutes(workloadPrefix)
	if err != nil {
		return err
	}
	var errs []error
	have := map[string][]netip.Addr{}
	for _, r := range present {
		addr, _ := netip.AddrFromSlice(r.IP)
		addr = addr.Unmap()
		switch classes[r.Iface] {
		case owned:
			if slices.Contains(a.view.claims.lookup(r.Iface).routes.addrs, addr) {
				have[r.Iface] = append(have[r.Iface], addr)
				continue
			}
			fallthrough
		case stale:
			errs = append(errs, link.DeleteWorkloadRoute(r.Iface, r.IP), a.release(addr))
		}
	}
	clear(a.routed)
	now := time.Now()
	orphans := map[string]time.Time{}
	for _, l := range links {
		switch classes[l.Name] {
		case owned:
			errs = append(errs, a.routeMissing(l.Name, have[l.Name]))
		case stale:
			errs = append(errs, a.collectOrphan(l.Name, now, orphans))
		}
	}
	a.orphans = orphans
	return errors.Join(errs...)
}

// routeMissing adds the routes of an owned interface that are not among have.
func (a *Agent) routeMissing(iface string, have []netip.Addr) error {
	want := a.view.claims.lookup(iface).routes
	mac, _ := net.ParseMAC(want.mac)
	var errs []error
	for _, addr := range want.addrs {
		if !slices.Contains(have, addr) {
			errs = append(errs, a.addRoute(iface, addr, mac))
		}
	}
	err := errors.Join(errs...)
	if err == nil {
		a.routed[iface] = want
	}
	return err
}

// collectOrphan deletes a stale interface that has been so for the grace period and otherwise records
// (in next) since when it has been.
func (a *Agent) collectOrphan(iface string, now time.Time, next map[string]time.Time) error {
	since, seen := a.orphans[iface]
	if !seen {
		since = now
	}
	if now.Sub(since) < a.cfg.StaleInterfaceGrace {
		next[iface] = since
		return nil
	}
	a.log.Info("deleting a workload interface no endpoint has claimed", "interface", iface, "since", since)
	return link.DeleteVeth(iface)
}
