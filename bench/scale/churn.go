package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// churner changes the remote endpoints as a busy cluster does, one change at a time: half are label
// changes (a pod's version label flips to or from canary, moving it in and out of selector sets), a
// quarter deletions (the endpoint and its IPAM allocation), a quarter creations (a new pod or container
// at a free address of a random node, its allocation in the same transaction). The number of endpoints
// stays about the same.
type churner struct {
	c     *cluster
	store *datastore.Store

	mu      sync.Mutex
	rnd     *rand.Rand
	live    []endpoint
	free    [][]int // by node, free ordinals (never the probe's)
	nextSeq int

	done, failed atomic.Int64
	firstErr     atomic.Pointer[error]
}

func newChurner(c *cluster, store *datastore.Store) *churner {
	ch := &churner{c: c, store: store, rnd: rand.New(rand.NewPCG(1, 2)), nextSeq: c.Endpoints,
		free: make([][]int, c.remote)}
	occ := c.initialOccupancy()
	for n := range c.remote {
		for ord := range c.blocksPerNode * 64 {
			if _, used := occ[n][ord]; !used {
				ch.free[n] = append(ch.free[n], ord)
			}
		}
	}
	for j := range c.Endpoints {
		ch.live = append(ch.live, endpoint{seq: j, at: c.initialSlot(j)})
	}
	return ch
}

// run makes rate changes a second, workers at a time, until ctx ends; the changes under way then complete.
// When every worker is busy the next change waits, so the rate made falls short of rate (the result
// shows it) rather than the changes bunching up.
func (ch *churner) run(ctx context.Context, rate float64) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range work {
				if err := ch.change(context.WithoutCancel(ctx), i); err != nil {
					ch.failed.Add(1)
					ch.firstErr.CompareAndSwap(nil, &err)
				} else {
					ch.done.Add(1)
				}
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
		}
		select {
		case <-ctx.Done():
			return
		case work <- i:
		}
	}
}

func (ch *churner) err() error {
	if p := ch.firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// change makes the i-th change.
func (ch *churner) change(ctx context.Context, i int) error {
	switch i % 4 {
	case 0, 1:
		return ch.relabel(ctx)
	case 2:
		return ch.remove(ctx)
	default:
		return ch.add(ctx)
	}
}

// pick takes a random live endpoint out of the list (the caller puts it back or not).
func (ch *churner) pick() (endpoint, bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.live) == 0 {
		return endpoint{}, false
	}
	k := ch.rnd.IntN(len(ch.live))
	e := ch.live[k]
	ch.live[k] = ch.live[len(ch.live)-1]
	ch.live = ch.live[:len(ch.live)-1]
	return e, true
}

func (ch *churner) putBack(e endpoint) {
	ch.mu.Lock()
	ch.live = append(ch.live, e)
	ch.mu.Unlock()
}

func (ch *churner) relabel(ctx context.Context) error {
	e, ok := ch.pick()
	if !ok {
		return nil
	}
	defer func() { ch.putBack(e) }()
	w, err := ch.c.wep(e)
	if err != nil {
		return err
	}
	current, err := datastore.Get[*api.WorkloadEndpoint](ctx, ch.store, w.Namespace, w.Name)
	if err != nil {
		return err
	}
	current.Labels["version"] = map[bool]string{false: "canary", true: "v1"}[e.canary]
	if err := ch.store.Update(ctx, current); err != nil {
		return err
	}
	e.canary = !e.canary
	return nil
}

func (ch *churner) remove(ctx context.Context) error {
	e, ok := ch.pick()
	if !ok {
		return nil
	}
	w, err := ch.c.wep(e)
	if err != nil {
		ch.putBack(e)
		return err
	}
	key := datastore.ResourceKey(api.KindOf(w), w.Namespace, w.Name)
	err = ch.withBlock(ctx, e.at, func(b *ipam.Block) []datastore.Op {
		b.Release(e.at.ord % 64)
		return []datastore.Op{datastore.Del(key, 0)}
	})
	if err != nil {
		ch.putBack(e)
		return err
	}
	ch.mu.Lock()
	ch.free[e.at.node] = append(ch.free[e.at.node], e.at.ord)
	ch.mu.Unlock()
	return nil
}

func (ch *churner) add(ctx context.Context) error {
	ch.mu.Lock()
	n := ch.rnd.IntN(len(ch.free))
	for len(ch.free[n]) == 0 {
		n = (n + 1) % len(ch.free)
	}
	k := ch.rnd.IntN(len(ch.free[n]))
	e := endpoint{seq: ch.nextSeq, at: slot{node: n, ord: ch.free[n][k]}}
	ch.free[n][k] = ch.free[n][len(ch.free[n])-1]
	ch.free[n] = ch.free[n][:len(ch.free[n])-1]
	ch.nextSeq++
	ch.mu.Unlock()

	w, err := ch.c.wep(e)
	if err != nil {
		return err
	}
	w.UID, w.CreationTimestamp = "", nil // a new object: Create fills them
	op, err := datastore.CreateOp(w)
	if err == nil {
		err = ch.withBlock(ctx, e.at, func(b *ipam.Block) []datastore.Op {
			ch.c.allocate(b, e.at.ord%64, e.seq, e.at.node)
			return []datastore.Op{op}
		})
	}
	ch.mu.Lock()
	if err != nil {
		ch.free[n] = append(ch.free[n], e.at.ord)
	} else {
		ch.live = append(ch.live, e)
	}
	ch.mu.Unlock()
	return err
}

// withBlock reads the block of s, lets edit change it and name the other writes, and commits them all in
// one transaction if the block is unchanged meanwhile, retrying when another worker changed it.
func (ch *churner) withBlock(ctx context.Context, s slot, edit func(*ipam.Block) []datastore.Op) error {
	key := ipam.BlockKey(ch.c.blockOf(s))
	for {
		kv, err := ch.store.Get(ctx, key)
		if err != nil {
			return err
		}
		var b ipam.Block
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			return fmt.Errorf("block %s: %w", key, err)
		}
		ops := edit(&b)
		raw, err := json.Marshal(&b)
		if err != nil {
			return err
		}
		_, err = ch.store.Txn(ctx, append(ops, datastore.Put(key, raw, kv.Revision))...)
		if !errors.Is(err, datastore.ErrConflict) {
			return err
		}
	}
}
