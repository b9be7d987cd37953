package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// liveAddresses is a short-lived snapshot of the addresses that have an owner, shared by the many
// AllocationLive questions of one collector pass. It must not outlive the pass: an endpoint created after
// it was taken would look dead to the next pass. A failure to take it is kept as long, so that a pass
// while Docker is down lists the cluster's endpoints once, not once per allocation.
type liveAddresses struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[netip.Addr]bool
	err   error
}

// AllocationLive tells the IPAM leak collector whether an address still has an owner: a workload endpoint
// or a Docker endpoint of this host. The collector asks only about the allocations this plugin made on this
// host, whose endpoints are this host's, so the cluster's other endpoints (all of them decoded would cost
// a large cluster's memory on every pass) are not read. When Docker cannot be asked, it answers "live".
func (d *Driver) AllocationLive(ctx context.Context, a ipam.AllocationInfo) (bool, error) {
	d.live.mu.Lock()
	defer d.live.mu.Unlock()
	maxAge := 5 * time.Second
	if d.cfg.GCInterval > 0 {
		maxAge = min(maxAge, d.cfg.GCInterval/2)
	}
	if time.Since(d.live.at) > maxAge {
		d.live.addrs, d.live.err = d.ownedAddresses(ctx)
		d.live.at = time.Now()
	}
	if d.live.err != nil {
		return true, d.live.err
	}
	return d.live.addrs[a.IP], nil
}

func (d *Driver) ownedAddresses(ctx context.Context) (map[netip.Addr]bool, error) {
	owned := map[netip.Addr]bool{}
	weps, err := datastore.LocalEndpoints(ctx, d.store, d.cfg.Node)
	if err != nil {
		return nil, err
	}
	for _, w := range weps {
		for _, n := range w.Spec.IPNetworks {
			if p, err := api.ParseIPNetwork(n); err == nil {
				owned[p.Addr()] = true
			}
		}
	}
	if d.docker == nil {
		return owned, nil
	}
	endpoints, err := d.dockerEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	for _, addrs := range endpoints {
		for _, a := range addrs {
			owned[a] = true
		}
	}
	return owned, nil
}

// dockerEndpoints asks Docker for the endpoints of every network on this host: endpoint ID → addresses.
func (d *Driver) dockerEndpoints(ctx context.Context) (map[string][]netip.Addr, error) {
	nets, err := d.docker.Networks(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking Docker for its endpoints: %w", err)
	}
	endpoints := map[string][]netip.Addr{}
	for _, n := range nets {
		full, err := d.docker.Network(ctx, n.ID)
		if errors.Is(err, docker.ErrNotFound) {
			continue
		}
		if err != nil {
			// Half an answer would make live endpoints look stale.
			return nil, fmt.Errorf("asking Docker for the endpoints of network %s: %w", short(n.ID), err)
		}
		for _, ep := range full.Containers {
			addrs := endpoints[ep.EndpointID]
			for _, p := range []netip.Prefix{ep.IPv4Address, ep.IPv6Address} {
				if p.IsValid() {
					addrs = append(addrs, p.Addr())
				}
			}
			endpoints[ep.EndpointID] = addrs
		}
	}
	return endpoints, nil
}

// staleEndpoints finds this host's workload endpoints that Docker no longer has: their removal never reached
// the datastore (etcd was down during DeleteEndpoint, or the plugin was down and Docker gave up on it). Docker
// does not retry, so without this their endpoints, and thereby their addresses, would stay forever.
type staleEndpoints struct {
	missingSince map[string]time.Time // endpoint ID → when Docker was first seen not to have it
	ignored      map[string]string    // endpoints left alone because invalid: name → the resourceVersion logged
}

func newStaleEndpoints() *staleEndpoints {
	return &staleEndpoints{missingSince: map[string]time.Time{}, ignored: map[string]string{}}
}

// runEndpointCollector deletes stale endpoints every interval until ctx ends. An endpoint goes once Docker
// has not listed it for the grace period (and the endpoint is older than that: Docker lists an endpoint
// only after CreateEndpoint), and never while Docker does not answer.
func (d *Driver) runEndpointCollector(ctx context.Context) {
	if d.docker == nil || d.cfg.GCInterval <= 0 {
		return
	}
	s := newStaleEndpoints()
	t := time.NewTicker(d.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.collectEndpoints(ctx, s, time.Now()); err != nil && ctx.Err() == nil {
			d.log.Debug("stale endpoint collection skipped", "error", err.Error())
		}
	}
}

func (d *Driver) collectEndpoints(ctx context.Context, s *staleEndpoints, now time.Time) error {
	weps, err := datastore.LocalEndpoints(ctx, d.store, d.cfg.Node)
	if err != nil {
		return err
	}
	known, err := d.dockerEndpoints(ctx)
	if err != nil {
		return err
	}
	missing := map[string]time.Time{}
	ignored := map[string]string{}
	var errs []error
	for _, w := range weps {
		id := w.Spec.Endpoint
		if !api.IsDockerID(id) {
			continue
		}
		if err := api.Validate(w); err != nil {
			if s.ignored[w.Name] != w.ResourceVersion {
				d.log.Warn("not collecting an invalid endpoint", "endpoint", short(id), "error", err.Error())
			}
			ignored[w.Name] = w.ResourceVersion
			continue
		}
		if _, ok := known[id]; ok {
			continue
		}
		if created := w.CreationTimestamp; created == nil || now.Sub(*created) < d.cfg.GCGrace {
			continue
		}
		since, ok := s.missingSince[id]
		if !ok {
			since = now
		}
		if now.Sub(since) < d.cfg.GCGrace {
			missing[id] = since
			continue
		}
		if err := d.deleteStaleEndpoint(ctx, w); err != nil {
			missing[id] = since
			errs = append(errs, err)
			continue
		}
		d.log.Info("deleted an endpoint Docker no longer has", "endpoint", short(id), "ipNetworks", w.Spec.IPNetworks,
			"missingFor", now.Sub(since).String())
	}
	s.missingSince, s.ignored = missing, ignored
	return errors.Join(errs...)
}

// deleteStaleEndpoint removes what DeleteEndpoint would have: the veth Join made for the endpoint ID (never
// the interface the endpoint names, nor anything but a veth) and the endpoint, unless it changed meanwhile.
func (d *Driver) deleteStaleEndpoint(ctx context.Context, w *api.WorkloadEndpoint) error {
	if err := d.deleteVeth(w.Spec.Endpoint); err != nil {
		return err
	}
	if err := d.dataplane.EndpointDown(ctx, w); err != nil {
		d.log.Warn("could not remove endpoint routes", "endpoint", short(w.Spec.Endpoint), "error", err.Error())
	}
	err := d.store.DeleteResource(ctx, api.KindOf(w), w.Namespace, w.Name, w.ResourceVersion)
	if errors.Is(err, datastore.ErrNotFound) || errors.Is(err, datastore.ErrConflict) {
		return nil
	}
	return err
}
