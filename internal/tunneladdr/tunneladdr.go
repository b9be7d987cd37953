// Package tunneladdr gives this node its VXLAN tunnel address, the job calico/node's allocate-tunnel-addrs
// does upstream: while an enabled IPv4 VXLAN pool selects the node, one address from such a pool is
// allocated to the handle vxlan-tunnel-addr-<node> and written, with the VTEP MAC, on the Node; when no
// pool does, both go. It runs whatever programs the host (this daemon's dataplane or upstream Felix, which
// reads the address from the Node but never allocates it).
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

// allocationType is the allocation type calico/node gives VXLAN tunnel addresses; with Handle it lets
// calicoctl ipam and calico/node recognise ours.
const allocationType = "vxlanTunnelAddress"

// resyncInterval bounds how long an address released behind our back (calicoctl ipam release) stays gone.
const resyncInterval = 10 * time.Second

// Handle is the IPAM handle of a node's VXLAN tunnel address.
func Handle(node string) string { return "vxlan-tunnel-addr-" + node }

// DerivedMAC is the VTEP MAC Felix derives for a node without vxlanTunnelMACAddr: 'f' then the first five
// bytes of the name's SHA-1, so every host computes the same MAC for a node without asking it.
func DerivedMAC(node string) net.HardwareAddr {
	sum := sha1.Sum([]byte(node))
	return net.HardwareAddr{'f', sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// UsesVXLAN reports whether p is an enabled IPv4 pool whose traffic may cross hosts through VXLAN.
func UsesVXLAN(p *api.IPPool) bool {
	cidr, err := netip.ParsePrefix(p.Spec.CIDR)
	return err == nil && cidr.Addr().Is4() && !p.Spec.Disabled && p.Spec.VXLANMode != "" && p.Spec.VXLANMode != api.EncapNever
}

// Allocator keeps one node's tunnel address in step with the pools.
type Allocator struct {
	node  string
	store *datastore.Store
	ipam  *ipam.IPAM
	log   *slog.Logger

	verified netip.Addr // the address last confirmed as allocated to our handle
}

// New returns the allocator of node; addrs allocates for that node.
func New(node string, store *datastore.Store, addrs *ipam.IPAM, log *slog.Logger) *Allocator {
	return &Allocator{node: node, store: store, ipam: addrs, log: log}
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
	reconcile.Loop{Interval: resyncInterval, What: "VXLAN tunnel address", Log: a.log}.Run(ctx, kick, func() error {
		return a.sync(ctx)
	})
}

// sync allocates, keeps or releases the tunnel address as the pools require. Pools and Node are read
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
	pools, err := tunnelPools(all, self)
	if err != nil {
		return err
	}
	cur, _ := netip.ParseAddr(self.Spec.IPv4VXLANTunnelAddr)
	if len(pools) == 0 {
		if !cur.IsValid() && self.Spec.VXLANTunnelMACAddr == "" {
			return nil
		}
		if err := a.ipam.ReleaseByHandle(ctx, Handle(a.node)); err != nil {
			return fmt.Errorf("releasing the VXLAN tunnel address: %w", err)
		}
		a.log.Info("released VXLAN tunnel address: no VXLAN pool", "address", cur.String())
		return a.setNode(ctx, "", "")
	}
	if cur.IsValid() && self.Spec.VXLANTunnelMACAddr != "" && inAny(pools, cur) {
		if cur == a.verified {
			return nil
		}
		info, err := a.ipam.Allocation(ctx, cur)
		if err == nil && info.Handle == Handle(a.node) {
			a.verified = cur
			return nil
		}
		if err != nil && !errors.Is(err, ipam.ErrNotAllocated) {
			return err
		}
	}
	// Missing, outside every VXLAN pool, or not ours: start afresh.
	if err := a.ipam.ReleaseByHandle(ctx, Handle(a.node)); err != nil {
		return fmt.Errorf("releasing the old VXLAN tunnel address: %w", err)
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	addr, _, err := a.ipam.AutoAssign(ctx, ipam.Request{Family: 4, Pools: names, Handle: Handle(a.node),
		Attrs: map[string]string{"type": allocationType}})
	if err != nil {
		return fmt.Errorf("allocating the VXLAN tunnel address: %w", err)
	}
	if err := a.setNode(ctx, addr.String(), DerivedMAC(a.node).String()); err != nil {
		return err // the next pass releases the handle and allocates again
	}
	a.verified = addr
	a.log.Info("allocated VXLAN tunnel address", "address", addr.String())
	return nil
}

// tunnelPools are the enabled IPv4 VXLAN pools whose nodeSelector selects n.
func tunnelPools(pools []*api.IPPool, n *api.Node) ([]*api.IPPool, error) {
	var out []*api.IPPool
	for _, p := range pools {
		api.Default(p)
		if !UsesVXLAN(p) {
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

// setNode writes the tunnel address and VTEP MAC on this node's Node, keeping everything else.
func (a *Allocator) setNode(ctx context.Context, addr, mac string) error {
	for {
		n, err := datastore.Get[*api.Node](ctx, a.store, "", a.node)
		if err != nil {
			return fmt.Errorf("reading node %q: %w", a.node, err)
		}
		if n.Spec.IPv4VXLANTunnelAddr == addr && n.Spec.VXLANTunnelMACAddr == mac {
			return nil
		}
		n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = addr, mac
		err = a.store.Update(ctx, n)
		if !errors.Is(err, datastore.ErrConflict) {
			if err != nil {
				return fmt.Errorf("writing the VXLAN tunnel address on node %q: %w", a.node, err)
			}
			return nil
		}
	}
}
