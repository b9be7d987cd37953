// Package ipam is Calico's block-affinity IP address management, storing blocks, affinities, handles and
// configuration in Calico's own etcd format so that calicoctl and calico-node read and change them too.
//
// A node allocates from blocks affine to it, claims a new block when those are full, and borrows from
// other nodes' blocks when the pool has no free block (unless strict affinity forbids it). Every change is
// a compare-and-swap transaction covering the block and the handles it affects together, so a failed or
// interrupted write never leaves a block and its handles disagreeing. When etcd's answer to a write is
// lost, its outcome is settled before anyone is answered or anything retried, so an address is neither
// handed out twice nor leaked by the retry.
//
// Upstream Calico makes one transaction per request and retries on conflict; with many concurrent
// requests on one node they all race for the same block key. By default this package instead queues the
// node's requests and has a single writer apply everything queued in one round: read each block once,
// assign or release for every request, write the blocks and handles in one transaction, answer everyone.
package ipam

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// Options configure an IPAM.
type Options struct {
	// Node is this host's Calico node name: blocks are claimed for it and allocations carry it.
	Node string
	// Unbatched makes every request its own compare-and-swap round, as upstream Calico does (the
	// benchmark baseline). By default concurrent requests of this node share rounds.
	Unbatched bool
	// Log receives warnings about damaged records and the collector's releases (default: discard).
	Log *slog.Logger
}

// IPAM allocates addresses for one node. It is safe for concurrent use and needs no Close: the batch
// writer runs only while requests are queued.
type IPAM struct {
	store     *datastore.Store
	node      string
	unbatched bool
	log       *slog.Logger
	queue     queue
	cache     blockCache
	selectors sync.Map // selector text → *selector.Selector
}

// New returns an IPAM for opts.Node on store.
func New(store *datastore.Store, opts Options) *IPAM {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &IPAM{store: store, node: opts.Node, unbatched: opts.Unbatched, log: log}
	m.queue.m = m
	return m
}

// Request asks for one address.
type Request struct {
	Family int // 4 or 6
	// Pools names the IPPools to use, in order of preference. Empty means every enabled pool of the family
	// with assignment mode Automatic whose nodeSelector matches this node. A named pool is used even when
	// its assignment mode is Manual (that is what Manual is for) but never when it is disabled.
	Pools  []string
	Handle string            // owner of the address, for ReleaseByHandle ("" for none)
	Attrs  map[string]string // stored with the allocation, besides node and timestamp
}

// Attribute keys this package sets on every allocation.
const (
	AttrNode      = "node"
	AttrTimestamp = "timestamp"
)

// allocationAttrs is what an allocation stores: the caller's attributes plus node and creation time.
func (m *IPAM) allocationAttrs(attrs map[string]string) map[string]string {
	out := make(map[string]string, len(attrs)+2)
	maps.Copy(out, attrs)
	out[AttrNode] = m.node
	out[AttrTimestamp] = time.Now().UTC().Format(time.RFC3339)
	return out
}

// parseSelector compiles a pool's nodeSelector once per distinct text.
func (m *IPAM) parseSelector(text string) (*selector.Selector, error) {
	if s, ok := m.selectors.Load(text); ok {
		return s.(*selector.Selector), nil
	}
	s, err := selector.Parse(text)
	if err != nil {
		return nil, err
	}
	m.selectors.Store(text, s)
	return s, nil
}

// AutoAssign allocates one address of r.Family for this node. The returned pool must not be modified.
func (m *IPAM) AutoAssign(ctx context.Context, r Request) (netip.Addr, *api.IPPool, error) {
	if r.Family != 4 && r.Family != 6 {
		return netip.Addr{}, nil, newError(ErrNoPool, "address family must be 4 or 6, not %d", r.Family)
	}
	o := &op{kind: opAuto, family: r.Family, pools: r.Pools, handle: r.Handle, attrs: m.allocationAttrs(r.Attrs)}
	if err := m.do(ctx, o); err != nil {
		return netip.Addr{}, nil, err
	}
	return o.addr, o.pool, nil
}

// AssignIP allocates a specific address (docker run --ip). Its block is claimed for this node if it does
// not exist yet, as Calico does. The returned pool must not be modified.
func (m *IPAM) AssignIP(ctx context.Context, ip netip.Addr, handle string, attrs map[string]string) (*api.IPPool, error) {
	o := &op{kind: opAssign, ip: ip.Unmap(), handle: handle, attrs: m.allocationAttrs(attrs)}
	if err := m.do(ctx, o); err != nil {
		return nil, err
	}
	return o.pool, nil
}

// ReleaseIP frees an address. An address that is not allocated, or lies in no block at all (such as
// Docker's 0.0.0.0 gateway placeholder), is not an error: it returns false.
func (m *IPAM) ReleaseIP(ctx context.Context, ip netip.Addr) (bool, error) {
	return m.releaseHeld(ctx, ip.Unmap(), "")
}

// ReleaseByHandle frees every address held by handle; an unknown handle is not an error.
func (m *IPAM) ReleaseByHandle(ctx context.Context, handle string) error {
	return m.do(ctx, &op{kind: opReleaseHandle, handle: handle})
}

// SetAttributes merges attrs into the secondary attributes of an allocated address (the driver adds the
// Docker endpoint once it knows it).
func (m *IPAM) SetAttributes(ctx context.Context, ip netip.Addr, attrs map[string]string) error {
	return m.do(ctx, &op{kind: opSetAttrs, ip: ip.Unmap(), attrs: attrs})
}
