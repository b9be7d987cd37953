package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// etcd's defaults bound a transaction: --max-txn-ops 128 and --max-request-bytes 1.5 MiB.
const (
	batchOps   = 128
	batchBytes = 1 << 20
	writers    = 4
)

// loadStats says what the loader wrote.
type loadStats struct {
	Keys    int           `json:"keys"`
	Bytes   int           `json:"bytes"`
	Weps    int           `json:"weps"`
	Took    time.Duration `json:"took"`
	EtcdRev int64         `json:"etcdRevision"`
}

// batcher commits creations in transactions of batchOps, writers at a time.
type batcher struct {
	ctx   context.Context
	store *datastore.Store
	work  chan []datastore.Op
	wg    sync.WaitGroup
	errMu sync.Mutex
	err   error
	batch []datastore.Op
	size  int
	stats loadStats
}

func newBatcher(ctx context.Context, store *datastore.Store) *batcher {
	b := &batcher{ctx: ctx, store: store, work: make(chan []datastore.Op, writers)}
	for range writers {
		b.wg.Go(func() {
			for ops := range b.work {
				if _, err := store.Txn(ctx, ops...); err != nil {
					b.errMu.Lock()
					b.err = firstError(b.err, fmt.Errorf("writing %d keys from %s: %w", len(ops), ops[0].Key, err))
					b.errMu.Unlock()
				}
			}
		})
	}
	return b
}

func firstError(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (b *batcher) add(op datastore.Op) {
	if len(b.batch) == batchOps || (len(b.batch) > 0 && b.size+len(op.Value) > batchBytes) {
		b.flush()
	}
	b.batch = append(b.batch, op)
	b.size += len(op.Key) + len(op.Value)
	b.stats.Keys++
	b.stats.Bytes += len(op.Key) + len(op.Value)
}

// create adds a resource's creation, as Store.Create writes it.
func (b *batcher) create(o api.Object) error {
	op, err := datastore.CreateOp(o)
	if err != nil {
		return err
	}
	if _, ok := o.(*api.WorkloadEndpoint); ok {
		b.stats.Weps++
	}
	b.add(op)
	return nil
}

func (b *batcher) block(blk *ipam.Block) error {
	raw, err := json.Marshal(blk)
	if err != nil {
		return err
	}
	b.add(datastore.Put(ipam.BlockKey(blk.CIDR), raw, 0))
	return nil
}

func (b *batcher) flush() {
	if len(b.batch) > 0 {
		b.work <- b.batch
	}
	b.batch, b.size = nil, 0
}

// wait commits what is left and returns the first error.
func (b *batcher) wait() error {
	b.flush()
	close(b.work)
	b.wg.Wait()
	return b.err
}

// load writes the whole simulated cluster but this host's Node (its daemon registers it): pool, profiles,
// Nodes, IPAM blocks, endpoints, policies, the probe policy and endpoint, and this host's containers.
func load(ctx context.Context, store *datastore.Store, c *cluster) (loadStats, error) {
	start := time.Now()
	b := newBatcher(ctx, store)
	fail := func(err error) (loadStats, error) {
		_ = b.wait()
		return loadStats{}, err
	}
	objs := append([]api.Object{ipPool()}, c.profiles()...)
	for n := range c.remote {
		objs = append(objs, c.node(n))
	}
	for _, o := range objs {
		if err := b.create(o); err != nil {
			return fail(err)
		}
	}
	occupied := c.initialOccupancy()
	for n := range c.remote + 1 {
		for _, blk := range c.blocks(n, occupied[n]) {
			if err := b.block(blk); err != nil {
				return fail(err)
			}
		}
	}
	for j := range c.Endpoints {
		w, err := c.wep(endpoint{seq: j, at: c.initialSlot(j)})
		if err == nil {
			err = b.create(w)
		}
		if err != nil {
			return fail(err)
		}
	}
	extra := append(c.policies(), probe())
	probeWEP, err := c.probeWEP(false)
	if err != nil {
		return fail(err)
	}
	extra = append(extra, probeWEP)
	for i := range c.Local {
		w, err := c.localWEP(i)
		if err != nil {
			return fail(err)
		}
		extra = append(extra, w)
	}
	for _, o := range extra {
		if err := b.create(o); err != nil {
			return fail(err)
		}
	}
	if err := b.wait(); err != nil {
		return loadStats{}, err
	}
	_, rev, err := store.List(ctx, "/calico/scale-bench-revision")
	b.stats.Took, b.stats.EtcdRev = time.Since(start), rev
	return b.stats, err
}

// initialOccupancy is, by node, the sequence number at each allocated ordinal after the load: the initial
// endpoints, the probe endpoint and this host's containers.
func (c *cluster) initialOccupancy() []map[int]int {
	occ := make([]map[int]int, c.remote+1)
	for n := range occ {
		occ[n] = map[int]int{}
	}
	for j := range c.Endpoints {
		s := c.initialSlot(j)
		occ[s.node][s.ord] = j
	}
	p := c.probeSlot()
	occ[p.node][p.ord] = probeSeq
	for i := range c.Local {
		occ[c.remote][i] = -2 * (i + 1)
	}
	return occ
}
