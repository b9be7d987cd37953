package selector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxLabelLen is Calico's limit on label identifiers.
const maxLabelLen = 512

type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
	tokComma
	tokNot
	tokAnd
	tokOr
	tokString // val is the text between the quotes
	tokLabel  // val is the label
	tokHas    // val is the label inside has(...)
	tokAll
	tokGlobal
	tokEq
	tokNe
	tokIn
	tokNotIn
	tokContains
	tokStartsWith
	tokEndsWith
)

// opText is the canonical spelling of each comparison operator, shared by
// String and error messages.
var opText = [...]string{
	tokEq:         "==",
	tokNe:         "!=",
	tokIn:         "in",
	tokNotIn:      "not in",
	tokContains:   "contains",
	tokStartsWith: "starts with",
	tokEndsWith:   "ends with",
}

// wordOps are the operators spelled as words. They are only recognised
// directly after a label, so labels named "in" or "contains" stay usable.
var wordOps = [...]struct {
	words []string
	kind  tokenKind
}{
	{[]string{"in"}, tokIn},
	{[]string{"not", "in"}, tokNotIn},
	{[]string{"contains"}, tokContains},
	{[]string{"starts", "with"}, tokStartsWith},
	{[]string{"ends", "with"}, tokEndsWith},
}

type token struct {
	kind tokenKind
	pos  int // byte offset in the selector, for error messages
	val  string
}

// syntaxError formats errors uniformly so users can find the fault:
// selector "<sel>": <what went wrong> at position <byte offset>.
func syntaxError(sel string, pos int, format string, args ...any) error {
	return fmt.Errorf("selector %q: %s at position %d", sel, fmt.Sprintf(format, args...), pos)
}

// lex splits sel into tokens, always ending with tokEOF.
func lex(sel string) ([]token, error) {
	var toks []token
	for i := skipSpace(sel, 0); i < len(sel); i = skipSpace(sel, i) {
		afterLabel := len(toks) > 0 && toks[len(toks)-1].kind == tokLabel
		tok, end, err := lexToken(sel, i, afterLabel)
		if err != nil {
			return nil, err
		}
		toks = append(toks, tok)
		i = end
	}
	return append(toks, token{kind: tokEOF, pos: len(sel)}), nil
}

// lexToken reads the token starting at sel[i], which is not whitespace, and
// returns it with the offset just past it.
func lexToken(sel string, i int, afterLabel bool) (token, int, error) {
	rest := sel[i:]
	if afterLabel {
		for _, op := range wordOps {
			if n := matchWords(rest, op.words); n > 0 {
				return token{op.kind, i, ""}, i + n, nil
			}
		}
	}
	single := func(kind tokenKind, n int) (token, int, error) {
		return token{kind, i, ""}, i + n, nil
	}
	switch c := rest[0]; c {
	case '(':
		return single(tokLParen, 1)
	case ')':
		return single(tokRParen, 1)
	case '{':
		return single(tokLBrace, 1)
	case '}':
		return single(tokRBrace, 1)
	case ',':
		return single(tokComma, 1)
	case '!':
		if strings.HasPrefix(rest, "!=") {
			return single(tokNe, 2)
		}
		return single(tokNot, 1)
	case '=':
		if strings.HasPrefix(rest, "==") {
			return single(tokEq, 2)
		}
		return token{}, 0, syntaxError(sel, i, "single '=' is not an operator, expected '=='")
	case '&':
		if strings.HasPrefix(rest, "&&") {
			return single(tokAnd, 2)
		}
		return token{}, 0, syntaxError(sel, i, "single '&' is not an operator, expected '&&'")
	case '|':
		if strings.HasPrefix(rest, "||") {
			return single(tokOr, 2)
		}
		return token{}, 0, syntaxError(sel, i, "single '|' is not an operator, expected '||'")
	case '"', '\'':
		// No escapes: the string ends at the next matching quote.
		n := strings.IndexByte(rest[1:], c)
		if n < 0 {
			return token{}, 0, syntaxError(sel, i, "unterminated string, expected a closing %c for the string", c)
		}
		return token{tokString, i, rest[1 : 1+n]}, i + n + 2, nil
	}
	switch {
	case strings.HasPrefix(rest, "has("):
		return lexHas(sel, i)
	case strings.HasPrefix(rest, "all()"):
		return single(tokAll, len("all()"))
	case strings.HasPrefix(rest, "global()"):
		return single(tokGlobal, len("global()"))
	}
	label, err := scanLabel(sel, i)
	if err != nil {
		return token{}, 0, err
	}
	if label == "" {
		r, _ := utf8.DecodeRuneInString(rest)
		return token{}, 0, syntaxError(sel, i, "unexpected character %q, expected a label, string or operator", r)
	}
	return token{tokLabel, i, label}, i + len(label), nil
}

// lexHas reads "has(" label ")" starting at sel[i], allowing whitespace
// inside the parentheses.
func lexHas(sel string, i int) (token, int, error) {
	start := i
	i = skipSpace(sel, i+len("has("))
	label, err := scanLabel(sel, i)
	if err != nil {
		return token{}, 0, err
	}
	if label == "" {
		return token{}, 0, syntaxError(sel, i, "expected a label after 'has('")
	}
	i = skipSpace(sel, i+len(label))
	if i == len(sel) || sel[i] != ')' {
		return token{}, 0, syntaxError(sel, i, "expected ')' to close 'has('")
	}
	return token{tokHas, start, label}, i + 1, nil
}

// scanLabel returns the (possibly empty) label at sel[i:].
func scanLabel(sel string, i int) (string, error) {
	end := i
	for end < len(sel) && isLabelChar(sel[end]) {
		end++
	}
	if end-i > maxLabelLen {
		return "", syntaxError(sel, i, "label longer than %d characters", maxLabelLen)
	}
	return sel[i:end], nil
}

// matchWords returns the length of the operator spelled by words at the
// start of s, or 0. Any whitespace, including none, may separate the words
// ("notin" is accepted), and the operator must end at a word boundary so that
// a label such as "inner" is not read as "in".
func matchWords(s string, words []string) int {
	n := 0
	for k, w := range words {
		if k > 0 {
			n = skipSpace(s, n)
		}
		if !strings.HasPrefix(s[n:], w) {
			return 0
		}
		n += len(w)
	}
	if n < len(s) && isLabelChar(s[n]) {
		return 0
	}
	return n
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isLabelChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}
