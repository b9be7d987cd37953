package ipam

import (
	"net/netip"
	"slices"
	"sync"
)

// blockCache keeps this node's blocks as last read or written, with their revision. A block read again
// at the same revision is not decoded again (decoding dominates the CPU cost of a request), and knowing
// which blocks had free addresses lets a request try those first instead of reading every full block.
// It is only ever a shortcut: every write is still a compare-and-swap on the revision actually read.
type blockCache struct {
	mu     sync.Mutex
	blocks map[netip.Prefix]cachedBlock
}

type cachedBlock struct {
	rev int64
	b   *Block
}

// get returns a private copy of the block if it is cached at rev.
func (c *blockCache) get(cidr netip.Prefix, rev int64) *Block {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.blocks[cidr]; ok && e.rev == rev {
		return e.b.clone()
	}
	return nil
}

func (c *blockCache) put(cidr netip.Prefix, rev int64, b *Block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocks == nil {
		c.blocks = map[netip.Prefix]cachedBlock{}
	}
	if e, ok := c.blocks[cidr]; !ok || e.rev < rev {
		c.blocks[cidr] = cachedBlock{rev: rev, b: b.clone()}
	}
}

func (c *blockCache) drop(cidr netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.blocks, cidr)
}

// freeFirst orders block CIDRs for a search: those last seen with free addresses, then those not seen,
// then those last seen full.
func (c *blockCache) freeFirst(cidrs []netip.Prefix) []netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	rank := func(p netip.Prefix) int {
		e, ok := c.blocks[p]
		switch {
		case !ok:
			return 1
		case e.b.HasFree():
			return 0
		}
		return 2
	}
	out := slices.Clone(cidrs)
	slices.SortStableFunc(out, func(a, b netip.Prefix) int { return rank(a) - rank(b) })
	return out
}
