package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
)

// routeState is what the agent routed to one interface: its endpoint's addresses and MAC.
type routeState struct {
	mac   string
	addrs []netip.Addr
}

// routeInterfaces brings the routes of some interfaces in line with their endpoints, by difference
// from what the agent routed before.
func (a *Agent) routeInterfaces(ifaces map[string]struct{}) error {
	var errs []error
	for iface := range ifaces {
		errs = append(errs, a.routeInterface(iface))
	}
	return errors.Join(errs...)
}

// routeInterface routes an endpoint's addresses to its interface once that exists (Join creates it after
// the endpoint, then calls EndpointUp), and removes routes the endpoint no longer has.
func (a *Agent) routeInterface(iface string) error {
	var want routeState
	if ep, ok := a.idx.Interface(iface); ok {
		want = routeState{mac: ep.MAC, addrs: ep.Addrs}
	}
	have := a.routed[iface]
	if have.mac == want.mac && slices.Equal(have.addrs, want.addrs) {
		return nil
	}
	delete(a.routed, iface) // until all is done: a failure is retried
	var errs []error
	var released []netip.Addr
	for _, addr := range have.addrs {
		if !slices.Contains(want.addrs, addr) {
			errs = append(errs, link.DeleteWorkloadRoute(iface, addr.AsSlice()))
			released = append(released, addr)
		}
	}
	errs = append(errs, a.release(released...))
	if len(want.addrs) == 0 {
		return errors.Join(errs...)
	}
	if exists, err := link.Exists(iface); err != nil || !exists {
		return errors.Join(append(errs, err)...)
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

// reconcileRoutes converges every workload route with the local endpoints, whatever the agent believed
// it had done: it removes our routes that no endpoint wants, adds missing ones, and deletes cali*
// interfaces that have had no endpoint for StaleInterfaceGrace.
func (a *Agent) reconcileRoutes() error {
	wanted := map[string]routeState{}
	for _, ep := range a.idx.LocalEndpoints() {
		wanted[ep.Iface] = routeState{mac: ep.MAC, addrs: ep.Addrs}
	}
	present, err := link.ListWorkloadRoutes(workloadPrefix)
	if err != nil {
		return err
	}
	var errs []error
	have := map[string][]netip.Addr{}
	for _, r := range present {
		addr, _ := netip.AddrFromSlice(r.IP)
		if addr = addr.Unmap(); slices.Contains(wanted[r.Iface].addrs, addr) {
			have[r.Iface] = append(have[r.Iface], addr)
		} else {
			errs = append(errs, link.DeleteWorkloadRoute(r.Iface, r.IP), a.release(addr))
		}
	}
	links, err := link.ListLinks(workloadPrefix)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	clear(a.routed)
	now := time.Now()
	orphans := map[string]time.Time{}
	for _, iface := range links {
		w, ok := wanted[iface]
		if !ok {
			errs = append(errs, a.collectOrphan(iface, now, orphans))
			continue
		}
		mac, _ := net.ParseMAC(w.mac)
		failed := false
		for _, addr := range w.addrs {
			if !slices.Contains(have[iface], addr) {
				if err := a.addRoute(iface, addr, mac); err != nil {
					errs, failed = append(errs, err), true
				}
			}
		}
		if !failed {
			a.routed[iface] = w
		}
	}
	a.orphans = orphans
	return errors.Join(errs...)
}

// collectOrphan deletes a workload interface that has had no endpoint for the grace period and
// otherwise records (in next) since when it has been without one.
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
	return link.DeleteLink(iface)
}
