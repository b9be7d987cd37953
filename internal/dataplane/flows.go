package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
)

// release deletes the conntrack entries of addresses a local endpoint gave up, as Felix does, so a
// workload given one of them next does not inherit the old one's flows (which the firewall would
// accept as established, whatever the new workload's policy). Callers remove the addresses' routes
// first: without a route (a released address falls in this host's blackholed blocks) no new entry
// can be made. An address whose entries could not be deleted stays pending: every resync tries
// again, and it is not routed again before that succeeds.
func (a *Agent) release(addrs ...netip.Addr) error {
	for _, addr := range addrs {
		a.released[addr] = struct{}{}
	}
	return a.deleteReleasedFlows()
}

// deleteReleasedFlows deletes the entries of every pending released address.
func (a *Agent) deleteReleasedFlows() error {
	var errs []error
	for addr := range a.released {
		errs = append(errs, a.deleteFlows(addr))
	}
	return errors.Join(errs...)
}

// deleteFlows deletes the entries of addr if it is pending release; it must succeed before addr is
// routed again.
func (a *Agent) deleteFlows(addr netip.Addr) error {
	if _, pending := a.released[addr]; !pending {
		return nil
	}
	n, err := link.DeleteFlows(addr.AsSlice())
	if err != nil {
		return fmt.Errorf("%s is released but keeps its flows (not routed again until they are deleted): %w", addr, err)
	}
	delete(a.released, addr)
	if n > 0 {
		a.log.Info("deleted the flows of a released address", "address", addr.String(), "entries", n)
	}
	return nil
}
