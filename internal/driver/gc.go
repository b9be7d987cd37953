package driver

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// liveAddresses is a short-lived snapshot of the addresses that have an owner, shared by the many
// AllocationLive questions of one collector pass.
type liveAddresses struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[netip.Addr]bool
}

// AllocationLive tells the IPAM leak collector whether an address still has an owner: a workload endpoint
// (on any host) or a Docker endpoint on this host. When Docker cannot be asked, it answers "live".
func (d *Driver) AllocationLive(ctx context.Context, a ipam.AllocationInfo) (bool, error) {
	d.live.mu.Lock()
	defer d.live.mu.Unlock()
	if time.Since(d.live.at) > 5*time.Second {
		addrs, err := d.ownedAddresses(ctx)
		if err != nil {
			return true, err
		}
		d.live.addrs, d.live.at = addrs, time.Now()
	}
	return d.live.addrs[a.IP], nil
}

func (d *Driver) ownedAddresses(ctx context.Context) (map[netip.Addr]bool, error) {
	owned := map[netip.Addr]bool{}
	weps, err := datastore.List[*api.WorkloadEndpoint](ctx, d.store, "")
	if err != nil {
		return nil, err
	}
	for _, w := range weps {
		for _, n := range w.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				owned[p.Addr()] = true
			}
		}
	}
	if d.docker == nil {
		return owned, nil
	}
	nets, err := d.docker.Networks(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking Docker for its endpoints: %w", err)
	}
	for _, n := range nets {
		full, err := d.docker.Network(ctx, n.ID)
		if err != nil {
			continue
		}
		for _, ep := range full.Containers {
			for _, cidr := range []string{ep.IPv4Address, ep.IPv6Address} {
				if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
					owned[p.Addr()] = true
				}
			}
		}
	}
	return owned, nil
}
