package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// round is one attempt at a set of operations. It reads each record at most once, so the operations of a
// batch see each other's changes, and commit writes every changed block and handle in one transaction.
type round struct {
	m   *IPAM
	ctx context.Context

	pools     []*pool
	poolsErr  error
	poolsRead bool
	cfg       *Config
	labels    map[string]string
	labelsOK  bool

	blocks  map[netip.Prefix]*blockRec
	listed  map[int]bool              // families whose blocks are all in blocks
	handles map[string]map[string]int // handle → block CIDR → change of its count
	extra   []datastore.Op            // further writes of the same transaction
	expect  []expectation             // what the blocks show if the transaction was applied
}

// blockRec is a block as read in this round (b nil: there is no such block).
type blockRec struct {
	b     *Block
	rev   int64
	dirty bool
}

// expectation is one allocation the commit creates (present) or removes.
type expectation struct {
	cidr    netip.Prefix
	ord     int
	attr    Attribute
	present bool
}

func (m *IPAM) newRound(ctx context.Context) *round {
	return &round{m: m, ctx: ctx, blocks: map[netip.Prefix]*blockRec{}, listed: map[int]bool{},
		handles: map[string]map[string]int{}}
}

// errDamaged marks records that cannot be decoded; they are skipped (with a warning) rather than
// blocking every request.
var errDamaged = errors.New("damaged IPAM record")

func decodeBlock(kv datastore.KV) (*Block, error) {
	var b Block
	if err := json.Unmarshal(kv.Value, &b); err != nil {
		return nil, fmt.Errorf("%w %s: %v", errDamaged, kv.Key, err)
	}
	if blockKey(b.CIDR) != kv.Key {
		return nil, fmt.Errorf("%w %s: it holds CIDR %s", errDamaged, kv.Key, b.CIDR)
	}
	return &b, nil
}

// block reads the block at cidr (once per round).
func (r *round) block(cidr netip.Prefix) (*blockRec, error) {
	if rec, ok := r.blocks[cidr]; ok {
		return rec, nil
	}
	rec := &blockRec{}
	kv, err := r.m.store.Get(r.ctx, blockKey(cidr))
	switch {
	case errors.Is(err, datastore.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if rec.b, err = decodeBlock(kv); err != nil {
			return nil, err
		}
		rec.rev = kv.Revision
	}
	r.blocks[cidr] = rec
	return rec, nil
}

// listBlocks reads every block of a family (0: both) that this round has not read yet.
func (r *round) listBlocks(fam int) error {
	if r.listed[fam] || r.listed[0] {
		return nil
	}
	kvs, _, err := r.m.store.List(r.ctx, blockListPrefix(fam))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		b, err := decodeBlock(kv)
		if err != nil {
			r.m.log.Warn("skipping IPAM block", "error", err.Error())
			continue
		}
		if rec, ok := r.blocks[b.CIDR]; !ok || rec.b == nil {
			r.blocks[b.CIDR] = &blockRec{b: b, rev: kv.Revision}
		}
	}
	r.listed[fam] = true
	return nil
}

// present lists the blocks read so far of a family (0: both), in address order.
func (r *round) present(fam int) []*blockRec {
	var out []*blockRec
	for cidr, rec := range r.blocks {
		if rec.b != nil && (fam == 0 || family(cidr) == fam) {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b *blockRec) int { return a.b.CIDR.Addr().Compare(b.b.CIDR.Addr()) })
	return out
}

// locate finds the block holding ip and its ordinal there; false if no block holds it.
func (r *round) locate(ip netip.Addr) (*blockRec, int, bool, error) {
	if !ip.IsValid() || ip.IsUnspecified() {
		return nil, 0, false, nil
	}
	pools, err := r.allPools()
	if err != nil {
		return nil, 0, false, err
	}
	for _, p := range pools {
		if p.cidr.Contains(ip) {
			rec, err := r.block(blockFor(ip, p.Spec.BlockSize))
			if err != nil {
				return nil, 0, false, err
			}
			if rec.b != nil {
				ord, _ := rec.b.Ordinal(ip)
				return rec, ord, true, nil
			}
		}
	}
	// No pool says where its block is (the pool is gone, or its block size changed): look at them all.
	fam := 4
	if ip.Is6() {
		fam = 6
	}
	if err := r.listBlocks(fam); err != nil {
		return nil, 0, false, err
	}
	for _, rec := range r.present(fam) {
		if ord, ok := rec.b.Ordinal(ip); ok {
			return rec, ord, true, nil
		}
	}
	return nil, 0, false, nil
}

// config reads the IPAM configuration (once per round).
func (r *round) config() (*Config, error) {
	if r.cfg == nil {
		c, _, err := r.m.readConfig(r.ctx)
		if err != nil {
			return nil, err
		}
		r.cfg = &c
	}
	return r.cfg, nil
}

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
	for _, rec := range r.blocks {
		if !rec.dirty {
			continue
		}
		b := rec.b
		b.Compact()
		key := blockKey(b.CIDR)
		if b.InUse() == 0 && b.Affinity == nil {
			ops = append(ops, datastore.Del(key, rec.rev))
			continue
		}
		b.Sequence++
		ops = append(ops, datastore.Put(key, mustJSON(b), rec.rev))
	}
	hops, err := r.handleOps()
	if err != nil {
		return err
	}
	ops = append(append(ops, hops...), r.extra...)
	if len(ops) == 0 {
		return nil
	}
	_, err = r.m.store.Txn(r.ctx, ops...)
	return err
}

// handleConcurrency bounds the parallel handle reads of one commit.
const handleConcurrency = 16

// handleOps reads the handles this round changes (in parallel: a batch may touch dozens) and returns
// their compare-and-swap writes.
func (r *round) handleOps() ([]datastore.Op, error) {
	var ids []string
	for id, deltas := range r.handles {
		for _, d := range deltas {
			if d != 0 {
				ids = append(ids, id)
				break
			}
		}
	}
	type read struct {
		h   handleRecord
		rev int64
		err error
	}
	reads := make([]read, len(ids))
	sem := make(chan struct{}, handleConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			reads[i].h, reads[i].rev, reads[i].err = r.m.readHandle(r.ctx, id)
		})
	}
	wg.Wait()
	ops := make([]datastore.Op, 0, len(ids))
	for i, id := range ids {
		h, rev := reads[i].h, reads[i].rev
		if reads[i].err != nil {
			return nil, reads[i].err
		}
		if h.Block == nil {
			h.Block = map[string]int{}
		}
		for cidr, d := range r.handles[id] {
			if h.Block[cidr] += d; h.Block[cidr] <= 0 {
				delete(h.Block, cidr)
			}
		}
		switch {
		case len(h.Block) > 0:
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
// was applied anyway, by reading the blocks back: its new allocations are there, or its releases are
// gone. It keeps trying (even if the caller's context has ended) until etcd answers or verifyTimeout.
func (r *round) applied() (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), verifyTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		ok, err := r.inStore(ctx)
		if err == nil {
			return ok, nil
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// inStore checks the expectations against the stored blocks. New allocations decide when there are any:
// nobody else can have made an allocation equal to ours, while someone else may have released an address.
func (r *round) inStore(ctx context.Context) (bool, error) {
	creates := slices.ContainsFunc(r.expect, func(e expectation) bool { return e.present })
	fresh := map[netip.Prefix]*Block{}
	for _, e := range r.expect {
		if creates && !e.present {
			continue
		}
		b, ok := fresh[e.cidr]
		if !ok {
			kv, err := r.m.store.Get(ctx, blockKey(e.cidr))
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
