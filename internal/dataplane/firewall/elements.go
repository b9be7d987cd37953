package firewall

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// setType is what a set or map of the table holds. It decides the kernel's key type and how an
// element's text, as this package writes it (and nft would list it), is encoded and read back.
type setType uint8

const (
	addrs4        setType = iota // a selector's addresses
	addrs6                       //
	prefixes4                    // pools, a rule's address list: intervals
	prefixes6                    //
	namedPorts4                  // a named port's members: address . protocol . port
	namedPorts6                  //
	portRanges                   // a rule's port list: intervals
	ifaceVerdicts                // a dispatch map: interface name : verdict
)

func addrsOf(family int) setType {
	if family == 6 {
		return addrs6
	}
	return addrs4
}

func prefixesOf(a netip.Addr) setType {
	if a.Is6() {
		return prefixes6
	}
	return prefixes4
}

func namedPortsOf(family int) setType {
	if family == 6 {
		return namedPorts6
	}
	return namedPorts4
}

func (t setType) interval() bool { return t == prefixes4 || t == prefixes6 || t == portRanges }

func (t setType) v6() bool { return t == addrs6 || t == prefixes6 || t == namedPorts6 }

func (t setType) addrLen() int {
	if t.v6() {
		return 16
	}
	return 4
}

// spec is the set's declaration in nft's syntax.
func (t setType) spec() string {
	name := map[setType]string{addrs4: "ipv4_addr", addrs6: "ipv6_addr", prefixes4: "ipv4_addr", prefixes6: "ipv6_addr",
		namedPorts4: "ipv4_addr . inet_proto . inet_service", namedPorts6: "ipv6_addr . inet_proto . inet_service",
		portRanges: "inet_service", ifaceVerdicts: "ifname : verdict"}[t]
	if t.interval() {
		return "{ type " + name + "; flags interval; }"
	}
	return "{ type " + name + "; }"
}

// kernelSet is the nftables set of this type; the batch gives it its ID.
func (t setType) kernelSet(table *nftables.Table, name string) *nftables.Set {
	s := &nftables.Set{Table: table, Name: name, Interval: t.interval()}
	switch t {
	case addrs4, prefixes4:
		s.KeyType = nftables.TypeIPAddr
	case addrs6, prefixes6:
		s.KeyType = nftables.TypeIP6Addr
	case namedPorts4, namedPorts6:
		addr := nftables.TypeIPAddr
		if t == namedPorts6 {
			addr = nftables.TypeIP6Addr
		}
		s.KeyType, _ = nftables.ConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService)
		s.Concatenation = true
	case portRanges:
		s.KeyType = nftables.TypeInetService
	case ifaceVerdicts:
		s.KeyType, s.DataType, s.IsMap = nftables.TypeIFName, nftables.TypeVerdict, true
		// Interface names are strings, which nft lists by the byte order the set's user data records.
		s.KeyByteOrder = binaryutil.NativeEndian
	}
	return s
}

// encode turns elements' text (keys; value a map's "goto <chain>") into the kernel's elements: an
// interval is its start and, unless it reaches the top of its space, the end after it. Without values
// a map's elements are keys only, as deleting them needs.
func (t setType) encode(keys []string, values map[string]string) ([]nftables.SetElement, error) {
	out := make([]nftables.SetElement, 0, len(keys))
	for _, k := range keys {
		switch t {
		case addrs4, addrs6:
			a, err := netip.ParseAddr(k)
			if err != nil || a.BitLen() != 8*t.addrLen() {
				return nil, fmt.Errorf("invalid address %q", k)
			}
			out = append(out, nftables.SetElement{Key: a.AsSlice()})
		case prefixes4, prefixes6:
			p, err := netip.ParsePrefix(k)
			if err != nil {
				var a netip.Addr
				a, err = netip.ParseAddr(k)
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if err != nil || p.Addr().BitLen() != 8*t.addrLen() {
				return nil, fmt.Errorf("invalid prefix %q", k)
			}
			out = appendInterval(out, p.Masked().Addr().AsSlice(), lastAddr(p).AsSlice())
		case portRanges:
			lo, hi, ok := parsePortRange(k)
			if !ok {
				return nil, fmt.Errorf("invalid port range %q", k)
			}
			out = appendInterval(out, binary.BigEndian.AppendUint16(nil, lo), binary.BigEndian.AppendUint16(nil, hi))
		case namedPorts4, namedPorts6:
			parts := strings.Split(k, " . ")
			a, err := netip.ParseAddr(parts[0])
			if len(parts) != 3 || err != nil || a.BitLen() != 8*t.addrLen() {
				return nil, fmt.Errorf("invalid named-port member %q", k)
			}
			proto, err1 := strconv.ParseUint(parts[1], 10, 8)
			port, err2 := strconv.ParseUint(parts[2], 10, 16)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("invalid named-port member %q", k)
			}
			key := append(a.AsSlice(), byte(proto), 0, 0, 0)
			key = append(binary.BigEndian.AppendUint16(key, uint16(port)), 0, 0)
			out = append(out, nftables.SetElement{Key: key})
		case ifaceVerdicts:
			chain, ok := strings.CutPrefix(values[k], "goto ")
			if !ok && values != nil || len(k) >= 16 {
				return nil, fmt.Errorf("invalid dispatch element %q : %q", k, values[k])
			}
			e := nftables.SetElement{Key: make([]byte, 16)}
			copy(e.Key, k)
			if values != nil {
				e.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// appendInterval appends the inclusive interval [first, last]: its start, and its end (the value after
// last) unless last is the largest value.
func appendInterval(out []nftables.SetElement, first, last []byte) []nftables.SetElement {
	out = append(out, nftables.SetElement{Key: first})
	if end, ok := increment(last); ok {
		out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
	}
	return out
}

// increment is b+1 as a big-endian number, false if b is all ones.
func increment(b []byte) ([]byte, bool) {
	c := slices.Clone(b)
	for i := len(c) - 1; i >= 0; i-- {
		c[i]++
		if c[i] != 0 {
			return c, true
		}
	}
	return nil, false
}

func decrement(b []byte) []byte {
	c := slices.Clone(b)
	for i := len(c) - 1; i >= 0; i-- {
		c[i]--
		if c[i] != 0xff {
			break
		}
	}
	return c
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func parsePortRange(s string) (lo, hi uint16, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(a, 10, 16)
	h, err2 := l, error(nil)
	if isRange {
		h, err2 = strconv.ParseUint(b, 10, 16)
	}
	return uint16(l), uint16(h), err1 == nil && err2 == nil && l <= h
}

// decode reads the kernel's elements back into their text, as encode takes it (value: a map's verdict);
// anything this package would not have written comes out in a form that matches nothing it writes.
func (t setType) decode(elems []nftables.SetElement) map[string]string {
	out := make(map[string]string, len(elems))
	if t.interval() {
		for _, iv := range intervals(elems) {
			out[t.intervalText(iv[0], iv[1])] = ""
		}
		return out
	}
	for _, e := range elems {
		switch t {
		case addrs4, addrs6:
			out[addrText(e.Key)] = ""
		case namedPorts4, namedPorts6:
			n := t.addrLen()
			if len(e.Key) != n+8 {
				out[fmt.Sprintf("%x", e.Key)] = ""
				continue
			}
			a, _ := netip.AddrFromSlice(e.Key[:n])
			out[namedPortElem(a, e.Key[n], binary.BigEndian.Uint16(e.Key[n+4:]))] = ""
		case ifaceVerdicts:
			out[string(bytes.TrimRight(e.Key, "\x00"))] = verdictText(e.Val)
		}
	}
	return out
}

// verdictText reads a map element's verdict, which the library leaves encoded (NFTA_VERDICT_CODE,
// NFTA_VERDICT_CHAIN), as encode takes it: "goto <chain>"; anything else as "?".
func verdictText(data []byte) string {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return "?"
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = ad.Int32()
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if ad.Err() != nil || code != unix.NFT_GOTO || chain == "" {
		return "?"
	}
	return "goto " + chain
}

// intervals pairs interval starts with their ends: [first, last] inclusive, last nil for "to the top".
func intervals(elems []nftables.SetElement) [][2][]byte {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		// An end sorts before a start at the same value: it closes the interval below it.
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out [][2][]byte
	for i, e := range sorted {
		if e.IntervalEnd {
			continue
		}
		var last []byte
		if i+1 < len(sorted) && sorted[i+1].IntervalEnd {
			last = decrement(sorted[i+1].Key)
		}
		out = append(out, [2][]byte{e.Key, last})
	}
	return out
}

// intervalText is an interval as encode takes it: a prefix (an address alone for one address) or a
// port range; "first-last" where addresses make no prefix.
func (t setType) intervalText(first, last []byte) string {
	if last == nil {
		last = bytes.Repeat([]byte{0xff}, len(first))
	}
	if t == portRanges {
		if len(first) != 2 || len(last) != 2 {
			return fmt.Sprintf("%x-%x", first, last)
		}
		return portRange{binary.BigEndian.Uint16(first), binary.BigEndian.Uint16(last)}.String()
	}
	a, ok1 := netip.AddrFromSlice(first)
	z, ok2 := netip.AddrFromSlice(last)
	if ok1 && ok2 {
		for bits := 0; bits <= a.BitLen(); bits++ {
			if p := netip.PrefixFrom(a, bits); p.Masked().Addr() == a && lastAddr(p) == z {
				return elemKey(p)
			}
		}
	}
	return fmt.Sprintf("%x-%x", first, last)
}

func addrText(b []byte) string {
	if a, ok := netip.AddrFromSlice(b); ok {
		return a.String()
	}
	return fmt.Sprintf("%x", b)
}
