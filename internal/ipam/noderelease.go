package ipam

import (
	"context"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// maxReleasesPerRound keeps one block's release transaction, which also rewrites a handle per address,
// within etcd's limit of 128 operations.
const maxReleasesPerRound = 100

// ReleaseNode frees what a removed node held, as calicoctl delete node does upstream: every address
// allocated to it (its "node" attribute, borrowed ones included), and its blocks and affinities. Its
// blocks are deleted when nothing is left in them, otherwise kept without affinity for the addresses of
// other nodes.
func (m *IPAM) ReleaseNode(ctx context.Context, node string) error {
	r := m.newRound(ctx)
	if err := r.listBlocks(0); err != nil {
		return err
	}
	for _, rec := range r.present(0) {
		if err := m.releaseNodeBlock(ctx, node, rec.b.CIDR); err != nil {
			return err
		}
	}
	kvs, _, err := m.store.List(ctx, hostPrefix+node+"/")
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := m.store.DeleteKey(ctx, kv.Key, kv.Revision); err != nil && !isConflict(err) {
			return err
		}
	}
	return nil
}

// releaseNodeBlock frees node's addresses in one block and takes the block from node if it is affine to
// it, retrying on concurrent changes.
func (m *IPAM) releaseNodeBlock(ctx context.Context, node string, cidr netip.Prefix) error {
	for attempt := 1; ; attempt++ {
		r := m.newRound(ctx)
		rec, err := r.block(cidr)
		if err != nil || rec.b == nil {
			return err
		}
		var held []int
		for ord, a := range rec.b.Allocated() {
			if a.Secondary[AttrNode] == node && len(held) < maxReleasesPerRound {
				held = append(held, ord)
			}
		}
		for _, ord := range held {
			r.release(rec, ord)
		}
		last := len(held) < maxReleasesPerRound
		if last && rec.b.Owner() == node {
			rec.b.SetOwner("")
			rec.b.ClaimTime = ""
			rec.dirty = true
			r.extra = append(r.extra, datastore.Del(affinityKey(node, cidr), 0))
		}
		if !rec.dirty {
			return nil
		}
		err = r.commit()
		switch {
		case err == nil && last:
			return nil
		case err == nil:
			attempt = 0 // a full round of releases went through; more to go
		case !isConflict(err):
			return err
		case attempt >= maxRetries:
			return newError(ErrTooManyRetries, "too many concurrent IPAM updates to block %s", cidr)
		}
	}
}
