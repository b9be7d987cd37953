package ipam

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// DeletePool deletes an IPPool together with its blocks and block affinities. It refuses while the pool
// still holds allocations, unless force, which releases them (updating their handles). The pool is
// disabled first, so that no address is allocated from it while its blocks are removed.
func (m *IPAM) DeletePool(ctx context.Context, name string, force bool) error {
	ip, err := datastore.Get[*api.IPPool](ctx, m.store, "", name)
	if err != nil {
		return err
	}
	cidr, err := netip.ParsePrefix(ip.Spec.CIDR)
	if err != nil {
		return fmt.Errorf("IP pool %q has an invalid CIDR: %w", name, err)
	}
	p := &pool{IPPool: ip, cidr: cidr.Masked()}
	blocks, err := m.poolBlocks(ctx, p)
	if err != nil {
		return err
	}
	if n := inUse(blocks); n > 0 && !force {
		return newError(ErrInUse, "IP pool %s still has %d addresses in use: release them first, or force the deletion to release them", p, n)
	}
	if !ip.Spec.Disabled {
		ip.Spec.Disabled = true
		if err := m.store.Update(ctx, ip); err != nil {
			return fmt.Errorf("disabling IP pool %q before deleting it: %w", name, err)
		}
	}
	for _, b := range blocks {
		if err := m.dropBlock(ctx, b.CIDR, force); err != nil {
			return err
		}
	}
	if err := m.dropAffinities(ctx, p); err != nil {
		return err
	}
	return m.store.DeleteResource(ctx, api.KindOf(ip), "", name, ip.ResourceVersion)
}

// poolBlocks lists the blocks inside a pool.
func (m *IPAM) poolBlocks(ctx context.Context, p *pool) ([]*Block, error) {
	r := m.newRound(ctx)
	if err := r.listBlocks(family(p.cidr)); err != nil {
		return nil, err
	}
	var out []*Block
	for _, rec := range r.present(family(p.cidr)) {
		if p.cidr.Overlaps(rec.b.CIDR) {
			out = append(out, rec.b)
		}
	}
	return out, nil
}

func inUse(blocks []*Block) int {
	n := 0
	for _, b := range blocks {
		n += b.InUse()
	}
	return n
}

// dropBlock deletes a block with its affinity (and, with force, its allocations) in one transaction.
func (m *IPAM) dropBlock(ctx context.Context, cidr netip.Prefix, force bool) error {
	for attempt := 1; ; attempt++ {
		r := m.newRound(ctx)
		rec, err := r.block(cidr)
		if err != nil || rec.b == nil {
			return err
		}
		if n := rec.b.InUse(); n > 0 && !force {
			return newError(ErrInUse, "block %s got %d addresses allocated while its pool was being deleted; the pool is disabled now, delete it again", cidr, n)
		}
		var held []int
		for ord := range rec.b.Allocated() {
			held = append(held, ord)
		}
		for _, ord := range held {
			r.release(rec, ord)
		}
		if owner := rec.b.Owner(); owner != "" {
			r.extra = append(r.extra, datastore.Del(affinityKey(owner, cidr), 0))
		}
		rec.b.SetOwner("")
		rec.dirty = true
		if err = r.commit(); !isConflict(err) {
			return err
		}
		if attempt >= maxRetries {
			return newError(ErrTooManyRetries, "too many concurrent IPAM updates to block %s", cidr)
		}
	}
}

// dropAffinities removes the affinities left inside a pool whose blocks are gone (claims never finished).
func (m *IPAM) dropAffinities(ctx context.Context, p *pool) error {
	kvs, _, err := m.store.List(ctx, hostPrefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if _, cidr, ok := parseAffinityKey(kv.Key); ok && p.cidr.Overlaps(cidr) {
			if err := m.store.DeleteKey(ctx, kv.Key, kv.Revision); err != nil && !isConflict(err) {
				return err
			}
		}
	}
	return nil
}
