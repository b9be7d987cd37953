package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// assigned records a new allocation: the block is rewritten and the handle's count raised.
func (r *round) assigned(rec *blockRec, ord int, a Attribute) {
	r.note(rec, ord, a, true)
	r.countHandle(a.Handle(), rec.b.CIDR, 1)
}

// release frees an allocation and lowers its handle's count.
func (r *round) release(rec *blockRec, ord int) {
	if a := rec.b.Release(ord); a != nil {
		r.note(rec, ord, *a, false)
		r.countHandle(a.Handle(), rec.b.CIDR, -1)
	}
}

// note marks the block for rewriting and remembers that ord holds (or no longer holds) a, to verify an
// interrupted commit.
func (r *round) note(rec *blockRec, ord int, a Attribute, present bool) {
	rec.dirty = true
	r.expect = append(r.expect, expectation{cidr: rec.b.CIDR, ord: ord, attr: a, present: present})
}

func (r *round) countHandle(handle string, cidr netip.Prefix, delta int) {
	if handle == "" {
		return
	}
	if r.handles[handle] == nil {
		r.handles[handle] = map[string]int{}
	}
	r.handles[handle][cidr.String()] += delta
}

// commit writes the changed blocks (deleting those left empty and affine to no node, as Calico does) and
// the changed handles in one transaction.
func (r *round) commit() error {
	var ops []datastore.Op
	var written []*Block
	for _, rec := range r.blocks {
		if !rec.dirty {
			continue
		}
		b := rec.b
		b.Compact()
		key := BlockKey(b.CIDR)
		r.m.cache.drop(b.CIDR)
		if b.InUse() == 0 && b.Affinity == nil {
			ops = append(ops, datastore.Del(key, rec.rev))
			continue
		}
		b.Sequence++
		ops = append(ops, datastore.Put(key, mustJSON(b), rec.rev))
		written = append(written, b)
	}
	hops, err := r.handleOps()
	if err != nil {
		return err
	}
	ops = append(append(ops, hops...), r.extra...)
	if len(ops) == 0 {
		return nil
	}
	rev, err := r.m.store.Txn(r.ctx, ops...)
	for _, b := range written {
		if err == nil && b.Owner() == r.m.node {
			r.m.cache.put(b.CIDR, rev, b)
		}
	}
	return err
}

// handleConcurrency bounds the parallel handle reads of one round.
const handleConcurrency = 16

// handleRead is a handle record as read, with its revision (0: it does not exist).
type handleRead struct {
	h   handleRecord
	rev int64
	err error
}

// prefetchHandles starts reading the handles that the ops' allocations will change, so that these reads
// (one per request of a batch) overlap the planning instead of delaying the commit.
func (r *round) prefetchHandles(ops []*op) {
	r.fetched = map[string]*handleRead{}
	for _, o := range ops {
		if o.handle != "" && (o.kind == opAuto || o.kind == opAssign) {
			r.fetched[o.handle] = &handleRead{}
		}
	}
	if len(r.fetched) == 0 {
		return
	}
	r.fetchDone = make(chan struct{})
	go func() {
		defer close(r.fetchDone)
		r.m.readHandles(r.ctx, r.fetched)
	}()
}

// readHandles fills reads in parallel.
func (m *IPAM) readHandles(ctx context.Context, reads map[string]*handleRead) {
	sem := make(chan struct{}, handleConcurrency)
	var wg sync.WaitGroup
	for id, rd := range reads {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rd.h, rd.rev, rd.err = m.readHandle(ctx, id)
		})
	}
	wg.Wait()
}

func isNonZero(d int) bool { return d != 0 }

// handleOps returns the compare-and-swap writes of the handles this round changes, reading those not
// read ahead.
func (r *round) handleOps() ([]datastore.Op, error) {
	if r.fetchDone != nil {
		<-r.fetchDone
	}
	reads := map[string]*handleRead{}
	missing := map[string]*handleRead{}
	for id, deltas := range r.handles {
		if !slices.ContainsFunc(slices.Collect(maps.Values(deltas)), isNonZero) {
			continue // e.g. an address released and reassigned to the same handle in one round
		}
		if rd, ok := r.fetched[id]; ok {
			reads[id] = rd
		} else {
			missing[id] = &handleRead{}
			reads[id] = missing[id]
		}
	}
	r.m.readHandles(r.ctx, missing)
	ops := make([]datastore.Op, 0, len(reads))
	for _, id := range slices.Sorted(maps.Keys(reads)) {
		h, rev := reads[id].h, reads[id].rev
		if reads[id].err != nil {
			return nil, reads[id].err
		}
		counts := maps.Clone(h.Block)
		if counts == nil {
			counts = map[string]int{}
		}
		for cidr, d := range r.handles[id] {
			if counts[cidr] += d; counts[cidr] <= 0 {
				delete(counts, cidr)
			}
		}
		h.Block = counts
		switch {
		case len(counts) > 0:
			ops = append(ops, datastore.Put(handleKey(id), mustJSON(h), rev))
		case rev != 0:
			ops = append(ops, datastore.Del(handleKey(id), rev))
		}
	}
	return ops, nil
}

func (m *IPAM) readHandle(ctx context.Context, id string) (handleRecord, int64, error) {
	var h handleRecord
	kv, err := m.store.Get(ctx, handleKey(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return h, 0, nil
	}
	if err != nil {
		return h, 0, err
	}
	if err := json.Unmarshal(kv.Value, &h); err != nil {
		return h, 0, fmt.Errorf("%w %s: %v", errDamaged, kv.Key, err)
	}
	return h, kv.Revision, nil
}

// verifyTimeout bounds how long a round waits for etcd to say whether an interrupted write was applied.
const verifyTimeout = 30 * time.Second

// applied decides whether a transaction that failed without an answer (connection lost, context ended)
// was applied anyway. Reading alone cannot tell, because the transaction may still be in flight and apply
// after the read. So it first fences: it rewrites one of the changed blocks, unchanged, on the condition
// that it is still at the revision the transaction was conditioned on. If the fence succeeds the
// transaction had not been applied and now never can be; if it fails the block has moved on, so the
// transaction has either been applied or never will be, and the blocks show which. It keeps trying (even
// after the caller's context has ended) until etcd answers or verifyTimeout.
func (r *round) applied() (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), verifyTimeout)
	defer cancel()
	var fence *blockRec
	for _, rec := range r.blocks {
		if rec.dirty && rec.rev != 0 {
			fence = rec
			break
		}
	}
	if fence == nil {
		return false, errors.New("no block to check the outcome with")
	}
	delay := 50 * time.Millisecond
	for {
		_, err := r.m.store.Txn(ctx, datastore.Put(BlockKey(fence.b.CIDR), fence.raw, fence.rev))
		if err == nil {
			return false, nil
		}
		if isConflict(err) {
			ok, rerr := r.inStore(ctx)
			if rerr == nil {
				return ok, nil
			}
			err = rerr
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// inStore checks the expectations against the stored blocks, once the fence guarantees the transaction
// is settled. New allocations decide when there are any: nobody else can have made an allocation equal to
// ours, while someone else may have released an address.
func (r *round) inStore(ctx context.Context) (bool, error) {
	creates := slices.ContainsFunc(r.expect, func(e expectation) bool { return e.present })
	fresh := map[netip.Prefix]*Block{}
	for _, e := range r.expect {
		if creates && !e.present {
			continue
		}
		b, ok := fresh[e.cidr]
		if !ok {
			kv, err := r.m.store.Get(ctx, BlockKey(e.cidr))
			switch {
			case errors.Is(err, datastore.ErrNotFound):
			case err != nil:
				return false, err
			default:
				if b, err = decodeBlock(kv); err != nil {
					return false, err
				}
			}
			fresh[e.cidr] = b
		}
		var a *Attribute
		if b != nil {
			a = b.Attr(e.ord)
		}
		if (a != nil && a.equal(&e.attr)) != e.present {
			return false, nil
		}
	}
	return len(r.expect) > 0, nil
}
