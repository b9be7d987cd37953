package calicoctl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// deleteNode removes a node the way upstream calicoctl does, so that nothing of it is left routed or
// reserved: its workload endpoints and their addresses, every other address allocated to it (tunnel
// address, borrowed ones), its IPAM blocks and affinities, then the Node itself.
func deleteNode(ctx context.Context, store *datastore.Store, n *api.Node) error {
	id := objectID(n)
	if _, err := datastore.Get[*api.Node](ctx, store, "", n.Name); err != nil {
		return describeError(id, err)
	}
	addrs := ipam.New(store, ipam.Options{Node: n.Name})
	weps, err := datastore.List[*api.WorkloadEndpoint](ctx, store, "")
	if err != nil {
		return err
	}
	for _, w := range weps {
		if w.Spec.Node != n.Name {
			continue
		}
		err := store.DeleteResource(ctx, api.KindOf(w), w.Namespace, w.Name, w.ResourceVersion)
		if err != nil && !errors.Is(err, datastore.ErrNotFound) {
			return fmt.Errorf("deleting the endpoints of node %s: %w", n.Name, err)
		}
		for _, cidr := range w.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(cidr); err == nil {
				if _, err := addrs.ReleaseIP(ctx, p.Addr()); err != nil {
					return fmt.Errorf("releasing %s of node %s: %w", p.Addr(), n.Name, err)
				}
			}
		}
	}
	if err := addrs.ReleaseNode(ctx, n.Name); err != nil {
		return fmt.Errorf("releasing the IPAM blocks of node %s: %w", n.Name, err)
	}
	return describeError(id, store.DeleteResource(ctx, api.KindOf(n), "", n.Name, n.ResourceVersion))
}
