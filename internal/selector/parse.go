package selector

// maxDepth bounds parenthesis nesting so hostile input cannot drive the
// recursive parser, Matches or String into unbounded stack growth.
const maxDepth = 100

// parser is a recursive-descent parser over the token slice from lex.
type parser struct {
	sel   string
	toks  []token
	next  int // index of the next unread token
	depth int // current parenthesis nesting
}

// parse compiles sel into a node tree.
func parse(sel string) (node, error) {
	toks, err := lex(sel)
	if err != nil {
		return nil, err
	}
	if toks[0].kind == tokEOF {
		return trueNode("all()"), nil
	}
	p := parser{sel: sel, toks: toks}
	n, err := p.parseChain(tokOr)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "expected '&&', '||' or end of selector")
	}
	return n, nil
}

func (p *parser) peek() token {
	return p.toks[p.next]
}

// take consumes the next token; at the end it keeps returning tokEOF.
func (p *parser) take() token {
	t := p.toks[p.next]
	if t.kind != tokEOF {
		p.next++
	}
	return t
}

func (p *parser) errorf(at token, format string, args ...any) error {
	return syntaxError(p.sel, at.pos, format, args...)
}

// parseChain parses operands separated by sep, which is tokOr or tokAnd; the
// operands of || are && chains, giving && the higher precedence. Nested chains
// of the same operator are flattened: both operators are associative, so
// "(a && b) && c" and "a && (b && c)" get one canonical form and a shallower
// tree.
func (p *parser) parseChain(sep tokenKind) (node, error) {
	isOr := sep == tokOr
	var kids []node
	for {
		var n node
		var err error
		if isOr {
			n, err = p.parseChain(tokAnd)
		} else {
			n, err = p.parseOp()
		}
		if err != nil {
			return nil, err
		}
		if b, ok := n.(*boolNode); ok && b.or == isOr {
			kids = append(kids, b.kids...)
		} else {
			kids = append(kids, n)
		}
		if p.peek().kind != sep {
			break
		}
		p.take()
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return &boolNode{kids: kids, or: isOr}, nil
}

// parseOp parses one operand with its leading '!'s. Negations collapse, even
// through parentheses ("!(!x)" is "x"), so the canonical form never contains
// "!!", which would itself collapse on re-parsing.
func (p *parser) parseOp() (node, error) {
	negate := false
	for p.peek().kind == tokNot {
		p.take()
		negate = !negate
	}
	n, err := p.parseTerm()
	if err != nil || !negate {
		return n, err
	}
	if inner, ok := n.(*notNode); ok {
		return inner.kid, nil
	}
	return &notNode{kid: n}, nil
}

// parseTerm parses an operand without its leading '!'s.
func (p *parser) parseTerm() (node, error) {
	t := p.take()
	switch t.kind {
	case tokHas:
		return &hasNode{label: t.val}, nil
	case tokAll:
		return trueNode("all()"), nil
	case tokGlobal:
		return trueNode("global()"), nil
	case tokLabel:
		return p.parseComparison(t.val)
	case tokLParen:
		if p.depth == maxDepth {
			return nil, p.errorf(t, "parentheses nested more than %d deep", maxDepth)
		}
		p.depth++
		n, err := p.parseChain(tokOr)
		p.depth--
		if err != nil {
			return nil, err
		}
		if t := p.take(); t.kind != tokRParen {
			return nil, p.errorf(t, "expected '&&', '||' or ')'")
		}
		return n, nil
	}
	return nil, p.errorf(t, "expected a label, has(), all(), global(), '!' or '('")
}

// parseComparison parses the operator and operand that follow a label.
func (p *parser) parseComparison(label string) (node, error) {
	op := p.take()
	switch op.kind {
	case tokEq, tokNe, tokContains, tokStartsWith, tokEndsWith:
		v := p.take()
		if v.kind != tokString {
			return nil, p.errorf(v, "expected a quoted string after '%s'", opText[op.kind])
		}
		return &cmpNode{label: label, value: v.val, op: op.kind}, nil
	case tokIn, tokNotIn:
		return p.parseSet(label, op.kind)
	}
	return nil, p.errorf(op, "expected '==', '!=', 'in', 'not in', 'contains', 'starts with' or 'ends with' after label %q", label)
}

// parseSet parses the "{...}" after 'in' or 'not in'. The set may be empty
// and may end with a trailing comma.
func (p *parser) parseSet(label string, op tokenKind) (node, error) {
	if t := p.take(); t.kind != tokLBrace {
		return nil, p.errorf(t, "expected '{' after '%s'", opText[op])
	}
	n := &setNode{label: label, negated: op == tokNotIn}
	for {
		t := p.take()
		if t.kind == tokRBrace {
			break
		}
		if t.kind != tokString {
			return nil, p.errorf(t, "expected a quoted string or '}' in set")
		}
		n.values = append(n.values, t.val)
		if t = p.take(); t.kind == tokRBrace {
			break
		}
		if t.kind != tokComma {
			return nil, p.errorf(t, "expected ',' or '}' in set")
		}
	}
	n.set = make(map[string]struct{}, len(n.values))
	for _, v := range n.values {
		n.set[v] = struct{}{}
	}
	return n, nil
}
