// Package tunneladdr gives this node its tunnel addresses, the job calico/node's allocate-tunnel-addrs
// does upstream: while an enabled IPv4 VXLAN (IPIP) pool selects the node, one address from such a pool is
// allocated to the handle vxlan-tunnel-addr-<node> (ipip-tunnel-addr-<node>) and written on the Node, the
// VXLAN one with the VTEP MAC; when no pool does, they go. It runs whatever programs the host (this
// daemon's dataplane or upstream Felix, which reads the addresses from the Node but never allocates them).
package tunneladdr

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/reconcile"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// resyncInterval bounds how long an address released behind our back (calicoctl ipam release) stays gone.
const resyncInterval = 10 * time.Second

// tunnel is one kind of tunnel address, with the handle and allocation type calico/node gives it, which
// let calicoctl ipam and calico/node recognise ours.
type tunnel struct {
	name      string // in log lines and errors
	handle    string // the handle is this and the node name
	allocType string
	uses      func(*api.IPPool) bool
	node      func(*api.Node) *string // the Node's field holding the address
	withMAC   bool                    // the VTEP MAC is written (and removed) with the address
}

var tunnels = []tunnel{
	{name: "VXLAN", handle: "vxlan-tunnel-addr-", allocType: "vxlanTunnelAddress", uses: UsesVXLAN, withMAC: true,
		node: func(n *api.Node) *string { return &n.Spec.IPv4VXLANTunnelAddr }},
	{name: "IPIP", handle: "ipip-tunnel-addr-", allocType: "ipipTunnelAddress", uses: UsesIPIP,
		node: func(n *api.Node) *string {
			if n.Spec.BGP == nil {
				n.Spec.BGP = &api.NodeBGPSpec{}
			}
			return &n.Spec.BGP.IPv4IPIPTunnelAddr
		}},
}

// Handle is the IPAM handle of a node's VXLAN tunnel address.
func Handle(node string) string { return tunnels[0].handle + node }

// DerivedMAC is the VTEP MAC Felix derives for a node without vxlanTunnelMACAddr: 'f' then the first five
// bytes of the name's SHA-1, so every host computes the same MAC for a node without asking it.
func DerivedMAC(node string) net.HardwareAddr {
	sum := sha1.Sum([]byte(node))
	return net.HardwareAddr{'f', sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// UsesVXLAN reports whether p is an enabled IPv4 pool whose traffic may cross hosts through VXLAN.
func UsesVXLAN(p *api.IPPool) bool { return encapsulates(p, p.Spec.VXLANMode) }

// UsesIPIP reports whether p is an enabled IPv4 pool whose traffic may cross hosts through IP-in-IP.
func UsesIPIP(p *api.IPPool) bool { return encapsulates(p, p.Spec.IPIPMode) }

func encapsulates(p *api.IPPool, mode string) bool {
	cidr, err := netip.ParsePrefix(p.Spec.CIDR)
	return err == nil && cidr.Addr().Is4() && !p.Spec.Disabled && mode != "" && mode != api.EncapNever
}

// Allocator keeps one node's tunnel address in step with the pools.
type Allocator struct {
	node  string
	store *datastore.Store
	ipam  *ipam.IPAM
	log   *slog.Logger

	verified map[string]netip.Addr // by tunnel name: the address last confirmed as allocated to our handle
}

// New returns the allocator of node; addrs allocates for that node.
func New(node string, store *datastore.Store, addrs *ipam.IPAM, log *slog.Logger) *Allocator {
	return &Allocator{node: node, store: store, ipam: addrs, log: log, verified: map[string]netip.Addr{}}
}

// Run converges on every change of a pool or of this node's Node, and every resyncInterval, until ctx ends.
func (a *Allocator) Run(ctx context.Context) {
	kick := make(chan struct{}, 1)
	for _, prefix := range []string{datastore.KindPrefix(api.KindOf(&api.IPPool{}), ""),
		datastore.ResourceKey(api.KindOf(&api.Node{}), "", a.node)} {
		events := a.store.Watch(ctx, prefix, a.log)
		go func() {
			var listing datastore.Listing
			for ev := range events {
				listing.Add(ev) // lets a paged listing read on; the pass reads afresh
				reconcile.Kick(kick)
			}
		}()
	}
	reconcile.Loop{Interval: resyncInterval, What: "tunnel addresses", Log: a.log}.Run(ctx, kick, func() error {
		return a.sync(ctx)
	})
}

// sync allocates, keeps or releases each tunnel address as the pools require. Pools and Node are read
// afresh: a watched copy may not show our own last write yet, and acting on it would allocate twice.
func (a *Allocator) sync(ctx context.Context) error {
	self, err := datastore.Get[*api.Node](ctx, a.store, "", a.node)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil // not registered, or deleted by an operator: do not bring it back
	}
	if err != nil {
		return err
	}
	all, err := datastore.List[*api.IPPool](ctx, a.store, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tunnels {
		errs = append(errs, a.syncTunnel(ctx, t, self, all))
	}
	return errors.Join(errs...)
}

func (a *Allocator) syncTunnel(ctx context.Context, t tunnel, self *api.Node, all []*api.IPPool) error {
	pools, err := tunnelPools(all, self, t.uses)
	if err != nil {
		return err
	}
	cur, _ := netip.ParseAddr(*t.node(self))
	hasMAC := self.Spec.VXLANTunnelMACAddr != ""
	handle := t.handle + a.node
	if len(pools) == 0 {
		if !cur.IsValid() && !(t.withMAC && hasMAC) {
			return nil
		}
		if err := a.ipam.ReleaseByHandle(ctx, handle); err != nil {
			return fmt.Errorf("releasing the %s tunnel address: %w", t.name, err)
		}
		a.log.Info("released tunnel address: no pool needs it", "tunnel", t.name, "address", cur.String())
		return a.setNode(ctx, t, "")
	}
	if cur.IsValid() && (hasMAC || !t.withMAC) && inAny(pools, cur) {
		if cur == a.verified[t.name] {
			return nil
		}
		info, err := a.ipam.Allocation(ctx, cur)
		if err == nil && info.Handle == handle {
			a.verified[t.name] = cur
			return nil
		}
		if err != nil && !errors.Is(err, ipam.ErrNotAllocated) {
			return err
		}
	}
	// Missing, outside every pool of its kind, or not ours: start afresh.
	if err := a.ipam.ReleaseByHandle(ctx, handle); err != nil {
		return fmt.Errorf("releasing the old %s tunnel address: %w", t.name, err)
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	addr, _, err := a.ipam.AutoAssign(ctx, ipam.Request{Family: 4, Pools: names, Handle: handle,
		Attrs: map[string]string{"type": t.allocType}})
	if err != nil {
		return fmt.Errorf("allocating the %s tunnel address: %w", t.name, err)
	}
	if err := a.setNode(ctx, t, addr.String()); err != nil {
		return err // the next pass releases the handle and allocates again
	}
	a.verified[t.name] = addr
	a.log.Info("allocated tunnel address", "tunnel", t.name, "address", addr.String())
	return nil
}

// tunnelPools are the pools of a kind whose nodeSelector selects n.
func tunnelPools(pools []*api.IPPool, n *api.Node, uses func(*api.IPPool) bool) ([]*api.IPPool, error) {
	var out []*api.IPPool
	for _, p := range pools {
		api.Default(p)
		if !uses(p) {
			continue
		}
		sel, err := selector.Parse(p.Spec.NodeSelector)
		if err != nil {
			return nil, fmt.Errorf("IP pool %q: nodeSelector: %w", p.Name, err)
		}
		if sel.Matches(n.Labels) {
			out = append(out, p)
		}
	}
	return out, nil
}

func inAny(pools []*api.IPPool, a netip.Addr) bool {
	for _, p := range pools {
		if cidr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && cidr.Contains(a) {
			return true
		}
	}
	return false
}

// setNode writes a tunnel address (and for VXLAN the VTEP MAC, removed with the address) on this node's
// Node, keeping everything else.
func (a *Allocator) setNode(ctx context.Context, t tunnel, addr string) error {
	mac := ""
	if addr != "" {
		mac = DerivedMAC(a.node).String()
	}
	for {
		n, err := datastore.Get[*api.Node](ctx, a.store, "", a.node)
		if err != nil {
			return fmt.Errorf("reading node %q: %w", a.node, err)
		}
		field := t.node(n)
		if *field == addr && (!t.withMAC || n.Spec.VXLANTunnelMACAddr == mac) {
			return nil
		}
		*field = addr
		if t.withMAC {
			n.Spec.VXLANTunnelMACAddr = mac
		}
		err = a.store.Update(ctx, n)
		if !errors.Is(err, datastore.ErrConflict) {
			if err != nil {
				return fmt.Errorf("writing the %s tunnel address on node %q: %w", t.name, a.node, err)
			}
			return nil
		}
	}
}
