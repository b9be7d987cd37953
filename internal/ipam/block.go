package ipam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Block is one IPAM allocation block, in the JSON Calico stores at
// /calico/ipam/v2/assignment/ipv<4|6>/block/<cidr>. Its methods are pure: no I/O, no clock.
//
// Allocations[ord] is nil when the ordinal's address is free, otherwise an index into Attributes.
// Unallocated is the FIFO of free ordinals: assignment takes from the head and release appends to the
// tail, so a released address is reused as late as possible.
type Block struct {
	CIDR     netip.Prefix `json:"cidr"`
	Affinity *string      `json:"affinity"` // "host:<node>", nil when the block belongs to no node
	// HostAffinity is the pre-v3 spelling of the affinity, read for compatibility.
	HostAffinity string            `json:"hostAffinity,omitempty"`
	ClaimTime    string            `json:"affinity_claim_time,omitempty"`
	Allocations  []*int            `json:"allocations"`
	Unallocated  []int             `json:"unallocated"`
	Attributes   []Attribute       `json:"attributes"`
	Sequence     uint64            `json:"sequenceNumber"`
	SequenceFor  map[string]uint64 `json:"sequenceNumberForAllocation,omitempty"`
	Deleted      bool              `json:"deleted"`

	extra extraFields
}

// Attribute says who holds an allocation: the handle and the secondary attributes (node, timestamp,
// container...). Its unknown members are kept by the Block's JSON methods.
type Attribute struct {
	HandleID  *string           `json:"handle_id"`
	Secondary map[string]string `json:"secondary"`

	extra extraFields
}

const hostAffinityPrefix = "host:"

// NewBlock returns an empty block affine to node (none when node is empty). The sequence number starts at
// the clock, as Calico does, so a recreated block never repeats an old block's numbers.
func NewBlock(cidr netip.Prefix, node string, now time.Time) *Block {
	b := &Block{CIDR: cidr.Masked(), Attributes: []Attribute{}, Sequence: uint64(now.UnixNano())}
	n := b.Size()
	b.Allocations = make([]*int, n)
	b.Unallocated = make([]int, n)
	for i := range b.Unallocated {
		b.Unallocated[i] = i
	}
	if node != "" {
		b.SetOwner(node)
		b.ClaimTime = now.UTC().Format(time.RFC3339)
	}
	return b
}

// UnmarshalJSON reads any Calico version's block and keeps the members this version does not know.
// Blocks are read on every request, so the common case (no unknown members) is one strict decoding pass;
// only blocks with unknown members take the slower path that collects them.
func (b *Block) UnmarshalJSON(data []byte) error {
	type plain Block
	*b = Block{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if dec.Decode((*plain)(b)) != nil {
		*b = Block{}
		if err := b.decodeWithExtras(data); err != nil {
			return err
		}
	}
	if b.Affinity == nil && b.HostAffinity != "" {
		b.SetOwner(b.HostAffinity)
	}
	return b.check()
}

// decodeWithExtras decodes the block and the members of it and of its attributes this version does not know.
func (b *Block) decodeWithExtras(data []byte) error {
	type plain Block
	var err error
	if b.extra, err = decodeKeeping(data, (*plain)(b)); err != nil {
		return err
	}
	var raw struct {
		Attributes []json.RawMessage `json:"attributes"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for i, r := range raw.Attributes {
		if b.Attributes[i].extra, err = unknownMembers(r, reflect.TypeFor[Attribute]()); err != nil {
			return err
		}
	}
	return nil
}

// MarshalJSON writes the block with the unknown members it was read with. Empty lists are written as []
// (never null), as Calico writes them.
func (b *Block) MarshalJSON() ([]byte, error) {
	type plain Block
	c := plain(*b)
	if c.Unallocated == nil {
		c.Unallocated = []int{}
	}
	if c.Attributes == nil {
		c.Attributes = []Attribute{}
	}
	data, err := json.Marshal(&c)
	if err != nil || !b.hasExtra() {
		return data, err
	}
	// Rare: put the unknown members back in.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, err
	}
	attrs := make([]json.RawMessage, len(b.Attributes))
	for i, a := range b.Attributes {
		if attrs[i], err = encodeKeeping(a, a.extra); err != nil {
			return nil, err
		}
	}
	if members["attributes"], err = json.Marshal(attrs); err != nil {
		return nil, err
	}
	maps.Copy(members, b.extra)
	return json.Marshal(members)
}

func (b *Block) hasExtra() bool {
	return len(b.extra) > 0 || slices.ContainsFunc(b.Attributes, func(a Attribute) bool { return len(a.extra) > 0 })
}

// check rejects blocks whose arrays do not fit their CIDR, so later indexing cannot panic.
func (b *Block) check() error {
	if !b.CIDR.IsValid() || b.CIDR.Addr().BitLen()-b.CIDR.Bits() > 16 {
		return fmt.Errorf("block CIDR %q is missing or too large", b.CIDR)
	}
	if len(b.Allocations) != b.Size() {
		return fmt.Errorf("block %s has %d allocations, want %d", b.CIDR, len(b.Allocations), b.Size())
	}
	for ord, idx := range b.Allocations {
		if idx != nil && (*idx < 0 || *idx >= len(b.Attributes)) {
			return fmt.Errorf("block %s: allocation %d points at attribute %d of %d", b.CIDR, ord, *idx, len(b.Attributes))
		}
	}
	return nil
}

// Handle returns the attribute's handle ID, "" when it has none.
func (a *Attribute) Handle() string {
	if a.HandleID == nil {
		return ""
	}
	return *a.HandleID
}

func (a *Attribute) equal(o *Attribute) bool {
	return (a.HandleID == nil) == (o.HandleID == nil) && a.Handle() == o.Handle() &&
		maps.Equal(a.Secondary, o.Secondary) && a.extra.equal(o.extra)
}

// newAttribute builds the attribute of a new allocation.
func newAttribute(handle string, attrs map[string]string) Attribute {
	a := Attribute{Secondary: attrs}
	if handle != "" {
		a.HandleID = &handle
	}
	return a
}

// Size is the number of addresses in the block.
func (b *Block) Size() int { return 1 << (b.CIDR.Addr().BitLen() - b.CIDR.Bits()) }

// Owner is the node the block is affine to, "" if none (or affine to something other than a host).
func (b *Block) Owner() string {
	if b.Affinity == nil {
		return ""
	}
	node, ok := strings.CutPrefix(*b.Affinity, hostAffinityPrefix)
	if !ok {
		return ""
	}
	return node
}

// SetOwner makes the block affine to node, or to nobody when node is empty.
func (b *Block) SetOwner(node string) {
	if node == "" {
		b.Affinity = nil
		return
	}
	aff := hostAffinityPrefix + node
	b.Affinity = &aff
}

// Addr is the address of an ordinal.
func (b *Block) Addr(ord int) netip.Addr { return nthAddr(b.CIDR.Addr(), ord) }

// Ordinal is the position of ip in the block.
func (b *Block) Ordinal(ip netip.Addr) (int, bool) {
	if !b.CIDR.Contains(ip) {
		return 0, false
	}
	return offset(b.CIDR.Addr(), ip), true
}

// HasFree reports whether the free list offers an address.
func (b *Block) HasFree() bool { return len(b.Unallocated) > 0 }

// InUse counts allocated addresses.
func (b *Block) InUse() int {
	n := 0
	for _, a := range b.Allocations {
		if a != nil {
			n++
		}
	}
	return n
}

// Attr returns the attribute of an allocated ordinal, nil if the address is free.
func (b *Block) Attr(ord int) *Attribute {
	if ord < 0 || ord >= len(b.Allocations) || b.Allocations[ord] == nil {
		return nil
	}
	return &b.Attributes[*b.Allocations[ord]]
}

// Allocated yields every allocated ordinal with its attribute, in address order.
func (b *Block) Allocated() iter.Seq2[int, *Attribute] {
	return func(yield func(int, *Attribute) bool) {
		for ord := range b.Allocations {
			if a := b.Attr(ord); a != nil && !yield(ord, a) {
				return
			}
		}
	}
}

// AssignNext allocates the address at the head of the free list.
func (b *Block) AssignNext(a Attribute) (int, bool) {
	for len(b.Unallocated) > 0 {
		ord := b.Unallocated[0]
		b.Unallocated = b.Unallocated[1:]
		// Skip entries that are out of range or already allocated (damaged data): the allocation wins.
		if ord >= 0 && ord < len(b.Allocations) && b.Allocations[ord] == nil {
			b.point(ord, a)
			return ord, true
		}
	}
	return 0, false
}

// AssignAt allocates one specific ordinal; false if it is already allocated.
func (b *Block) AssignAt(ord int, a Attribute) bool {
	if ord < 0 || ord >= len(b.Allocations) || b.Allocations[ord] != nil {
		return false
	}
	for i, free := range b.Unallocated {
		if free == ord {
			b.Unallocated = append(b.Unallocated[:i:i], b.Unallocated[i+1:]...)
			break
		}
	}
	b.point(ord, a)
	return true
}

// SetAttr replaces the attribute of an allocated ordinal.
func (b *Block) SetAttr(ord int, a Attribute) {
	b.point(ord, a)
	b.Compact()
}

// point makes ord use attribute a, sharing an equal existing attribute as Calico does, and records the
// sequence number it was allocated at (Calico uses it to refuse a stale release).
func (b *Block) point(ord int, a Attribute) {
	idx := -1
	for i := range b.Attributes {
		if b.Attributes[i].equal(&a) {
			idx = i
			break
		}
	}
	if idx < 0 {
		idx = len(b.Attributes)
		b.Attributes = append(b.Attributes, a)
	}
	b.Allocations[ord] = &idx
	if b.SequenceFor == nil {
		b.SequenceFor = map[string]uint64{}
	}
	b.SequenceFor[strconv.Itoa(ord)] = b.Sequence
}

// Release frees an ordinal and returns the attribute it had (nil if it was free). Call Compact after a
// series of releases.
func (b *Block) Release(ord int) *Attribute {
	a := b.Attr(ord)
	if a == nil {
		return nil
	}
	held := *a
	b.Allocations[ord] = nil
	b.Unallocated = append(b.Unallocated, ord)
	delete(b.SequenceFor, strconv.Itoa(ord))
	return &held
}

// Compact drops attributes no allocation refers to any more and renumbers the rest.
func (b *Block) Compact() {
	renum := make([]int, len(b.Attributes))
	for i := range renum {
		renum[i] = -1
	}
	kept := make([]Attribute, 0, len(b.Attributes))
	for _, idx := range b.Allocations {
		if idx != nil && renum[*idx] < 0 {
			renum[*idx] = len(kept)
			kept = append(kept, b.Attributes[*idx])
		}
	}
	for ord, idx := range b.Allocations {
		if idx != nil {
			n := renum[*idx]
			b.Allocations[ord] = &n
		}
	}
	b.Attributes = kept
}

// HandleCounts counts allocations per handle, as the handle records should.
func (b *Block) HandleCounts() map[string]int {
	counts := map[string]int{}
	for _, a := range b.Allocated() {
		if h := a.Handle(); h != "" {
			counts[h]++
		}
	}
	return counts
}

// clone copies what the allocator mutates in place; attributes' maps and allocation indexes are only
// ever replaced, never changed, so they are shared.
func (b *Block) clone() *Block {
	c := *b
	c.Allocations = slices.Clone(b.Allocations)
	c.Unallocated = slices.Clone(b.Unallocated)
	c.Attributes = slices.Clone(b.Attributes)
	c.SequenceFor = maps.Clone(b.SequenceFor)
	return &c
}
