// Package dataplane keeps this host's kernel in step with the datastore, as Calico's Felix does: routes
// and neighbour entries to local workloads, the forwarding sysctls, Calico network policy and the
// firewall that lets routed workload traffic past Docker's own rules and masquerades pool traffic
// leaving the pools. It is level-triggered: on start and after any watch gap it rebuilds its view from
// the datastore and converges, removing what is stale; in between it applies changes incrementally.
//
// All kernel work and all of the agent's state belong to one goroutine, the worker. That serialises
// Join's EndpointUp with reconciliation, and (Config.Netns) lets the whole agent program another
// network namespace, which is how tests run it. Work that arrives while the worker is busy is served
// together, in one pass with one firewall transaction: a burst of Joins does not queue behind itself.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/firewall"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// workloadPrefix names the host ends of workload interfaces.
const workloadPrefix = "cali"

// Config is the agent's share of the daemon configuration.
type Config struct {
	Node           string
	EndpointToHost string // ACCEPT, DROP or RETURN
	// ResyncInterval is the full reconcile period (default 10 s); it also puts our iptables jump back in
	// place after dockerd rewrites its chains.
	ResyncInterval time.Duration
	// StaleInterfaceGrace is how long a veth named as the driver names them may exist with no local
	// endpoint before it is deleted (default 30 s): Join creates the interface only after the endpoint
	// exists, so a short-lived orphan is a Join in progress or an endpoint the watch has not delivered yet.
	StaleInterfaceGrace time.Duration
	// Netns names (as ip netns does) a network namespace to program instead of the process's own;
	// tests run agents against throwaway namespaces this way.
	Netns string
	// ObserveConvergence, if set, is told how long each batch of datastore changes took from reaching the
	// agent to being in the kernel (metrics). A pass that fails is not observed: the next resync retries it.
	ObserveConvergence func(time.Duration)
	// ObserveUnenforced, if set, is told after each pass how many policy and profile rules are enforced
	// failing closed because they match something this dataplane cannot enforce (metrics).
	ObserveUnenforced func(int)
	// ObserveRefused, if set, is told after each pass how many nftables objects the kernel refuses
	// (metrics); Refused names them.
	ObserveRefused func(int)
}

// Agent programs the host dataplane. Its EndpointUp/EndpointDown let Join act at once; Run converges.
type Agent struct {
	cfg   Config
	store *datastore.Store
	log   *slog.Logger

	work   chan job      // jobs for the worker
	stop   chan struct{} // closed by Run when it ends, to stop the worker
	done   chan struct{} // closed by the worker when it exits
	synced chan struct{} // closed once the datastore's full state is programmed
	rev    atomic.Int64  // the datastore revision the kernel reflects

	statusMu   sync.Mutex
	syncStatus error // why the agent is not synced yet, as of the worker's last pass

	// Owned by the worker.
	fw       *firewall.Firewall
	idx      *policy.Index
	view     *view
	routed   map[string]routeState   // what this agent routed, by interface
	orphans  map[string]time.Time    // stale interfaces (see classify), since when
	released map[netip.Addr]struct{} // addresses given up whose conntrack entries are still to go
	isSynced bool
}

// New returns an agent for workload interfaces named cali* (see classify for which it routes and deletes).
// Call Start, then Run.
func New(cfg Config, store *datastore.Store, log *slog.Logger) *Agent {
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 10 * time.Second
	}
	if cfg.StaleInterfaceGrace == 0 {
		cfg.StaleInterfaceGrace = 30 * time.Second
	}
	if cfg.ObserveUnenforced == nil {
		cfg.ObserveUnenforced = func(int) {}
	}
	if cfg.ObserveRefused == nil {
		cfg.ObserveRefused = func(int) {}
	}
	if cfg.ObserveConvergence == nil {
		cfg.ObserveConvergence = func(time.Duration) {}
	}
	idx := policy.NewIndex(cfg.Node)
	a := &Agent{cfg: cfg, store: store, log: log,
		work: make(chan job), stop: make(chan struct{}), done: make(chan struct{}), synced: make(chan struct{}),
		fw: firewall.New(workloadPrefix, log), idx: idx, view: newView(idx, cfg.Node, log),
		routed: map[string]routeState{}, orphans: map[string]time.Time{}, released: map[netip.Addr]struct{}{}}
	a.syncStatus = errors.New("the datastore has not been read yet")
	return a
}

// Start starts the worker and prepares the host (forwarding sysctls, the firewall's base chains)
// before the first container can join. Policy an earlier run programmed stays in force until Run has
// read the whole datastore.
func (a *Agent) Start() error {
	if err := a.startWorker(); err != nil {
		return err
	}
	return a.do(context.Background(), func() error {
		if err := link.EnableForwarding(true); err != nil {
			if err4 := link.EnableForwarding(false); err4 != nil {
				return fmt.Errorf("enabling IP forwarding: %w", err4)
			}
			a.log.Warn("IPv6 forwarding unavailable; IPv6 workloads will not be routed", "error", err.Error())
		}
		return a.fw.Ensure(firewall.Options{EndpointToHostAction: a.cfg.EndpointToHost})
	})
}

// Synced is closed once the agent has programmed the complete state of the datastore for the first
// time (after Run started); a readiness signal.
func (a *Agent) Synced() <-chan struct{} { return a.synced }

// hasSynced reports whether Synced is closed.
func (a *Agent) hasSynced() bool {
	select {
	case <-a.synced:
		return true
	default:
		return false
	}
}

// SyncStatus says why the agent has not synced yet: the kinds of resource the datastore has not listed,
// or why programming them failed. It is nil once the agent has synced.
func (a *Agent) SyncStatus() error {
	if a.hasSynced() {
		return nil
	}
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	return a.syncStatus
}

// setSyncStatus records, after a pass before the first sync, what stands in its way; err is the pass's.
func (a *Agent) setSyncStatus(err error) {
	if unlisted := a.view.unlisted(); len(unlisted) > 0 {
		err = fmt.Errorf("the datastore has not yet listed its %s (see the watch's warnings)", strings.Join(unlisted, ", "))
	} else if err != nil {
		err = fmt.Errorf("programming the datastore's state failed (retried every %s): %w", a.cfg.ResyncInterval, err)
	} else {
		err = errors.New("the datastore's state is not programmed yet")
	}
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	a.syncStatus = err
}

// errNotSynced refuses an EndpointUp before the first sync: its policy could not be programmed yet.
var errNotSynced = errors.New("the dataplane agent has not yet programmed the datastore's state, so it cannot " +
	"program this endpoint's policy")

// Revision is the datastore revision whose state the kernel holds (0 before the first sync): status
// for operators, and a barrier for tests.
func (a *Agent) Revision() int64 { return a.rev.Load() }

// EndpointUp routes an endpoint's addresses to its interface, with permanent neighbour entries, and
// programs its policy, so the container is reachable, and protected, as soon as it runs: it returns
// once both are in the kernel, or with an error. Calls that arrive together share one firewall
// transaction. It refuses an endpoint that is invalid or not one of the plugin's own on this node, and
// any endpoint before the agent has synced.
func (a *Agent) EndpointUp(ctx context.Context, wep *api.WorkloadEndpoint) error {
	if err := api.Validate(wep); err != nil {
		return fmt.Errorf("not programming an invalid endpoint: %w", err)
	}
	iface, ours := api.OwnedInterface(a.cfg.Node, wep)
	if !ours {
		return fmt.Errorf("not programming endpoint %s: not a %s endpoint of node %s with interface %s",
			wep.Name, api.OrchestratorLibnetwork, a.cfg.Node, api.LibnetworkInterface(wep.Spec.Endpoint))
	}
	if !a.hasSynced() {
		return errNotSynced
	}
	rev, _ := strconv.ParseInt(wep.ResourceVersion, 10, 64)
	key := datastore.ResourceKey(api.KindOf(wep), wep.Namespace, wep.Name)
	o := a.submit(ctx, func() error {
		// The watch may have brought a newer revision (labels copied since Join read it): keep that.
		if rev >= a.view.revs[kindWEP][key] {
			a.view.put(kindWEP, key, wep, rev)
		}
		// Join may have just recreated the interface, and with it lost the routes: route it whatever
		// the agent did before.
		delete(a.routed, iface)
		return a.routeInterface(iface)
	}, true)
	if o.policy != nil && o.sharedBy > 1 {
		o.policy = fmt.Errorf("programming its policy, in one nftables transaction with %d other Joins or "+
			"datastore changes: %w", o.sharedBy-1, o.policy)
	} else if o.policy != nil {
		o.policy = fmt.Errorf("programming its policy: %w", o.policy)
	}
	return errors.Join(o.step, o.policy)
}

// EndpointDown removes an endpoint's routes (they vanish with the interface anyway; this is for the case
// where the interface outlives the endpoint), then its addresses' flows. The endpoint's policy goes when
// its deletion is watched. An endpoint that is not the plugin's own has no routes or flows of ours.
func (a *Agent) EndpointDown(ctx context.Context, wep *api.WorkloadEndpoint) error {
	iface, ours := api.OwnedInterface(a.cfg.Node, wep)
	if !ours {
		return nil
	}
	return a.do(ctx, func() error {
		delete(a.routed, iface)
		addrs := routesOf(wep).addrs
		l, exists, err := link.Lookup(iface)
		if err != nil {
			return errors.Join(err, a.release(addrs...))
		}
		var errs []error
		if exists && l.IsVeth() {
			for _, addr := range addrs {
				errs = append(errs, link.DeleteWorkloadRoute(iface, addr.AsSlice()))
			}
		}
		return errors.Join(append(errs, a.release(addrs...))...)
	})
}

// Run watches the datastore and converges on every change (batched) and every ResyncInterval until ctx
// ends. It then leaves the kernel as it is, so workloads keep their connectivity and policy while the
// agent is away, and stops the worker.
func (a *Agent) Run(ctx context.Context) {
	defer close(a.stop)
	a.fw.Prefetch() // the first pass compares with the kernel's table: read it while the datastore is listed
	events := a.watch(ctx)
	ticker := time.NewTicker(a.cfg.ResyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			arrived := time.Now()
			evs := takeQueued(events, []event{ev})
			o := a.submit(ctx, func() error {
				for _, ev := range evs {
					a.view.fold(ev)
				}
				return nil
			}, true)
			err := errors.Join(o.step, o.policy, o.rest)
			if err == nil && a.hasSynced() {
				a.cfg.ObserveConvergence(time.Since(arrived))
			}
			a.report(err)
		case <-ticker.C:
			a.report(a.do(ctx, a.resync))
		}
	}
}

// takeQueued appends the events already waiting: a change is applied at once, and what arrived while
// the previous one was being applied (a policy and its labels written together, a burst of endpoints)
// goes to the kernel together, in one transaction.
func takeQueued(events <-chan event, evs []event) []event {
	for {
		select {
		case ev := <-events:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

func (a *Agent) report(err error) {
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errStopped) {
		a.log.Warn("dataplane reconcile incomplete; retrying", "error", err.Error())
	}
}

// apply programs what changed in the index (and the pools) since the last call, once the view is
// complete: before that, the kernel keeps what an earlier run programmed rather than a partial policy.
// It returns the policy transaction's error apart from the rest's (pools, and the routes of interfaces
// whose claims changed). After a failed transaction the firewall rewrites its table in full, so a nil
// policy error means that the kernel holds all of the policy, whatever earlier passes did.
func (a *Agent) apply() (policyErr, restErr error) {
	if !a.view.complete() {
		return nil, nil
	}
	if !a.isSynced {
		return a.resync(), nil
	}
	policyErr = a.fw.ApplyPolicy(a.idx, a.takeChanges())
	if a.view.poolsChanged {
		restErr = a.setPools()
	}
	restErr = errors.Join(restErr, a.routeInterfaces(a.view.claims.takeChanged()))
	a.applied(errors.Join(policyErr, restErr))
	return policyErr, restErr
}

// takeChanges takes the index's changes, logging and counting what policy cannot be enforced.
func (a *Agent) takeChanges() policy.Changes {
	ch := a.idx.TakeChanges()
	for _, w := range ch.Warnings {
		a.log.Warn("policy not fully enforced", "reason", w)
	}
	a.cfg.ObserveUnenforced(a.idx.Unenforced())
	return ch
}

// applied records, after a successful pass, the revision the kernel now reflects.
func (a *Agent) applied(err error) error {
	a.cfg.ObserveRefused(len(a.fw.Refused()))
	if err == nil {
		a.rev.Store(a.view.rev)
	}
	return err
}

// resync converges everything from the view: firewall (repairing drift), pools, policy, routes, stale
// interfaces, and released addresses' flows. The first complete one marks the agent synced.
func (a *Agent) resync() error {
	errs := []error{a.fw.Ensure(firewall.Options{EndpointToHostAction: a.cfg.EndpointToHost}), a.deleteReleasedFlows()}
	if !a.view.complete() {
		return errors.Join(errs...)
	}
	errs = append(errs, a.setPools(), a.fw.ApplyPolicy(a.idx, a.takeChanges()), a.reconcileRoutes())
	err := a.applied(errors.Join(errs...))
	if err == nil && !a.isSynced {
		a.isSynced = true
		close(a.synced)
		a.log.Info("dataplane synced with the datastore")
	}
	return err
}

func (a *Agent) setPools() error {
	all, masq := a.view.poolPrefixes()
	a.view.poolsChanged = false
	return a.fw.SetPools(all, masq)
}

// Refused names the objects of the firewall the kernel refuses, each with the datastore object it
// renders and the kernel's reason; the endpoints they apply to fail closed. Safe from any goroutine.
func (a *Agent) Refused() []string {
	var out []string
	for _, r := range a.fw.Refused() {
		out = append(out, r.String())
	}
	return out
}

// Disabled is the dataplane when CALICO_DATAPLANE=none: another agent (calico/node) programs the host.
type Disabled struct{}

// EndpointUp does nothing.
func (Disabled) EndpointUp(context.Context, *api.WorkloadEndpoint) error { return nil }

// EndpointDown does nothing.
func (Disabled) EndpointDown(context.Context, *api.WorkloadEndpoint) error { return nil }
