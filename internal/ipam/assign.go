package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// want is an automatic assignment being planned, with the pools it may use.
type want struct {
	o     *op
	pools []*pool
}

func (w *want) open() bool { return !w.o.addr.IsValid() && w.o.err == nil }

// poolOf is the candidate pool containing cidr, nil if none.
func (w *want) poolOf(cidr netip.Prefix) *pool {
	for _, p := range w.pools {
		if p.cidr.Contains(cidr.Addr()) && p.cidr.Bits() <= cidr.Bits() {
			return p
		}
	}
	return nil
}

// planAuto plans automatic assignments of one family, as Calico does: this node's blocks first, then
// newly claimed blocks, then addresses borrowed from other nodes' blocks.
func (r *round) planAuto(fam int, ops []*op) {
	var wants []*want
	for _, o := range ops {
		pools, err := r.candidates(o)
		if err != nil {
			o.err = err
			continue
		}
		wants = append(wants, &want{o: o, pools: pools})
	}
	if len(wants) == 0 {
		return
	}
	fail := func(err error) {
		for _, w := range wants {
			if w.open() {
				w.o.err = err
			}
		}
	}
	cfg, err := r.config()
	if err != nil {
		fail(err)
		return
	}
	own, err := r.affinities(fam)
	if err != nil {
		fail(err)
		return
	}
	byCIDR := map[netip.Prefix]datastore.KV{}
	for _, kv := range own {
		if _, cidr, ok := parseAffinityKey(kv.Key); ok {
			byCIDR[cidr] = kv
		}
	}
	for _, cidr := range r.m.cache.freeFirst(slices.SortedFunc(maps.Keys(byCIDR), netip.Prefix.Compare)) {
		if !slices.ContainsFunc(wants, (*want).open) {
			return
		}
		if !slices.ContainsFunc(wants, func(w *want) bool { return w.open() && w.poolOf(cidr) != nil }) {
			continue
		}
		rec, err := r.ownBlock(byCIDR[cidr])
		if err != nil {
			fail(err)
			return
		}
		if rec != nil {
			r.fill(rec, wants, cfg)
		}
	}
	owned := len(own)
	for cfg.AutoAllocateBlocks && (cfg.MaxBlocksPerHost == 0 || owned < cfg.MaxBlocksPerHost) && slices.ContainsFunc(wants, (*want).open) {
		rec, err := r.claimFor(fam, wants)
		if err != nil {
			fail(err)
			return
		}
		if rec == nil {
			break
		}
		owned++
		r.fill(rec, wants, cfg)
	}
	if slices.ContainsFunc(wants, (*want).open) {
		if err := r.listBlocks(fam); err != nil {
			fail(err)
			return
		}
		for _, rec := range r.present(fam) {
			r.fill(rec, wants, cfg)
		}
	}
	for _, w := range wants {
		if w.open() {
			w.o.err = exhausted(fam, w.pools)
		}
	}
}

// fill assigns free addresses of a block to the open requests whose pools contain it, unless the block
// is another node's and strict affinity forbids borrowing from it.
func (r *round) fill(rec *blockRec, wants []*want, cfg *Config) {
	borrowed := rec.b.Owner() != r.m.node
	for _, w := range wants {
		if !rec.b.HasFree() {
			return
		}
		p := w.poolOf(rec.b.CIDR)
		if !w.open() || p == nil || (borrowed && p.strict(cfg)) {
			continue
		}
		a := newAttribute(w.o.handle, w.o.attrs)
		ord, ok := rec.b.AssignNext(a)
		if !ok {
			return
		}
		w.o.addr, w.o.pool = rec.b.Addr(ord), p.IPPool
		r.assigned(rec, ord, a)
	}
}

// maxClaimsPerPool bounds the subnets one round tries to claim in a pool when other nodes keep winning.
const maxClaimsPerPool = 16

// claimFor claims a new block in the first candidate pool (of the open requests) that has a free subnet;
// nil when none has.
func (r *round) claimFor(fam int, wants []*want) (*blockRec, error) {
	if err := r.listBlocks(fam); err != nil {
		return nil, err
	}
	taken := func(cidr netip.Prefix) bool {
		rec, ok := r.blocks[cidr]
		return ok && rec.b != nil
	}
	var tried []*pool
	for _, w := range wants {
		for _, p := range w.pools {
			if !w.open() || slices.Contains(tried, p) {
				continue
			}
			tried = append(tried, p)
			for range maxClaimsPerPool {
				cidr, ok := r.m.freeSubnet(p, taken)
				if !ok {
					break
				}
				rec, err := r.claim(cidr)
				if !errors.Is(err, errClaimConflict) {
					return rec, err
				}
			}
		}
	}
	return nil, nil
}

// planAssign plans the allocation of specific addresses (AssignIP).
func (r *round) planAssign(o *op) {
	p, err := r.enabledPoolFor(o.ip)
	if err == nil && p == nil {
		err = newError(ErrNoPool, "%s is not in any enabled IP pool", o.ip)
	}
	if err != nil {
		o.err = err
		return
	}
	cidr := blockFor(o.ip, p.Spec.BlockSize)
	rec, err := r.block(cidr)
	if err == nil && rec.b == nil {
		if rec, err = r.claim(cidr); errors.Is(err, errClaimConflict) {
			rec, err = r.blocks[cidr], nil
		}
	}
	if err == nil && rec.b == nil {
		err = fmt.Errorf("block %s was created and deleted again while claiming it; try again", cidr)
	}
	if err != nil {
		o.err = err
		return
	}
	cfg, err := r.config()
	if err != nil {
		o.err = err
		return
	}
	if owner := rec.b.Owner(); owner != r.m.node && p.strict(cfg) {
		o.err = newError(ErrInUse, "address %s is in block %s of node %q, and strict affinity forbids borrowing it", o.ip, cidr, owner)
		return
	}
	ord, _ := rec.b.Ordinal(o.ip)
	a := newAttribute(o.handle, o.attrs)
	if !rec.b.AssignAt(ord, a) {
		o.err = newError(ErrInUse, "address %s is already in use", o.ip)
		return
	}
	o.addr, o.pool = o.ip, p.IPPool
	r.assigned(rec, ord, a)
}
