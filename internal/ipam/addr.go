package ipam

import (
	"encoding/binary"
	"net/netip"
)

// u128 is an address as a 128-bit number (IPv4 in its IPv4-mapped form), for ordinal and subnet arithmetic.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (v u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// plus adds n shifted left by shift bits (shift < 64).
func (v u128) plus(n uint64, shift int) u128 {
	var hi uint64
	if shift > 0 {
		hi = n >> (64 - shift)
	}
	lo := v.lo + n<<shift
	if lo < v.lo {
		hi++
	}
	return u128{v.hi + hi, lo}
}

// nthAddr is the address n places after a.
func nthAddr(a netip.Addr, n int) netip.Addr {
	return toU128(a).plus(uint64(n), 0).addr(a.Is4())
}

// offset is how many places b lies after a, for two addresses of one block (blocks have at most 2^12
// addresses, so the distance fits in the low 64 bits).
func offset(a, b netip.Addr) int {
	return int(toU128(b).lo - toU128(a).lo)
}

// subnetCount is the number of blockBits-sized subnets in pool, capped at 2^62 so it fits the random
// generator (a pool that large is never filled anyway).
func subnetCount(pool netip.Prefix, blockBits int) uint64 {
	shift := blockBits - pool.Bits()
	if shift >= 62 {
		return 1 << 62
	}
	return 1 << shift
}

// nthSubnet is the idx-th blockBits-sized subnet of pool.
func nthSubnet(pool netip.Prefix, blockBits int, idx uint64) netip.Prefix {
	base := pool.Masked().Addr()
	host := base.BitLen() - blockBits
	return netip.PrefixFrom(toU128(base).plus(idx, host).addr(base.Is4()), blockBits)
}

// blockFor is the block of the given size containing ip.
func blockFor(ip netip.Addr, blockBits int) netip.Prefix {
	p, _ := ip.Prefix(blockBits)
	return p
}
