// Package readme finds the code blocks of a Markdown document and how the README test treats each, as
// the marker on the line before the block's opening fence says:
//
//	<!-- test: daemon -->              the block starts the plugin daemon; it runs in the background, in the
//	                                   repository root, and the blocks after it run while it serves
//	<!-- test: run -->                 bash runs the block (errexit, pipefail); it must succeed
//	<!-- test: apply -->               the block is a resource document, given to `calicoctl apply -f -`
//	<!-- test: file NAME -->           the block is written to NAME in the folder the blocks run in
//	<!-- test: transcript -->          lines starting "# " or "$ " are commands; the other lines of the
//	                                   block must appear, in order, among the lines the commands print
//	<!-- test: skip (REASON) -->       not run here, for REASON
//	<!-- test: multihost (REASON) -->  needs several hosts: the multi-host lab's to run
//
// Every block but skip and multihost may add clauses `; replace "OLD" with "NEW"` (Go string syntax),
// applied to its text in order before it is used, for a placeholder such as `...`. Every fenced block
// needs a marker, so a new example is either tested or says why not.
package readme

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Kind is what the README test does with a block.
type Kind string

// The kinds a marker names.
const (
	Daemon     Kind = "daemon"
	Run        Kind = "run"
	Apply      Kind = "apply"
	File       Kind = "file"
	Transcript Kind = "transcript"
	Skip       Kind = "skip"
	MultiHost  Kind = "multihost"
)

// Block is one fenced code block and its marker.
type Block struct {
	Line    int    // the opening fence's line, from 1
	Heading string // the nearest heading above it
	Lang    string // the fence's info string ("sh", "yaml", or "")
	Kind    Kind
	Reason  string // Skip and MultiHost: why
	File    string // File: the name to write
	Text    string // the block's lines, fence indentation removed, replacements applied
}

// Parse returns the fenced code blocks of a Markdown document in order, with their markers. It fails,
// naming each line, on a block without a marker, a marker without a block, and a malformed marker.
func Parse(doc string) ([]Block, error) {
	var (
		blocks  []Block
		errs    []error
		heading string
	)
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if h := headingRe.FindStringSubmatch(line); h != nil {
			heading = h[1]
			continue
		}
		if strings.HasPrefix(trimmed, "<!-- test:") && !isFence(next(lines, i)) {
			errs = append(errs, fmt.Errorf("line %d: a test marker must be on the line right before a code fence", i+1))
			continue
		}
		if !isFence(line) {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		fence := strings.TrimLeft(trimmed, "`~")
		fence = trimmed[:len(trimmed)-len(fence)]
		b := Block{Line: i + 1, Heading: heading, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, fence))}
		var body []string
		for i++; i < len(lines); i++ {
			if t := strings.TrimSpace(lines[i]); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == "" {
				break
			}
			body = append(body, strings.TrimPrefix(lines[i], strings.Repeat(" ", indent)))
		}
		if i == len(lines) {
			errs = append(errs, fmt.Errorf("line %d: code block never closed", b.Line))
			break
		}
		b.Text = strings.Join(body, "\n") + "\n"
		if b.Line < 2 || !strings.HasPrefix(strings.TrimSpace(lines[b.Line-2]), "<!-- test:") {
			errs = append(errs, fmt.Errorf("line %d: code block (%s) under %q has no test marker: put <!-- test: run -->, "+
				"<!-- test: skip (why) --> or another (see test/e2e/readme) on the line before its fence", b.Line, langName(b.Lang), heading))
			continue
		}
		if err := b.mark(strings.TrimSpace(lines[b.Line-2])); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", b.Line-1, err))
			continue
		}
		blocks = append(blocks, b)
	}
	if len(errs) == 0 {
		errs = append(errs, checkOrder(blocks))
	}
	return blocks, errors.Join(errs...)
}

func next(lines []string, i int) string {
	if i+1 < len(lines) {
		return lines[i+1]
	}
	return ""
}

func isFence(line string) bool {
	t := strings.TrimLeft(line, " ")
	return len(line)-len(t) < 4 && (strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"))
}

func langName(lang string) string {
	if lang == "" {
		return "no language"
	}
	return lang
}

var (
	headingRe = regexp.MustCompile(`^#{1,6} +(.*?)\s*$`)
	markerRe  = regexp.MustCompile(`^<!-- test: (.*?) ?-->$`)
	reasonRe  = regexp.MustCompile(`^\((.+)\)$`)
	replaceRe = regexp.MustCompile(`^;\s*replace\s+("(?:[^"\\]|\\.)*")\s+with\s+("(?:[^"\\]|\\.)*")\s*`)
)

// mark sets b's kind from marker, and applies its replacements to b.Text.
func (b *Block) mark(marker string) error {
	m := markerRe.FindStringSubmatch(marker)
	if m == nil {
		return fmt.Errorf("malformed test marker %q: want <!-- test: KIND ... -->", marker)
	}
	word, rest, _ := strings.Cut(m[1], " ")
	if i := strings.Index(word, ";"); i >= 0 {
		word, rest = word[:i], word[i:]+" "+rest
	}
	rest = strings.TrimSpace(rest)
	b.Kind = Kind(word)
	switch b.Kind {
	case Skip, MultiHost:
		r := reasonRe.FindStringSubmatch(rest)
		if r == nil {
			return fmt.Errorf("marker %q: %s needs a reason in parentheses", marker, b.Kind)
		}
		b.Reason = r[1]
		return nil
	case File:
		b.File, rest, _ = strings.Cut(rest, ";")
		b.File = strings.TrimSpace(b.File)
		if b.File == "" || strings.ContainsAny(b.File, "/ ") {
			return fmt.Errorf("marker %q: file needs a plain file name", marker)
		}
		if rest != "" {
			rest = ";" + rest
		}
	case Daemon, Run:
		if b.Lang != "sh" && b.Lang != "bash" {
			return fmt.Errorf("marker %q: %s needs a sh or bash block, not %s", marker, b.Kind, langName(b.Lang))
		}
	case Apply, Transcript:
	default:
		return fmt.Errorf("marker %q: unknown kind %q", marker, word)
	}
	for rest != "" {
		r := replaceRe.FindStringSubmatch(rest)
		if r == nil {
			return fmt.Errorf("marker %q: cannot read %q: want `; replace \"OLD\" with \"NEW\"`", marker, rest)
		}
		old, _ := strconv.Unquote(r[1])
		repl, _ := strconv.Unquote(r[2])
		if old == "" || !strings.Contains(b.Text, old) {
			return fmt.Errorf("marker %q: the block has no %q to replace", marker, old)
		}
		b.Text = strings.ReplaceAll(b.Text, old, repl)
		rest = rest[len(r[0]):]
	}
	return nil
}

// checkOrder requires at most one daemon block, before every block that needs it.
func checkOrder(blocks []Block) error {
	daemon := 0
	for _, b := range blocks {
		switch b.Kind {
		case Daemon:
			if daemon != 0 {
				return fmt.Errorf("line %d: a second daemon block (the first is on line %d)", b.Line, daemon)
			}
			daemon = b.Line
		case Run, Apply, Transcript:
			if daemon == 0 {
				return fmt.Errorf("line %d: a %s block before the daemon block", b.Line, b.Kind)
			}
		}
	}
	return nil
}

// Command is one command of a transcript and the lines it is shown to print.
type Command struct {
	Line   string
	Output []string // non-empty lines, trimmed
}

// Commands splits a transcript block into its commands.
func (b Block) Commands() []Command {
	var cmds []Command
	for _, line := range strings.Split(b.Text, "\n") {
		if cmd, ok := prompt(line); ok {
			cmds = append(cmds, Command{Line: cmd})
		} else if t := strings.TrimSpace(line); t != "" && len(cmds) > 0 {
			cmds[len(cmds)-1].Output = append(cmds[len(cmds)-1].Output, t)
		}
	}
	return cmds
}

func prompt(line string) (string, bool) {
	for _, p := range []string{"# ", "$ "} {
		if cmd, ok := strings.CutPrefix(line, p); ok {
			return cmd, true
		}
	}
	return "", false
}

// Missing returns the first of want that is not among got's lines (trimmed) after the lines the earlier
// ones matched, and whether there is one.
func Missing(want []string, got string) (string, bool) {
	lines := strings.Split(got, "\n")
	j := 0
	for _, w := range want {
		for j < len(lines) && strings.TrimSpace(lines[j]) != w {
			j++
		}
		if j == len(lines) {
			return w, true
		}
		j++
	}
	return "", false
}
