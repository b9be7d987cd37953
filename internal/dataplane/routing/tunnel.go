package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// tunnelAddrType is the allocation type calico/node gives VXLAN tunnel addresses; with the handle below
// it lets calicoctl ipam and calico/node recognise ours.
const tunnelAddrType = "vxlanTunnelAddress"

// TunnelHandle is the IPAM handle of a node's VXLAN tunnel address.
func TunnelHandle(node string) string { return "vxlan-tunnel-addr-" + node }

// tunnelAllocator gives this node a VXLAN tunnel address while an enabled VXLAN pool selects it, and
// takes it back when none does, writing it (and the VTEP MAC) on the Node as calico/node does.
type tunnelAllocator struct {
	node  string
	store *datastore.Store
	ipam  *ipam.IPAM
	log   *slog.Logger

	verified netip.Addr // the address last confirmed as allocated to our handle
}

// sync allocates, keeps or releases the tunnel address as the pools in v require. The Node is read afresh:
// the watched view may not show our own last write yet, and acting on it would allocate a second address.
func (t *tunnelAllocator) sync(ctx context.Context, v view) error {
	self, err := datastore.Get[*api.Node](ctx, t.store, "", t.node)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil // not registered, or deleted by an operator: do not bring it back
	}
	if err != nil {
		return err
	}
	pools, err := tunnelPools(v.pools, self)
	if err != nil {
		return err
	}
	cur, _ := netip.ParseAddr(self.Spec.IPv4VXLANTunnelAddr)
	if len(pools) == 0 {
		if !cur.IsValid() && self.Spec.VXLANTunnelMACAddr == "" {
			return nil
		}
		if err := t.ipam.ReleaseByHandle(ctx, TunnelHandle(t.node)); err != nil {
			return fmt.Errorf("releasing the VXLAN tunnel address: %w", err)
		}
		t.log.Info("released VXLAN tunnel address: no VXLAN pool", "address", cur.String())
		return t.setNode(ctx, "", "")
	}
	if cur.IsValid() && self.Spec.VXLANTunnelMACAddr != "" && inAny(pools, cur) {
		if cur == t.verified {
			return nil
		}
		info, err := t.ipam.Allocation(ctx, cur)
		if err == nil && info.Handle == TunnelHandle(t.node) {
			t.verified = cur
			return nil
		}
		if err != nil && !errors.Is(err, ipam.ErrNotAllocated) {
			return err
		}
	}
	// Missing, outside every VXLAN pool, or not ours: start afresh.
	if err := t.ipam.ReleaseByHandle(ctx, TunnelHandle(t.node)); err != nil {
		return fmt.Errorf("releasing the old VXLAN tunnel address: %w", err)
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	addr, _, err := t.ipam.AutoAssign(ctx, ipam.Request{Family: 4, Pools: names, Handle: TunnelHandle(t.node),
		Attrs: map[string]string{"type": tunnelAddrType}})
	if err != nil {
		return fmt.Errorf("allocating the VXLAN tunnel address: %w", err)
	}
	if err := t.setNode(ctx, addr.String(), derivedMAC(t.node).String()); err != nil {
		return err // the next pass releases the handle and allocates again
	}
	t.verified = addr
	t.log.Info("allocated VXLAN tunnel address", "address", addr.String())
	return nil
}

// tunnelPools are the enabled IPv4 VXLAN pools whose nodeSelector selects n.
func tunnelPools(pools []*api.IPPool, n *api.Node) ([]*api.IPPool, error) {
	var out []*api.IPPool
	for _, p := range pools {
		if !usesVXLAN(p) {
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
func (t *tunnelAllocator) setNode(ctx context.Context, addr, mac string) error {
	for {
		n, err := datastore.Get[*api.Node](ctx, t.store, "", t.node)
		if err != nil {
			return fmt.Errorf("reading node %q: %w", t.node, err)
		}
		if n.Spec.IPv4VXLANTunnelAddr == addr && n.Spec.VXLANTunnelMACAddr == mac {
			return nil
		}
		n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = addr, mac
		err = t.store.Update(ctx, n)
		if !errors.Is(err, datastore.ErrConflict) {
			if err != nil {
				return fmt.Errorf("writing the VXLAN tunnel address on node %q: %w", t.node, err)
			}
			return nil
		}
	}
}
