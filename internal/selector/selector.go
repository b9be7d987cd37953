// Package selector implements Calico's label selector language, e.g.
//
//	role == "db" && !has(quarantined) && env in {"prod", "staging"}
//
// Selectors are compiled once by Parse into a small tree that Matches
// evaluates without allocating, because matching runs for every
// endpoint × selector pair. String gives a canonical form so that selectors
// differing only in whitespace or quoting compare equal, and UniqueID derives
// a stable name from it (used, for example, to name kernel IP sets).
package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Selector is a compiled selector. It is immutable and safe for concurrent use.
type Selector struct {
	root node
	text string // canonical form
	id   string
}

// Parse parses a Calico selector. The empty string (or only whitespace) means all().
func Parse(s string) (*Selector, error) {
	root, err := parse(s)
	if err != nil {
		return nil, err
	}
	return compiled(root), nil
}

// compiled wraps a parsed tree with its canonical form and unique ID.
func compiled(root node) *Selector {
	var b strings.Builder
	root.write(&b)
	text := b.String()
	// Computed eagerly so the Selector needs no locking later.
	sum := sha256.Sum224([]byte("s:" + text))
	return &Selector{
		root: root,
		text: text,
		id:   "s:" + base64.RawURLEncoding.EncodeToString(sum[:]),
	}
}

// WithLabelPrefix returns the selector with prefix put before every label name, as Calico does to
// match a namespace's or service account's labels, which endpoints inherit with a prefix.
func (s *Selector) WithLabelPrefix(prefix string) *Selector {
	return compiled(s.root.prefixed(prefix))
}

// MustParse is like Parse but panics on error; for tests and constants.
func MustParse(s string) *Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// Validate returns nil if s parses, for API validation that does not need
// the compiled selector.
func Validate(s string) error {
	_, err := parse(s)
	return err
}

// Matches reports whether a label set matches. A nil map is an empty label set.
func (s *Selector) Matches(labels map[string]string) bool {
	return s.root.eval(labels)
}

// String returns the canonical form, which parses back to an equal selector.
func (s *Selector) String() string {
	return s.text
}

// UniqueID returns "s:" + base64url-no-padding(SHA-224("s:"+String())), a
// stable identifier shared by all equal selectors.
func (s *Selector) UniqueID() string {
	return s.id
}
