package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

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
	cfgErr    error
	labels    map[string]string
	labelsOK  bool
	own       [2]struct { // this node's affinities, IPv4 and IPv6
		kvs  []datastore.KV
		err  error
		read bool
	}

	blocks    map[netip.Prefix]*blockRec
	listed    map[int]bool              // families whose blocks are all in blocks
	handles   map[string]map[string]int // handle → block CIDR → change of its count
	fetched   map[string]*handleRead    // handles read ahead, complete once fetchDone is closed
	fetchDone chan struct{}
	extra     []datastore.Op // further writes of the same transaction
	expect    []expectation  // what the blocks show if the transaction was applied
}

// blockRec is a block as read in this round (b nil: there is no such block).
type blockRec struct {
	b     *Block
	rev   int64
	raw   []byte // the stored value at rev
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
	if BlockKey(b.CIDR) != kv.Key {
		return nil, fmt.Errorf("%w %s: it holds CIDR %s", errDamaged, kv.Key, b.CIDR)
	}
	return &b, nil
}

// readBlock decodes a stored block, reusing this node's cached copy when the revision matches.
func (m *IPAM) readBlock(kv datastore.KV) (*Block, error) {
	if cidr, ok := parseBlockKey(kv.Key); ok {
		if b := m.cache.get(cidr, kv.Revision); b != nil {
			return b, nil
		}
	}
	b, err := decodeBlock(kv)
	if err == nil && b.Owner() == m.node {
		m.cache.put(b.CIDR, kv.Revision, b)
	}
	return b, err
}

// blockPage is how many blocks eachBlock reads at a time.
const blockPage = 100

// eachBlock calls fn with every block of the cluster, reading them a page at a time so that a large
// cluster's blocks are never held whole, and skipping (with a warning) those that do not decode.
func (m *IPAM) eachBlock(ctx context.Context, fn func(*Block)) error {
	return m.store.ListPages(ctx, blockListPrefix(0), blockPage, func(page []datastore.KV, _ int64, _ bool) error {
		for _, kv := range page {
			b, err := m.readBlock(kv)
			if err != nil {
				m.log.Warn("skipping IPAM block", "error", err.Error())
				continue
			}
			fn(b)
		}
		return nil
	})
}

// block reads the block at cidr (once per round).
func (r *round) block(cidr netip.Prefix) (*blockRec, error) {
	if rec, ok := r.blocks[cidr]; ok {
		return rec, nil
	}
	rec := &blockRec{}
	kv, err := r.m.store.Get(r.ctx, BlockKey(cidr))
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		r.m.cache.drop(cidr)
	case err != nil:
		return nil, err
	default:
		if rec.b, err = r.m.readBlock(kv); err != nil {
			return nil, err
		}
		rec.rev, rec.raw = kv.Revision, kv.Value
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
		b, err := r.m.readBlock(kv)
		if err != nil {
			r.m.log.Warn("skipping IPAM block", "error", err.Error())
			continue
		}
		if rec, ok := r.blocks[b.CIDR]; !ok || rec.b == nil {
			r.blocks[b.CIDR] = &blockRec{b: b, rev: kv.Revision, raw: kv.Value}
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
	slices.SortFunc(out, func(a, b *blockRec) int { return a.b.CIDR.Compare(b.b.CIDR) })
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
	if r.cfg == nil && r.cfgErr == nil {
		c, _, err := r.m.readConfig(r.ctx)
		r.cfg, r.cfgErr = &c, err
	}
	if r.cfgErr != nil {
		return nil, r.cfgErr
	}
	return r.cfg, nil
}

// preload reads in parallel what planning the ops starts with: the pools, and for assignments the IPAM
// configuration and this node's affinities. Under load every etcd read waits for the writes in flight, so
// reading them one after another would add up those waits.
func (r *round) preload(ops []*op) {
	var wg sync.WaitGroup
	for _, fam := range []int{4, 6} {
		if slices.ContainsFunc(ops, func(o *op) bool { return o.kind == opAuto && o.family == fam }) {
			wg.Go(func() { _, _ = r.affinities(fam) })
		}
	}
	wg.Go(func() { _, _ = r.allPools() })
	if slices.ContainsFunc(ops, func(o *op) bool { return o.kind == opAuto || o.kind == opAssign }) {
		wg.Go(func() { _, _ = r.config() })
	}
	wg.Wait()
}
