package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// AllocationInfo describes one allocated address.
type AllocationInfo struct {
	IP    netip.Addr
	Block netip.Prefix
	// BlockNode is the node the block is affine to ("" if none). It differs from Attrs["node"] when the
	// address was borrowed.
	BlockNode string
	Handle    string
	Attrs     map[string]string
}

func allocationInfo(b *Block, ord int, a *Attribute) AllocationInfo {
	return AllocationInfo{IP: b.Addr(ord), Block: b.CIDR, BlockNode: b.Owner(), Handle: a.Handle(), Attrs: maps.Clone(a.Secondary)}
}

// Allocation returns who holds ip (calicoctl ipam show --ip); ErrNotAllocated if nobody does.
func (m *IPAM) Allocation(ctx context.Context, ip netip.Addr) (*AllocationInfo, error) {
	ip = ip.Unmap()
	rec, ord, ok, err := m.newRound(ctx).locate(ip)
	if err != nil {
		return nil, err
	}
	if !ok || rec.b.Attr(ord) == nil {
		return nil, newError(ErrNotAllocated, "%s is not assigned", ip)
	}
	info := allocationInfo(rec.b, ord, rec.b.Attr(ord))
	return &info, nil
}

// BlockUsage is one block's row of calicoctl ipam show --show-blocks.
type BlockUsage struct {
	CIDR  netip.Prefix
	Node  string // affinity, "" if none
	Size  int
	InUse int
}

// PoolUsage is one pool's row of calicoctl ipam show.
type PoolUsage struct {
	Pool   *api.IPPool
	CIDR   netip.Prefix
	Size   float64 // addresses in the pool (a float: IPv6 pools are astronomically large)
	InUse  int
	Blocks []BlockUsage
}

// Free is the number of addresses not in use.
func (u PoolUsage) Free() float64 { return u.Size - float64(u.InUse) }

// Usage reports every pool's size and use, with its blocks.
func (m *IPAM) Usage(ctx context.Context) ([]PoolUsage, error) {
	r := m.newRound(ctx)
	pools, err := r.allPools()
	if err != nil {
		return nil, err
	}
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		out[i] = PoolUsage{Pool: p.IPPool, CIDR: p.cidr, Size: math.Ldexp(1, p.cidr.Addr().BitLen()-p.cidr.Bits())}
	}
	err = m.eachBlock(ctx, func(b *Block) {
		for i := range out {
			if u := &out[i]; u.CIDR.Overlaps(b.CIDR) {
				n := b.InUse()
				u.InUse += n
				u.Blocks = append(u.Blocks, BlockUsage{CIDR: b.CIDR, Node: b.Owner(), Size: b.Size(), InUse: n})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, u := range out {
		slices.SortFunc(u.Blocks, func(a, b BlockUsage) int { return a.CIDR.Compare(b.CIDR) })
	}
	return out, nil
}

// Report is the outcome of Check.
type Report struct {
	Allocations int // allocations seen
	// Leaked are allocations no live endpoint uses (candidates for release; only when Check was given the
	// live addresses).
	Leaked []AllocationInfo
	// NotAllocated are addresses live endpoints use that IPAM has not allocated.
	NotAllocated []netip.Addr
	// Unaffine are blocks affine to no node (normal after a node released a non-empty block; shown for
	// information, not counted as problems).
	Unaffine []netip.Prefix
	// Handles are handle records that disagree with the allocations carrying the handle.
	Handles []HandleProblem
}

// HandleProblem is a handle whose count for a block differs from the block's allocations.
type HandleProblem struct {
	Handle   string
	Block    netip.Prefix
	Recorded int  // count in the handle record
	Actual   int  // allocations in the block carrying the handle
	Missing  bool // there is no handle record at all
}

// Problems counts what needs attention.
func (r *Report) Problems() int { return len(r.Leaked) + len(r.NotAllocated) + len(r.Handles) }

// Check compares allocations with handles and, when live is not nil, with the addresses live endpoints
// use (calicoctl ipam check). Blocks and handles are read at one etcd revision, so a change being made
// meanwhile is seen whole or not at all.
func (m *IPAM) Check(ctx context.Context, live map[netip.Addr]bool) (Report, error) {
	var rep Report
	blocks, handles, err := m.snapshot(ctx)
	if err != nil {
		return rep, err
	}
	recorded := map[string]map[string]int{}
	for _, kv := range handles {
		var h handleRecord
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			m.log.Warn("skipping damaged IPAM handle", "key", kv.Key, "error", err.Error())
			continue
		}
		recorded[strings.TrimPrefix(kv.Key, handlePrefix)] = h.Block
	}
	actual := map[string]map[string]int{}
	allocated := map[netip.Addr]bool{}
	for _, b := range blocks {
		if b.Affinity == nil {
			rep.Unaffine = append(rep.Unaffine, b.CIDR)
		}
		for ord, a := range b.Allocated() {
			rep.Allocations++
			ip := b.Addr(ord)
			allocated[ip] = true
			if live != nil && !live[ip] {
				rep.Leaked = append(rep.Leaked, allocationInfo(b, ord, a))
			}
		}
		for h, n := range b.HandleCounts() {
			if actual[h] == nil {
				actual[h] = map[string]int{}
			}
			actual[h][b.CIDR.String()] = n
		}
	}
	for ip, ok := range live {
		if ok && !allocated[ip.Unmap()] {
			rep.NotAllocated = append(rep.NotAllocated, ip.Unmap())
		}
	}
	slices.SortFunc(rep.NotAllocated, netip.Addr.Compare)
	rep.Handles = compareHandles(recorded, actual)
	return rep, nil
}

// snapshot reads every block (damaged ones skipped, with a warning) and every handle at one revision.
func (m *IPAM) snapshot(ctx context.Context) ([]*Block, []datastore.KV, error) {
	kvs, rev, err := m.store.List(ctx, blockPrefix)
	if err != nil {
		return nil, nil, err
	}
	var blocks []*Block
	for _, kv := range kvs {
		b, err := m.readBlock(kv)
		if err != nil {
			m.log.Warn("skipping IPAM block", "error", err.Error())
			continue
		}
		blocks = append(blocks, b)
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	resp, err := m.store.Client().Get(ctx, handlePrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, nil, fmt.Errorf("listing IPAM handles: %w", err)
	}
	handles := make([]datastore.KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		handles[i] = datastore.KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
	}
	return blocks, handles, nil
}

// snapshotTimeout bounds the handle listing of a snapshot, which bypasses the store's own bound.
const snapshotTimeout = 30 * time.Second

// compareHandles lists every (handle, block) whose recorded count differs from the actual one.
func compareHandles(recorded, actual map[string]map[string]int) []HandleProblem {
	var out []HandleProblem
	for _, h := range slices.Sorted(maps.Keys(mergeKeys(recorded, actual))) {
		for _, cidr := range slices.Sorted(maps.Keys(mergeKeys(recorded[h], actual[h]))) {
			if recorded[h][cidr] == actual[h][cidr] {
				continue
			}
			block, _ := netip.ParsePrefix(cidr)
			_, has := recorded[h]
			out = append(out, HandleProblem{Handle: h, Block: block, Recorded: recorded[h][cidr], Actual: actual[h][cidr], Missing: !has})
		}
	}
	return out
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	keys := make(map[string]bool, len(a)+len(b))
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}
