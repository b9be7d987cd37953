package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

var (
	label512 = strings.Repeat("l", maxLabelLen)
	label513 = strings.Repeat("l", maxLabelLen+1)
)

// validSelectors maps accepted input to its canonical form.
var validSelectors = []struct{ in, want string }{
	// Empty means all().
	{"", "all()"},
	{" \t ", "all()"},
	{"all()", "all()"},
	{"global()", "global()"},

	{"has(a)", "has(a)"},
	{"has( a )", "has(a)"},
	{"has(\ta\t)", "has(a)"},

	// Quote style and whitespace do not matter.
	{`a == "b"`, `a == "b"`},
	{`a=='b'`, `a == "b"`},
	{"\ta   ==\t'b' ", `a == "b"`},
	{`a != 'b'`, `a != "b"`},
	{`a == ""`, `a == ""`},
	{`a == 'say "hi"'`, `a == 'say "hi"'`},
	{`a == "it's"`, `a == "it's"`},
	{`a == 'x && y || (z)'`, `a == "x && y || (z)"`},

	// Sets keep the user's order; empty sets and a trailing comma are fine.
	{`a in {'x', "y"}`, `a in {"x", "y"}`},
	{`a in {'y','x'}`, `a in {"y", "x"}`},
	{`a in{'x'}`, `a in {"x"}`},
	{`a in {}`, `a in {}`},
	{`a in { }`, `a in {}`},
	{`a in {'x',}`, `a in {"x"}`},
	{`a not in {'x'}`, `a not in {"x"}`},
	{`a notin {'x'}`, `a not in {"x"}`},
	{"a not \t in{'x'}", `a not in {"x"}`},
	{`a not in {}`, `a not in {}`},

	{`a contains 'x'`, `a contains "x"`},
	{`a contains'x'`, `a contains "x"`},
	{`a starts with 'x'`, `a starts with "x"`},
	{`a startswith 'x'`, `a starts with "x"`},
	{`a ends  with 'x'`, `a ends with "x"`},
	{`a endswith'x'`, `a ends with "x"`},

	// Leading '!'s collapse, even through parentheses.
	{"!has(a)", "!has(a)"},
	{"!!has(a)", "has(a)"},
	{"!!!has(a)", "!has(a)"},
	{"! ! has(a)", "has(a)"},
	{"!(!has(a))", "has(a)"},
	{`!a == 'x'`, `!a == "x"`},
	{"!(has(a) || has(b))", "!(has(a) || has(b))"},

	// Precedence, parentheses and flattening.
	{`a == '1' && has(b)`, `(a == "1" && has(b))`},
	{`a=='1'&&b!='2'||!has(c)`, `((a == "1" && b != "2") || !has(c))`},
	{`a == '1' || b == '2' && c == '3'`, `(a == "1" || (b == "2" && c == "3"))`},
	{`(a == '1' || b == '2') && c == '3'`, `((a == "1" || b == "2") && c == "3")`},
	{"((has(a)))", "has(a)"},
	{"has(a) && (has(b) && has(c))", "(has(a) && has(b) && has(c))"},
	{"(has(a) || has(b)) || has(c)", "(has(a) || has(b) || has(c))"},
	{"has(a) && all() || global()", "((has(a) && all()) || global())"},

	// Label characters, lengths, and labels that look like keywords.
	{`projectcalico.org/namespace == 'default'`, `projectcalico.org/namespace == "default"`},
	{`k8s-app_x.y/Z-9 == 'x'`, `k8s-app_x.y/Z-9 == "x"`},
	{`0 == '1'`, `0 == "1"`},
	{`in == 'x'`, `in == "x"`},
	{`has == 'x'`, `has == "x"`},
	{`all == 'x'`, `all == "x"`},
	{`not in {'x'}`, `not in {"x"}`},
	{`contains contains 'x'`, `contains contains "x"`},
	{`inner in {'x'}`, `inner in {"x"}`},
	{label512 + ` == 'x'`, label512 + ` == "x"`},
	{"has(" + label512 + ")", "has(" + label512 + ")"},

	// Nesting up to the limit.
	{strings.Repeat("(", maxDepth) + "has(a)" + strings.Repeat(")", maxDepth), "has(a)"},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validSelectors {
		sel, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := sel.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		if err := Validate(tc.in); err != nil {
			t.Errorf("Validate(%q) = %v", tc.in, err)
		}
		again, err := Parse(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("canonical form %q of %q does not round-trip: %v", sel.String(), tc.in, err)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`role == db`, `selector "role == db": expected a quoted string after '==' at position 8`},
		{`a == "x`, `unterminated string, expected a closing " for the string at position 5`},
		{`a == 'x`, `unterminated string, expected a closing ' for the string at position 5`},
		{`a in {'x}`, `unterminated string, expected a closing ' for the string at position 6`},
		{`a = 'x'`, `single '=' is not an operator, expected '==' at position 2`},
		{`a === 'x'`, `single '=' is not an operator, expected '==' at position 4`},
		{`has(a) & has(b)`, `single '&' is not an operator, expected '&&' at position 7`},
		{`has(a) | has(b)`, `single '|' is not an operator, expected '||' at position 7`},
		{`(has(a)`, `expected '&&', '||' or ')' at position 7`},
		{`(has(a) has(b))`, `expected '&&', '||' or ')' at position 8`},
		{`has(a))`, `expected '&&', '||' or end of selector at position 6`},
		{`a == 'x' b`, `expected '&&', '||' or end of selector at position 9`},
		{`a == 'x' 'y'`, `expected '&&', '||' or end of selector at position 9`},
		{`a == 'x' in {}`, `expected '&&', '||' or end of selector at position 9`},
		{label513 + ` == 'x'`, `label longer than 512 characters at position 0`},
		{"has(" + label513 + ")", `label longer than 512 characters at position 4`},
		{`a == 'x' #`, `unexpected character '#', expected a label, string or operator at position 9`},
		{`a€ == 'x'`, `unexpected character '€', expected a label, string or operator at position 1`},
		{"a == 'x'\n", `unexpected character '\n', expected a label, string or operator at position 8`},
		{`a`, `expected '==', '!=', 'in', 'not in', 'contains', 'starts with' or 'ends with' after label "a" at position 1`},
		{`a b`, `after label "a" at position 2`},
		{`a inx {'x'}`, `after label "a" at position 2`},
		{`a not {'x'}`, `after label "a" at position 2`},
		{`a starts 'x'`, `after label "a" at position 2`},
		{`a 'x'`, `after label "a" at position 2`},
		{`all( )`, `after label "all" at position 3`},
		{`has (a)`, `after label "has" at position 4`},
		{`a != `, `expected a quoted string after '!=' at position 5`},
		{`a contains x`, `expected a quoted string after 'contains' at position 11`},
		{`a starts with {'x'}`, `expected a quoted string after 'starts with' at position 14`},
		{`a in 'x'`, `expected '{' after 'in' at position 5`},
		{`a not in`, `expected '{' after 'not in' at position 8`},
		{`a in {'x'`, `expected ',' or '}' in set at position 9`},
		{`a in {'x' 'y'}`, `expected ',' or '}' in set at position 10`},
		{`a in {,}`, `expected a quoted string or '}' in set at position 6`},
		{`a in {'x',,}`, `expected a quoted string or '}' in set at position 10`},
		{`a in {x}`, `expected a quoted string or '}' in set at position 6`},
		{`has()`, `expected a label after 'has(' at position 4`},
		{`has( )`, `expected a label after 'has(' at position 5`},
		{`has(a`, `expected ')' to close 'has(' at position 5`},
		{`has(a b)`, `expected ')' to close 'has(' at position 6`},
		{`has(a#)`, `expected ')' to close 'has(' at position 5`},
		{`&& has(a)`, `expected a label, has(), all(), global(), '!' or '(' at position 0`},
		{`has(a) &&`, `expected a label, has(), all(), global(), '!' or '(' at position 9`},
		{`has(a) && || has(b)`, `expected a label, has(), all(), global(), '!' or '(' at position 10`},
		{`!`, `expected a label, has(), all(), global(), '!' or '(' at position 1`},
		{`()`, `expected a label, has(), all(), global(), '!' or '(' at position 1`},
		{`'x' == a`, `expected a label, has(), all(), global(), '!' or '(' at position 0`},
		{strings.Repeat("(", maxDepth+1) + "has(a)" + strings.Repeat(")", maxDepth+1),
			`parentheses nested more than 100 deep at position 100`},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error containing %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error:\n got %q\nwant it to contain %q", tc.in, err, tc.want)
		}
		if Validate(tc.in) == nil {
			t.Errorf("Validate(%q) = nil, want error", tc.in)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic on an invalid selector")
		}
	}()
	MustParse("a = 'b'")
}

var testLabels = map[string]string{"a": "1", "b": "hello world", "empty": ""}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"all()", true},
		{"global()", true},

		{"has(a)", true},
		{"has(empty)", true},
		{"has(z)", false},

		{"a == '1'", true},
		{"a == '2'", false},
		{"empty == ''", true},
		{"z == '1'", false},
		{"z == ''", false},

		{"a != '1'", false},
		{"a != '2'", true},
		{"z != '1'", true}, // absent counts as different
		{"z != ''", true},

		{"a in {'2', '1'}", true},
		{"a in {'2'}", false},
		{"a in {}", false},
		{"z in {'1'}", false},
		{"z in {''}", false},

		{"a not in {'1'}", false},
		{"a not in {'2'}", true},
		{"a not in {}", true},
		{"z not in {'1'}", true}, // absent counts as not in
		{"z not in {}", true},

		{"b contains 'lo w'", true},
		{"b contains ''", true},
		{"b contains 'xyz'", false},
		{"z contains ''", false},

		{"b starts with 'hello'", true},
		{"b starts with 'world'", false},
		{"z starts with ''", false},

		{"b ends with 'world'", true},
		{"b ends with 'hello'", false},
		{"z ends with ''", false},

		{"!has(a)", false},
		{"!has(z)", true},
		{"!!has(a)", true},
		{"!(!has(z))", false},

		{"has(a) && has(b)", true},
		{"has(a) && has(z)", false},
		{"has(z) || has(a)", true},
		{"has(z) || has(y)", false},
		{"has(a) && has(b) && has(empty)", true},
		{"has(z) || has(y) || has(a)", true},

		// Precedence: ! binds tighter than &&, which binds tighter than ||.
		{"has(z) && has(a) || has(b)", true},
		{"has(b) || has(a) && has(z)", true},
		{"(has(b) || has(a)) && has(z)", false},
		{"!has(a) && has(z)", false},
		{"!(has(a) && has(z))", true},
	} {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.sel, err)
		}
		if got := sel.Matches(testLabels); got != tc.want {
			t.Errorf("%q.Matches(%v) = %v, want %v", tc.sel, testLabels, got, tc.want)
		}
	}
}

func TestMatchesNilLabels(t *testing.T) {
	for sel, want := range map[string]bool{
		"all()":           true,
		"has(a)":          false,
		"a == 'x'":        false,
		"a != 'x'":        true,
		"a in {'x'}":      false,
		"a not in {'x'}":  true,
		"a contains ''":   false,
		"!has(a)":         true,
		"has(a) || all()": true,
	} {
		if got := MustParse(sel).Matches(nil); got != want {
			t.Errorf("%q.Matches(nil) = %v, want %v", sel, got, want)
		}
	}
}

// complexSelector exercises every node type; used for allocation and speed checks.
const complexSelector = `role == "db" && !has(quarantined) && env in {"prod", "staging", "dev"} && ` +
	`(tier != "frontend" || name starts with "db-") && zone not in {"us-east-1a"} && global()`

var complexLabels = map[string]string{
	"role": "db", "env": "staging", "tier": "backend", "name": "db-7",
	"zone": "us-west-2b", "projectcalico.org/namespace": "default",
}

func TestMatchesDoesNotAllocate(t *testing.T) {
	sel := MustParse(complexSelector)
	if !sel.Matches(complexLabels) {
		t.Fatal("complexSelector should match complexLabels")
	}
	if allocs := testing.AllocsPerRun(1000, func() { sel.Matches(complexLabels) }); allocs != 0 {
		t.Errorf("Matches allocated %v times per run, want 0", allocs)
	}
}

func BenchmarkMatches(b *testing.B) {
	sel := MustParse(complexSelector)
	b.ReportAllocs()
	for b.Loop() {
		sel.Matches(complexLabels)
	}
}

func TestCanonicalFormAndUniqueID(t *testing.T) {
	// Each group differs only in whitespace, quoting or redundant syntax.
	groups := [][]string{
		{"", " ", "all()", " all() "},
		{`a == "x" && b in {"1", "2"}`, `a=='x'&&b in{'1','2',}`, "\ta == 'x'  &&  b  in  { \"1\" ,'2' }", `(a == "x") && (b in {"1", "2"})`},
		{`!has(a) || c not in {}`, `!!!has(a)||c notin{}`, `!(!(!has( a ))) || (c not  in {})`},
		{`x starts with "it's"`, `x startswith "it's"`, `x starts   with"it's"`},
	}
	ids := map[string]string{}
	for _, group := range groups {
		first := MustParse(group[0])
		for _, in := range group[1:] {
			sel := MustParse(in)
			if sel.String() != first.String() || sel.UniqueID() != first.UniqueID() {
				t.Errorf("%q → (%q, %q), want same as %q → (%q, %q)",
					in, sel.String(), sel.UniqueID(), group[0], first.String(), first.UniqueID())
			}
		}
		if other, dup := ids[first.UniqueID()]; dup {
			t.Errorf("%q and %q share UniqueID %q", group[0], other, first.UniqueID())
		}
		ids[first.UniqueID()] = group[0]
	}
}

func TestUniqueIDFormat(t *testing.T) {
	for _, in := range []string{"", `a == "1" && has(b)`, `a in {'x', "y"}`} {
		sel := MustParse(in)
		sum := sha256.Sum224([]byte("s:" + sel.String()))
		if want := "s:" + base64.RawURLEncoding.EncodeToString(sum[:]); sel.UniqueID() != want {
			t.Errorf("%q.UniqueID() = %q, want %q", in, sel.UniqueID(), want)
		}
	}
	// Pinned values (cross-checked with Python's hashlib) guard against
	// accidental changes to the canonical form, which would rename kernel sets.
	for in, want := range map[string]string{
		"":                   "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug",
		`a == '1' && has(b)`: "s:ag31Nq7j9poOZUWZH5eOdooIQa7dIenLTB6cHA",
	} {
		if got := MustParse(in).UniqueID(); got != want {
			t.Errorf("%q.UniqueID() = %q, want %q", in, got, want)
		}
	}
}

// fuzzLabels are label sets on which a selector and its re-parsed canonical
// form must agree.
var fuzzLabels = []map[string]string{nil, testLabels, complexLabels, {"a": `"`, "b": "'"}}

func FuzzParse(f *testing.F) {
	for _, tc := range validSelectors {
		f.Add(tc.in)
	}
	f.Add(complexSelector)
	f.Fuzz(func(t *testing.T, in string) {
		sel, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel.String(), in, err)
		}
		if again.String() != sel.String() || again.UniqueID() != sel.UniqueID() {
			t.Fatalf("canonical form of %q is unstable: %q then %q", in, sel.String(), again.String())
		}
		for _, labels := range fuzzLabels {
			if sel.Matches(labels) != again.Matches(labels) {
				t.Fatalf("%q and its canonical form %q disagree on %v", in, sel.String(), labels)
			}
		}
	})
}

func TestWithLabelPrefix(t *testing.T) {
	for in, want := range map[string]string{
		`all()`:               `all()`,
		`a == "x" && !has(b)`: `(pcns.a == "x" && !has(pcns.b))`,
		`a in {"x"} || b not in {"y"} || c != "z"`:               `(pcns.a in {"x"} || pcns.b not in {"y"} || pcns.c != "z")`,
		`a contains "x" && a starts with "y" && a ends with "z"`: `(pcns.a contains "x" && pcns.a starts with "y" && pcns.a ends with "z")`,
	} {
		orig := MustParse(in)
		got := orig.WithLabelPrefix("pcns.")
		if got.String() != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
		if again := MustParse(got.String()); again.UniqueID() != got.UniqueID() {
			t.Errorf("%s: prefixed selector's ID differs from its reparsed form", in)
		}
		if orig.String() != MustParse(in).String() {
			t.Errorf("%s: the original changed", in)
		}
	}
}
