package ipam

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// errClaimConflict: another node created the block we were claiming; pick another.
var errClaimConflict = errors.New("block claimed by another node")

// claim makes cidr a block affine to this node the way Calico does, so that two nodes never both take it
// for theirs: mark our affinity pending, create the block only if it does not exist, confirm the
// affinity. If another node's block is already there we withdraw and return errClaimConflict (the
// round then knows that block, so the next free-subnet search skips it). An interrupted claim leaves a
// pending affinity, which ownBlock finishes later.
func (r *round) claim(cidr netip.Prefix) (*blockRec, error) {
	m := r.m
	if err := m.pendAffinity(r.ctx, cidr); err != nil {
		return nil, err
	}
	b := NewBlock(cidr, m.node, time.Now())
	raw := mustJSON(b)
	rev, err := m.store.Txn(r.ctx, datastore.Put(BlockKey(cidr), raw, 0))
	rec := &blockRec{b: b, rev: rev, raw: raw}
	switch {
	case err == nil:
		r.blocks[cidr] = rec
	case errors.Is(err, datastore.ErrExists):
		delete(r.blocks, cidr)
		if rec, err = r.block(cidr); err != nil {
			return nil, err
		}
		if rec.b == nil || rec.b.Owner() != m.node {
			m.withdrawAffinity(r.ctx, cidr)
			return nil, errClaimConflict
		}
	default:
		return nil, err
	}
	return rec, m.confirmAffinity(r.ctx, cidr)
}

// pendAffinity creates this node's affinity for cidr in state pending, or moves an existing unconfirmed
// one back to pending.
func (m *IPAM) pendAffinity(ctx context.Context, cidr netip.Prefix) error {
	key := affinityKey(m.node, cidr)
	pending := mustJSON(affinity{State: statePending})
	for attempt := 0; ; attempt++ {
		_, err := m.store.Txn(ctx, datastore.Put(key, pending, 0))
		if !errors.Is(err, datastore.ErrExists) {
			return err
		}
		kv, err := m.store.Get(ctx, key)
		if errors.Is(err, datastore.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		a, err := decodeAffinity(kv.Value)
		if err == nil && a.confirmed() {
			return nil
		}
		a.State = statePending
		_, err = m.store.Txn(ctx, datastore.Put(key, mustJSON(a), kv.Revision))
		if !isConflict(err) || attempt >= maxRetries {
			return err
		}
	}
}

// confirmAffinity marks this node's affinity for cidr confirmed (creating it if it vanished). Someone
// else confirming it first is fine.
func (m *IPAM) confirmAffinity(ctx context.Context, cidr netip.Prefix) error {
	key := affinityKey(m.node, cidr)
	for attempt := 0; ; attempt++ {
		var a affinity
		var rev int64
		kv, err := m.store.Get(ctx, key)
		switch {
		case errors.Is(err, datastore.ErrNotFound):
		case err != nil:
			return err
		default:
			if a, err = decodeAffinity(kv.Value); err == nil && a.confirmed() {
				return nil
			}
			rev = kv.Revision
		}
		a.State = stateConfirmed
		_, err = m.store.Txn(ctx, datastore.Put(key, mustJSON(a), rev))
		if !isConflict(err) || attempt >= maxRetries {
			return err
		}
	}
}

// withdrawAffinity removes this node's pending affinity for a block another node owns. Failing here only
// leaves a stale affinity, which ownBlock removes later, so errors are just logged.
func (m *IPAM) withdrawAffinity(ctx context.Context, cidr netip.Prefix) {
	key := affinityKey(m.node, cidr)
	kv, err := m.store.Get(ctx, key)
	if err == nil {
		if a, derr := decodeAffinity(kv.Value); derr == nil && !a.confirmed() {
			err = m.store.DeleteKey(ctx, key, kv.Revision)
		}
	}
	if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		m.log.Warn("could not withdraw block affinity", "block", cidr.String(), "error", err.Error())
	}
}

// affinities lists this node's block affinities of a family (once per round).
func (r *round) affinities(fam int) ([]datastore.KV, error) {
	l := &r.own[fam/6] // 4 → 0, 6 → 1
	if !l.read {
		l.kvs, _, l.err = r.m.store.List(r.ctx, affinityListPrefix(r.m.node, fam))
		l.read = true
	}
	return l.kvs, l.err
}

// ownBlock returns the block of one of this node's affinities, nil if it is not usable: it finishes an
// interrupted claim and drops the affinity if the block now belongs to another node.
func (r *round) ownBlock(kv datastore.KV) (*blockRec, error) {
	m := r.m
	_, cidr, ok := parseAffinityKey(kv.Key)
	a, err := decodeAffinity(kv.Value)
	if !ok || err != nil || a.State == statePendingDeletion {
		return nil, nil
	}
	rec, err := r.block(cidr)
	switch {
	case err != nil:
	case rec.b == nil:
		rec, err = r.claim(cidr)
	case rec.b.Owner() != m.node:
		m.log.Info("removing stale block affinity", "block", cidr.String(), "owner", rec.b.Owner())
		if err = m.store.DeleteKey(r.ctx, kv.Key, kv.Revision); isConflict(err) {
			err = nil // someone else removed or changed it first
		}
		rec = nil
	case !a.confirmed():
		err = m.confirmAffinity(r.ctx, cidr)
	}
	if errors.Is(err, errDamaged) || errors.Is(err, errClaimConflict) {
		m.log.Warn("skipping block", "block", cidr.String(), "error", err.Error())
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}
