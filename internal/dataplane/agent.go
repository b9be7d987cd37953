// Package dataplane keeps this host's kernel in step with the datastore, as Calico's Felix does: routes
// and neighbour entries to local workloads, the forwarding sysctls, and the firewall that lets routed
// workload traffic past Docker's own rules and masquerades pool traffic leaving the pools. It is
// level-triggered: every pass computes the wanted state from a full view and removes what is stale.
package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/firewall"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// Config is the agent's share of the daemon configuration.
type Config struct {
	Node           string
	EndpointToHost string        // ACCEPT, DROP or RETURN
	ResyncInterval time.Duration // full reconcile period (also re-inserts our jump after dockerd rewrites its chains)
}

// Agent programs the host dataplane. Its EndpointUp/EndpointDown let Join act at once; Run converges.
type Agent struct {
	cfg   Config
	store *datastore.Store
	fw    *firewall.Firewall
	log   *slog.Logger

	mu        sync.Mutex
	endpoints map[string]*api.WorkloadEndpoint // this node's endpoints by key
	pools     map[string]*api.IPPool
	kick      chan struct{}
}

// New returns an agent for workload interfaces named cali*.
func New(cfg Config, store *datastore.Store, log *slog.Logger) *Agent {
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 10 * time.Second
	}
	return &Agent{cfg: cfg, store: store, fw: firewall.New("cali", log), log: log,
		endpoints: map[string]*api.WorkloadEndpoint{}, pools: map[string]*api.IPPool{}, kick: make(chan struct{}, 1)}
}

// Start prepares the host (forwarding sysctls, firewall) before the first container can join.
func (a *Agent) Start() error {
	if err := link.EnableForwarding(true); err != nil {
		if err4 := link.EnableForwarding(false); err4 != nil {
			return fmt.Errorf("enabling IP forwarding: %w", err4)
		}
		a.log.Warn("IPv6 forwarding unavailable; IPv6 workloads will not be routed", "error", err.Error())
	}
	return a.fw.Ensure(firewall.Options{EndpointToHostAction: a.cfg.EndpointToHost})
}

// EndpointUp routes an endpoint's addresses to its interface, with permanent neighbour entries.
func (a *Agent) EndpointUp(_ context.Context, wep *api.WorkloadEndpoint) error {
	mac, _ := net.ParseMAC(wep.Spec.MAC)
	for _, n := range wep.Spec.IPNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			continue
		}
		if err := link.AddWorkloadRoute(wep.Spec.InterfaceName, p.Addr().AsSlice(), mac); err != nil {
			return err
		}
	}
	return nil
}

// EndpointDown removes an endpoint's routes (they vanish with the interface anyway; this is for the case
// where the interface outlives the endpoint).
func (a *Agent) EndpointDown(_ context.Context, wep *api.WorkloadEndpoint) error {
	var errs []error
	for _, n := range wep.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			errs = append(errs, link.DeleteWorkloadRoute(wep.Spec.InterfaceName, p.Addr().AsSlice()))
		}
	}
	return errors.Join(errs...)
}

// Run watches endpoints and pools and reconciles on every change and every ResyncInterval until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	weps := a.store.Watch(ctx, datastore.KindPrefix(api.KindOf(&api.WorkloadEndpoint{}), ""), a.log)
	pools := a.store.Watch(ctx, datastore.KindPrefix(api.KindOf(&api.IPPool{}), ""), a.log)
	go a.loop(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-weps:
			if !ok {
				return
			}
			applyEvent(ev, a, a.endpoints, func(w *api.WorkloadEndpoint) bool { return w.Spec.Node == a.cfg.Node })
		case ev, ok := <-pools:
			if !ok {
				return
			}
			applyEvent(ev, a, a.pools, func(*api.IPPool) bool { return true })
		}
		a.trigger()
	}
}

func (a *Agent) trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// applyEvent folds a watch event into one of the agent's caches.
func applyEvent[T api.Object](ev datastore.Event, a *Agent, cache map[string]T, keep func(T) bool) {
	decode := func(kv datastore.KV) (T, bool) {
		var o T
		o = api.KindOf(o).New().(T)
		if json.Unmarshal(kv.Value, o) != nil {
			return o, false
		}
		return o, keep(o)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Type {
	case datastore.EventResync:
		clear(cache)
		for _, kv := range ev.Snapshot {
			if o, ok := decode(kv); ok {
				cache[kv.Key] = o
			}
		}
	case datastore.EventPut:
		if o, ok := decode(ev.KV); ok {
			cache[ev.KV.Key] = o
		} else {
			delete(cache, ev.KV.Key)
		}
	case datastore.EventDelete:
		delete(cache, ev.KV.Key)
	}
}

func (a *Agent) loop(ctx context.Context) {
	ticker := time.NewTicker(a.cfg.ResyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-a.kick:
		}
		if err := a.reconcile(); err != nil {
			a.log.Warn("dataplane reconcile incomplete; retrying", "error", err.Error())
		}
	}
}

// reconcile converges routes and the firewall with the cached view.
func (a *Agent) reconcile() error {
	a.mu.Lock()
	wanted := map[string]map[string]*api.WorkloadEndpoint{} // iface → ip → endpoint
	for _, w := range a.endpoints {
		for _, n := range w.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				if wanted[w.Spec.InterfaceName] == nil {
					wanted[w.Spec.InterfaceName] = map[string]*api.WorkloadEndpoint{}
				}
				wanted[w.Spec.InterfaceName][p.Addr().String()] = w
			}
		}
	}
	var all, masq []netip.Prefix
	for _, p := range a.pools {
		if cidr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			all = append(all, cidr)
			if p.Spec.NATOutgoing && !p.Spec.Disabled {
				masq = append(masq, cidr)
			}
		}
	}
	a.mu.Unlock()

	var errs []error
	errs = append(errs, a.fw.Ensure(firewall.Options{EndpointToHostAction: a.cfg.EndpointToHost}), a.fw.SetPools(all, masq))
	present, err := link.ListWorkloadRoutes("cali")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	have := map[string]bool{}
	for _, r := range present {
		key := r.Iface + "|" + r.IP.String()
		have[key] = true
		if wanted[r.Iface][r.IP.String()] == nil {
			errs = append(errs, link.DeleteWorkloadRoute(r.Iface, r.IP))
		}
	}
	links, err := link.ListLinks("cali")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, iface := range links {
		for ip, w := range wanted[iface] {
			if !have[iface+"|"+ip] {
				mac, _ := net.ParseMAC(w.Spec.MAC)
				errs = append(errs, link.AddWorkloadRoute(iface, net.ParseIP(ip), mac))
			}
		}
	}
	return errors.Join(errs...)
}

// Disabled is the dataplane when CALICO_DATAPLANE=none: another agent (calico/node) programs the host.
type Disabled struct{}

// EndpointUp does nothing.
func (Disabled) EndpointUp(context.Context, *api.WorkloadEndpoint) error { return nil }

// EndpointDown does nothing.
func (Disabled) EndpointDown(context.Context, *api.WorkloadEndpoint) error { return nil }
