// Package routing programs the routes between hosts from the datastore, as Felix does without BGP: each
// host's IPAM blocks (and the addresses other hosts borrowed from them) are routed to that host, directly
// when the pool neither encapsulates (vxlanMode and ipipMode Never) nor needs to (CrossSubnet within this
// host's subnet), otherwise through the vxlan.calico device with permanent ARP and FDB entries for every
// remote tunnel endpoint, or through tunl0 to the host's own address (IP-in-IP). Each host's tunnel
// addresses come from package tunneladdr, as from calico/node upstream. The VXLAN device's VNI, port and
// MTU, and tunl0's MTU, are vxlanVNI, vxlanPort, vxlanMTU and ipipMTU of FelixConfiguration node.<name>,
// else default, when set.
//
// It is level-triggered: every change of a Node, IPAM block, IP pool or FelixConfiguration recomputes the
// whole wanted state and converges the kernel to it, removing our stale routes (protocol 80, not on
// workload interfaces).
// While etcd is unreachable the last known state stays programmed, so running workloads keep talking.
package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/bgp"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/reconcile"
)

// blockPrefix is where Calico stores IPAM blocks.
const blockPrefix = "/calico/ipam/v2/assignment/"

// Config is the routing share of the daemon configuration.
type Config struct {
	Node string
	// WorkloadPrefix names the host ends of workload interfaces, whose routes belong to the dataplane
	// agent (default "cali").
	WorkloadPrefix string
	// ResyncInterval is the period of full reconciles that repair drift (default 10 s).
	ResyncInterval time.Duration
	// BGP, when set, carries unencapsulated pools' routes (CALICO_NETWORKING_BACKEND=bird): the reconciler
	// gives it plans and programs no direct routes for those pools itself.
	BGP *bgp.Speaker
	// LearntRoutesLeft, set without BGP, says an earlier run's speaker programmed learnt routes here: the
	// first pass removes those inside the pools (they would outlive the blocks they lead to), then calls it.
	LearntRoutesLeft func()
}

// Reconciler keeps this host's cross-host routes and tunnel in step with the datastore.
type Reconciler struct {
	cfg   Config
	store *datastore.Store
	log   *slog.Logger

	mu     sync.Mutex
	nodes  cache[*api.Node]
	pools  cache[*api.IPPool]
	blocks cache[blockRoute]
	felix  cache[*api.FelixConfiguration]
	// BGP's resources, watched only with BGP on.
	bgpConfigs cache[*api.BGPConfiguration]
	bgpPeers   cache[*api.BGPPeer]
	// unroutable is what the last pass could not route (see Unroutable).
	unroutable []string

	kick chan struct{}
}

// New returns a reconciler for cfg.Node.
func New(cfg Config, store *datastore.Store, log *slog.Logger) *Reconciler {
	if cfg.WorkloadPrefix == "" {
		cfg.WorkloadPrefix = "cali"
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 10 * time.Second
	}
	return &Reconciler{cfg: cfg, store: store, log: log,
		nodes: newCache(decodeResource[*api.Node]), pools: newCache(decodeResource[*api.IPPool]),
		blocks:     cache[blockRoute]{decode: decodeBlock, items: map[string]blockRoute{}, same: blockRoute.equal},
		felix:      newCache(decodeResource[*api.FelixConfiguration]),
		bgpConfigs: newCache(decodeResource[*api.BGPConfiguration]), bgpPeers: newCache(decodeResource[*api.BGPPeer]),
		kick: make(chan struct{}, 1)}
}

// Run watches nodes, pools, blocks and Felix configurations and converges on every change until ctx ends.
// Nothing is programmed before all four have been listed once, so a partial view never removes routes.
func (r *Reconciler) Run(ctx context.Context) {
	nodeKind, poolKind, felixKind := api.KindOf(&api.Node{}), api.KindOf(&api.IPPool{}), api.KindOf(&api.FelixConfiguration{})
	nodes := r.store.Watch(ctx, datastore.KindPrefix(nodeKind, ""), r.log)
	pools := r.store.Watch(ctx, datastore.KindPrefix(poolKind, ""), r.log)
	blocks := r.store.Watch(ctx, blockPrefix, r.log)
	felix := r.store.Watch(ctx, datastore.KindPrefix(felixKind, ""), r.log)
	var bgpConfigs, bgpPeers <-chan datastore.Event // nil, never ready, without BGP
	if r.cfg.BGP != nil {
		bgpConfigs = r.store.Watch(ctx, datastore.KindPrefix(api.KindOf(&api.BGPConfiguration{}), ""), r.log)
		bgpPeers = r.store.Watch(ctx, datastore.KindPrefix(api.KindOf(&api.BGPPeer{}), ""), r.log)
	}
	go r.kernelLoop(ctx)
	if r.cfg.BGP != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-r.cfg.BGP.Changed():
					reconcile.Kick(r.kick)
				}
			}
		}()
	}
	for {
		var ev datastore.Event
		var ok bool
		routesInput := true
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-nodes:
			r.fold(func() { r.nodes.apply(ev) })
		case ev, ok = <-pools:
			r.fold(func() { r.pools.apply(ev) })
		case ev, ok = <-blocks:
			r.fold(func() { routesInput = r.blocks.apply(ev) })
		case ev, ok = <-felix:
			r.fold(func() { r.felix.apply(ev) })
		case ev, ok = <-bgpConfigs:
			r.fold(func() { r.bgpConfigs.apply(ev) })
		case ev, ok = <-bgpPeers:
			r.fold(func() { r.bgpPeers.apply(ev) })
		}
		if !ok {
			return
		}
		if routesInput {
			reconcile.Kick(r.kick)
		}
	}
}

func (r *Reconciler) fold(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// snapshot copies the current view; ok is false until every watch has delivered its first listing.
func (r *Reconciler) snapshot() (view, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.nodes.synced || !r.pools.synced || !r.blocks.synced || !r.felix.synced ||
		(r.cfg.BGP != nil && (!r.bgpConfigs.synced || !r.bgpPeers.synced)) {
		return view{}, false
	}
	v := view{self: r.cfg.Node, nodes: map[string]*api.Node{}, bgp: r.cfg.BGP != nil}
	for _, n := range r.nodes.items {
		v.nodes[n.Name] = n
	}
	v.pools = slices.Collect(maps.Values(r.pools.items))
	v.blocks = slices.Collect(maps.Values(r.blocks.items))
	if v.bgp {
		v.bgpConfig = r.bgpSnapshot()
	}
	// As Felix: this node's FelixConfiguration node.<name> overrides default field by field. An invalid one
	// (calicoctl refuses it; another writer may not) counts as none.
	for _, name := range []string{"default", "node." + r.cfg.Node} {
		fc := r.felix.items[datastore.ResourceKey(api.KindOf(&api.FelixConfiguration{}), "", name)]
		if fc != nil && api.Validate(fc) == nil {
			overrideTunnels(&v.felix, fc.Spec)
		}
	}
	return v, true
}

// bgpSnapshot is the BGP share of the view (r.mu held). A configuration another writer stored invalid
// counts as none, as a peer stored invalid is left out.
func (r *Reconciler) bgpSnapshot() bgpView {
	var b bgpView
	kind := api.KindOf(&api.BGPConfiguration{})
	for name, dst := range map[string]**api.BGPConfigurationSpec{"default": &b.def, "node." + r.cfg.Node: &b.node} {
		if c := r.bgpConfigs.items[datastore.ResourceKey(kind, "", name)]; c != nil && api.Validate(c) == nil {
			*dst = &c.Spec
		}
	}
	for _, p := range r.bgpPeers.items {
		if api.Validate(p) == nil {
			b.peers = append(b.peers, p)
		}
	}
	slices.SortFunc(b.peers, func(x, y *api.BGPPeer) int { return strings.Compare(x.Name, y.Name) })
	return b
}

// overrideTunnels sets the tunnel settings routing uses in dst to those src sets.
func overrideTunnels(dst *api.FelixConfigurationSpec, src api.FelixConfigurationSpec) {
	for _, f := range []struct{ dst, src **int }{
		{&dst.VXLANVNI, &src.VXLANVNI}, {&dst.VXLANPort, &src.VXLANPort}, {&dst.VXLANMTU, &src.VXLANMTU},
		{&dst.IPIPMTU, &src.IPIPMTU},
	} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
}

// kernelLoop reconciles on every kick and every ResyncInterval; failures are retried soon after.
func (r *Reconciler) kernelLoop(ctx context.Context) {
	learntLeft := r.cfg.LearntRoutesLeft
	reconcile.Loop{Interval: r.cfg.ResyncInterval, What: "routing", Log: r.log}.Run(ctx, r.kick, func() error {
		v, ok := r.snapshot()
		if !ok {
			return nil
		}
		err := r.apply(v.compute())
		if r.cfg.BGP != nil {
			err = errors.Join(err, r.cfg.BGP.Apply(ctx, v.bgpPlan()))
		} else if learntLeft != nil {
			if dropErr := link.SyncLearnedRoutes(nil, v.poolCIDRs(), nil); dropErr != nil {
				err = errors.Join(err, fmt.Errorf("removing the routes BGP left: %w", dropErr))
			} else {
				r.log.Info("removed the routes an earlier run learnt over BGP")
				learntLeft()
				learntLeft = nil
			}
		}
		return err
	})
}

// cache is one watched prefix, decoded. Undecodable values are left out.
type cache[T any] struct {
	decode  func(datastore.KV) (T, bool)
	items   map[string]T
	listing datastore.Listing
	synced  bool
	// same, if set, says whether two versions of an item route alike: apply reports a change of an item
	// only when they do not.
	same func(a, b T) bool
}

func newCache[T any](decode func(datastore.KV) (T, bool)) cache[T] {
	return cache[T]{decode: decode, items: map[string]T{}}
}

// apply applies a watch event and reports whether it may change the routes.
func (c *cache[T]) apply(ev datastore.Event) bool {
	switch ev.Type {
	case datastore.EventResync:
		changed := false
		for _, kv := range ev.Snapshot {
			changed = c.put(kv) || changed
		}
		if !c.listing.Add(ev) {
			return changed
		}
		for key := range c.items {
			if !c.listing.Has(key) {
				delete(c.items, key)
			}
		}
		c.listing.Reset()
		c.synced = true
		return true
	case datastore.EventPut:
		return c.put(ev.KV)
	case datastore.EventDelete:
		_, had := c.items[ev.KV.Key]
		delete(c.items, ev.KV.Key)
		return had || c.same == nil
	}
	return true
}

func (c *cache[T]) put(kv datastore.KV) (changed bool) {
	old, had := c.items[kv.Key]
	v, ok := c.decode(kv)
	if ok {
		c.items[kv.Key] = v
	} else {
		delete(c.items, kv.Key)
	}
	if c.same == nil || had != ok {
		return true
	}
	return ok && !c.same(old, v)
}

func decodeResource[T api.Object](kv datastore.KV) (T, bool) {
	var zero T
	o, err := datastore.Decode(api.KindOf(zero), kv)
	if err != nil {
		return zero, false
	}
	t, ok := o.(T)
	if ok {
		api.Default(t)
	}
	return t, ok
}

func decodeBlock(kv datastore.KV) (blockRoute, bool) {
	var b ipam.Block
	if err := json.Unmarshal(kv.Value, &b); err != nil {
		return blockRoute{}, false
	}
	return routeOf(&b), true
}
