package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// A rule is one nftables rule: its expressions, as the kernel runs them, and the same in nft's syntax,
// which names it in logs and tests and is what two versions of a rule are compared by (the text
// determines the expressions). It is built from matches, each carrying both.
type rule struct {
	text  string
	exprs []expr.Any
	anon  []anonSet // the anonymous sets its lookups use
}

// match is a part of a rule: a condition, an action or a verdict.
type match struct {
	text  string
	exprs []expr.Any
	anon  *anonSet
}

// anonSet is a constant set that belongs to one rule (nft's "{ a, b }"): created with the rule in the
// same transaction, deleted by the kernel with it. lookup is the rule's expression that uses it.
type anonSet struct {
	typ    setType
	keys   []string
	lookup *expr.Lookup
}

func newRule(ms ...match) rule {
	var r rule
	texts := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.text == "" {
			continue
		}
		texts = append(texts, m.text)
		r.exprs = append(r.exprs, m.exprs...)
		if m.anon != nil {
			r.anon = append(r.anon, *m.anon)
		}
	}
	r.text = strings.Join(texts, " ")
	return r
}

// Registers: nft's first 16-byte register, and the 4-byte view of it that concatenations fill.
const (
	reg1   = unix.NFT_REG_1
	reg32a = unix.NFT_REG32_00
)

func load(key expr.MetaKey) *expr.Meta { return &expr.Meta{Key: key, Register: reg1} }

func cmp(op expr.CmpOp, data []byte) *expr.Cmp { return &expr.Cmp{Op: op, Register: reg1, Data: data} }

func eqOrNot(negate bool) (expr.CmpOp, string) {
	if negate {
		return expr.CmpOpNeq, "!= "
	}
	return expr.CmpOpEq, ""
}

// ifnamePrefix matches packets arriving on (out: leaving by) an interface whose name starts with prefix.
func ifnamePrefix(out bool, prefix string) match {
	key, word := expr.MetaKeyIIFNAME, "iifname"
	if out {
		key, word = expr.MetaKeyOIFNAME, "oifname"
	}
	return match{text: fmt.Sprintf(`%s "%s*"`, word, prefix), exprs: []expr.Any{load(key), cmp(expr.CmpOpEq, []byte(prefix))}}
}

// dispatch jumps, by the packet's input (out: output) interface, to the chain the map names for it.
func dispatch(out bool, mapName string) match {
	key, word := expr.MetaKeyIIFNAME, "iifname"
	if out {
		key, word = expr.MetaKeyOIFNAME, "oifname"
	}
	return match{text: word + " vmap @" + mapName, exprs: []expr.Any{load(key),
		&expr.Lookup{SourceRegister: reg1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: mapName}}}
}

func nfproto(family int) match {
	proto := byte(unix.NFPROTO_IPV4)
	if family == 6 {
		proto = unix.NFPROTO_IPV6
	}
	return match{text: fmt.Sprintf("meta nfproto ipv%d", family), exprs: []expr.Any{load(expr.MetaKeyNFPROTO), cmp(expr.CmpOpEq, []byte{proto})}}
}

func l4proto(proto uint8, negate bool) match {
	op, not := eqOrNot(negate)
	return match{text: fmt.Sprintf("meta l4proto %s%d", not, proto), exprs: []expr.Any{load(expr.MetaKeyL4PROTO), cmp(op, []byte{proto})}}
}

// Conntrack states, as the kernel's ct state bits.
const (
	ctInvalid     = 1
	ctEstablished = 2
	ctRelated     = 4
)

// ctState matches packets whose connection is in any of the states.
func ctState(states uint32, text string) match {
	return match{text: "ct state " + text, exprs: []expr.Any{&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		mask(states, 0), cmp(expr.CmpOpNeq, make([]byte, 4))}}
}

// mask is reg1 = reg1 & and ^ xor over the 4 bytes of a host-order value (marks, ct state).
func mask(and, xor uint32) *expr.Bitwise {
	return &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
		Mask: binaryutil.NativeEndian.PutUint32(and), Xor: binaryutil.NativeEndian.PutUint32(xor)}
}

// Packet mark operations, for the accept and pass bits.
func markSetOr(bits uint32) match {
	return match{text: fmt.Sprintf("meta mark set meta mark | %#x", bits),
		exprs: []expr.Any{load(expr.MetaKeyMARK), mask(^bits, bits), &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}}}
}

func markSetAnd(keep uint32) match {
	return match{text: fmt.Sprintf("meta mark set meta mark & %#x", keep),
		exprs: []expr.Any{load(expr.MetaKeyMARK), mask(keep, 0), &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}}}
}

// markHas matches packets with (set false: without) any of the bits.
func markHas(bits uint32, set bool) match {
	op, word := expr.CmpOpNeq, "!="
	if !set {
		op, word = expr.CmpOpEq, "=="
	}
	return match{text: fmt.Sprintf("meta mark & %#x %s 0", bits, word),
		exprs: []expr.Any{load(expr.MetaKeyMARK), mask(bits, 0), cmp(op, make([]byte, 4))}}
}

func verdict(kind expr.VerdictKind, chain string) match {
	text := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop", expr.VerdictReturn: "return",
		expr.VerdictJump: "jump ", expr.VerdictGoto: "goto "}[kind] + chain
	return match{text: text, exprs: []expr.Any{&expr.Verdict{Kind: kind, Chain: chain}}}
}

var (
	accept = verdict(expr.VerdictAccept, "")
	drop   = verdict(expr.VerdictDrop, "")
	ret    = verdict(expr.VerdictReturn, "")
)

func jump(chain string) match { return verdict(expr.VerdictJump, chain) }

func masquerade() match { return match{text: "masquerade", exprs: []expr.Any{&expr.Masq{}}} }

func logPacket(prefix string) match {
	return match{text: fmt.Sprintf(`log prefix "%s" level info`, prefix), exprs: []expr.Any{&expr.Log{
		Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Level: expr.LogLevelInfo, Data: []byte(prefix)}}}
}

// Header fields.
type field struct {
	text   string
	base   expr.PayloadBase
	offset uint32
	len    uint32
}

func (f field) load(register uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: register, Base: f.base, Offset: f.offset, Len: f.len}
}

// addrField is an IP header's source (dst false) or destination address of a family (4 or 6).
func addrField(family int, dst bool) field {
	if family == 6 {
		f := field{text: "ip6 saddr", base: expr.PayloadBaseNetworkHeader, offset: 8, len: 16}
		if dst {
			f.text, f.offset = "ip6 daddr", 24
		}
		return f
	}
	f := field{text: "ip saddr", base: expr.PayloadBaseNetworkHeader, offset: 12, len: 4}
	if dst {
		f.text, f.offset = "ip daddr", 16
	}
	return f
}

// portField is the transport header's source (dst false) or destination port.
func portField(dst bool) field {
	if dst {
		return field{text: "th dport", base: expr.PayloadBaseTransportHeader, offset: 2, len: 2}
	}
	return field{text: "th sport", base: expr.PayloadBaseTransportHeader, len: 2}
}

// icmpField is an ICMP (or ICMPv6) header's type, code, or both (type . code).
func icmpField(v6 bool, code, both bool) field {
	name := "icmp"
	if v6 {
		name = "icmpv6"
	}
	switch {
	case both:
		return field{text: fmt.Sprintf("%[1]s type . %[1]s code", name), base: expr.PayloadBaseTransportHeader, len: 2}
	case code:
		return field{text: name + " code", base: expr.PayloadBaseTransportHeader, offset: 1, len: 1}
	}
	return field{text: name + " type", base: expr.PayloadBaseTransportHeader, len: 1}
}

// equals matches a field against a value (negate: against anything else); text is the value in nft's syntax.
func (f field) equals(value []byte, text string, negate bool) match {
	op, not := eqOrNot(negate)
	return match{text: f.text + " " + not + text, exprs: []expr.Any{f.load(reg1), cmp(op, value)}}
}

// between matches a field within an inclusive range of big-endian values (negate: outside it).
func (f field) between(lo, hi []byte, text string, negate bool) match {
	op, not := eqOrNot(negate)
	return match{text: f.text + " " + not + text, exprs: []expr.Any{f.load(reg1), &expr.Range{Op: op, Register: reg1, FromData: lo, ToData: hi}}}
}

// inSet matches a field against a named set (negate: against everything not in it).
func (f field) inSet(set string, negate bool) match {
	_, not := eqOrNot(negate)
	return match{text: f.text + " " + not + "@" + set, exprs: []expr.Any{f.load(reg1), &expr.Lookup{SourceRegister: reg1, SetName: set, Invert: negate}}}
}

// inPrefixes matches a field against address prefixes: one is compared inline, several go in an
// anonymous set.
func (f field) inPrefixes(nets []netip.Prefix, negate bool) match {
	keys := make([]string, len(nets))
	for i, p := range nets {
		keys[i] = elemKey(p)
	}
	if len(nets) > 1 {
		return f.inAnon(prefixesOf(nets[0].Addr()), keys, negate)
	}
	p := nets[0].Masked()
	op, not := eqOrNot(negate)
	m := match{text: f.text + " " + not + "{ " + keys[0] + " }", exprs: []expr.Any{f.load(reg1)}}
	if !p.IsSingleIP() {
		m.exprs = append(m.exprs, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: f.len,
			Mask: prefixMask(p), Xor: make([]byte, f.len)})
	}
	m.exprs = append(m.exprs, cmp(op, p.Addr().AsSlice()))
	return m
}

// prefixMask is the netmask of a prefix, in its address's length.
func prefixMask(p netip.Prefix) []byte {
	m := make([]byte, p.Addr().BitLen()/8)
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// inPorts matches a port field against port ranges: one is compared inline, several go in an
// anonymous set.
func (f field) inPorts(ranges []portRange, negate bool) match {
	keys := make([]string, len(ranges))
	for i, r := range ranges {
		keys[i] = r.String()
	}
	if len(ranges) > 1 {
		return f.inAnon(portRanges, keys, negate)
	}
	text := "{ " + keys[0] + " }"
	r := ranges[0]
	if r.min == r.max {
		return f.equals(binaryutil.BigEndian.PutUint16(r.min), text, negate)
	}
	return f.between(binaryutil.BigEndian.PutUint16(r.min), binaryutil.BigEndian.PutUint16(r.max), text, negate)
}

func (f field) inAnon(typ setType, keys []string, negate bool) match {
	_, not := eqOrNot(negate)
	lookup := &expr.Lookup{SourceRegister: reg1, Invert: negate}
	return match{text: f.text + " " + not + "{ " + strings.Join(keys, ", ") + " }", exprs: []expr.Any{f.load(reg1), lookup},
		anon: &anonSet{typ: typ, keys: keys, lookup: lookup}}
}

// tupleInSet matches a packet's address, protocol and port on one side (dst: the destination's)
// against a named-port set, as the concatenation "ip saddr . meta l4proto . th sport".
func tupleInSet(family int, dst bool, set string, negate bool) match {
	addr, port := addrField(family, dst), portField(dst)
	_, not := eqOrNot(negate)
	// Each part of a concatenation starts at the next 4-byte register after the previous part.
	protoAt := addr.len / 4
	return match{text: addr.text + " . meta l4proto . " + port.text + " " + not + "@" + set, exprs: []expr.Any{
		addr.load(reg1), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: register32(protoAt)}, port.load(register32(protoAt + 1)),
		&expr.Lookup{SourceRegister: reg1, SetName: set, Invert: negate}}}
}

// register32 numbers the i-th 4-byte register as the kernel lists it: one that starts a 16-byte
// register by that register's number, so that what we write reads back the same.
func register32(i uint32) uint32 {
	if i%4 == 0 {
		return reg1 + i/4
	}
	return reg32a + i
}

// portRange is an inclusive range of ports.
type portRange struct{ min, max uint16 }

func (r portRange) String() string {
	if r.min == r.max {
		return fmt.Sprint(r.min)
	}
	return fmt.Sprintf("%d-%d", r.min, r.max)
}
