package selector

import "strings"

// node is one operation of a compiled selector. eval must not allocate:
// it runs for every endpoint × selector pair.
type node interface {
	eval(labels map[string]string) bool
	// write appends the canonical form.
	write(b *strings.Builder)
	// prefixed returns a copy whose label names start with prefix.
	prefixed(prefix string) node
}

// trueNode is all() or global(); both match every label set. Its value is
// its canonical text.
type trueNode string

func (trueNode) eval(map[string]string) bool { return true }

func (n trueNode) write(b *strings.Builder) { b.WriteString(string(n)) }

func (n trueNode) prefixed(string) node { return n }

// hasNode is has(label).
type hasNode struct {
	label string
}

func (n *hasNode) eval(labels map[string]string) bool {
	_, ok := labels[n.label]
	return ok
}

func (n *hasNode) write(b *strings.Builder) {
	b.WriteString("has(")
	b.WriteString(n.label)
	b.WriteByte(')')
}

func (n *hasNode) prefixed(prefix string) node { return &hasNode{label: prefix + n.label} }

// cmpNode compares a label's value with a string: ==, !=, contains,
// starts with or ends with.
type cmpNode struct {
	label, value string
	op           tokenKind
}

func (n *cmpNode) eval(labels map[string]string) bool {
	v, ok := labels[n.label]
	switch n.op {
	case tokEq:
		return ok && v == n.value
	case tokNe:
		return !ok || v != n.value // an absent label is "not equal"
	case tokContains:
		return ok && strings.Contains(v, n.value)
	case tokStartsWith:
		return ok && strings.HasPrefix(v, n.value)
	default: // tokEndsWith
		return ok && strings.HasSuffix(v, n.value)
	}
}

func (n *cmpNode) write(b *strings.Builder) {
	b.WriteString(n.label)
	b.WriteByte(' ')
	b.WriteString(opText[n.op])
	b.WriteByte(' ')
	writeQuoted(b, n.value)
}

func (n *cmpNode) prefixed(prefix string) node {
	c := *n
	c.label = prefix + n.label
	return &c
}

// setNode is "label in {...}" or, when negated, "label not in {...}", which
// also matches when the label is absent.
type setNode struct {
	label   string
	values  []string            // in the user's order, for String
	set     map[string]struct{} // for matching
	negated bool
}

func (n *setNode) eval(labels map[string]string) bool {
	v, ok := labels[n.label]
	if ok {
		_, ok = n.set[v]
	}
	return ok != n.negated
}

func (n *setNode) write(b *strings.Builder) {
	b.WriteString(n.label)
	b.WriteByte(' ')
	if n.negated {
		b.WriteString(opText[tokNotIn])
	} else {
		b.WriteString(opText[tokIn])
	}
	b.WriteString(" {")
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		writeQuoted(b, v)
	}
	b.WriteByte('}')
}

func (n *setNode) prefixed(prefix string) node {
	c := *n
	c.label = prefix + n.label
	return &c
}

// notNode is !kid.
type notNode struct {
	kid node
}

func (n *notNode) eval(labels map[string]string) bool { return !n.kid.eval(labels) }

func (n *notNode) write(b *strings.Builder) {
	b.WriteByte('!')
	n.kid.write(b)
}

func (n *notNode) prefixed(prefix string) node { return &notNode{kid: n.kid.prefixed(prefix)} }

// boolNode is a chain of two or more operands joined by && (or false) or ||
// (or true), evaluated left to right with short-circuiting.
type boolNode struct {
	kids []node
	or   bool
}

func (n *boolNode) eval(labels map[string]string) bool {
	// && stops at the first false operand, || at the first true one.
	for _, k := range n.kids {
		if k.eval(labels) == n.or {
			return n.or
		}
	}
	return !n.or
}

// write always parenthesises, so the canonical form never depends on
// precedence rules.
func (n *boolNode) write(b *strings.Builder) {
	sep := " && "
	if n.or {
		sep = " || "
	}
	b.WriteByte('(')
	for i, k := range n.kids {
		if i > 0 {
			b.WriteString(sep)
		}
		k.write(b)
	}
	b.WriteByte(')')
}

func (n *boolNode) prefixed(prefix string) node {
	kids := make([]node, len(n.kids))
	for i, k := range n.kids {
		kids[i] = k.prefixed(prefix)
	}
	return &boolNode{kids: kids, or: n.or}
}

// writeQuoted quotes v with " unless it contains one, then with '. Strings
// have no escapes, so a parsed value never contains both quote characters.
func writeQuoted(b *strings.Builder, v string) {
	q := byte('"')
	if strings.IndexByte(v, '"') >= 0 {
		q = '\''
	}
	b.WriteByte(q)
	b.WriteString(v)
	b.WriteByte(q)
}
