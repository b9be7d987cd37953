package readme

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Step is what one or more machines of a multihost block run, in the block's order.
//
// A multihost block says where each command runs in one of two ways:
//
//	# host1 and host2 (why): ...     a comment naming machines (a list "a", "a and b", "a, b and c",
//	command                          ended by ":", "," or " (") heads a section; its lines, up to the
//	command                          next section or prompt, run on each machine it names
//	host1$ command   # say 10.0.0.1  one command on one machine; "# say X" means it prints X, a value the
//	                                 later steps use (the runner puts in what the command really printed)
//
// Other comment lines and blank lines belong to the section they are in; a command before any section is
// an error.
type Step struct {
	Machines []string
	Text     string
	Says     string // a prompt line's "# say X": X
}

var (
	promptRe  = regexp.MustCompile(`^([A-Za-z][\w-]*)\$ (.*)$`)
	sayRe     = regexp.MustCompile(`#\s*say\s+(\S+)\s*$`)
	listRe    = regexp.MustCompile(`^# ([A-Za-z][\w-]*(?:(?:, | and )[A-Za-z][\w-]*)*)(?::|,| \(|$)`)
	listSepRe = regexp.MustCompile(`, | and `)
)

// Steps splits a multihost block's text into steps for the named machines. It fails on a command outside
// any section and on a prompt for an unknown machine.
func Steps(text string, machines []string) ([]Step, error) {
	var steps []Step
	section := -1 // index in steps of the section being read
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if m := promptRe.FindStringSubmatch(line); m != nil {
			if !slices.Contains(machines, m[1]) {
				return nil, fmt.Errorf("line %d of the block: a prompt for %q, not one of %v", i+1, m[1], machines)
			}
			s := Step{Machines: []string{m[1]}, Text: m[2]}
			if say := sayRe.FindStringSubmatch(m[2]); say != nil {
				s.Says = say[1]
			}
			steps, section = append(steps, s), -1
			continue
		}
		if names := sectionOf(line, machines); names != nil {
			steps, section = append(steps, Step{Machines: names, Text: line}), len(steps)
			continue
		}
		if section < 0 {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				return nil, fmt.Errorf("line %d of the block: %q runs on no machine: head its section with a comment naming them (# host1 and host2: ...)", i+1, line)
			}
			continue
		}
		steps[section].Text += "\n" + line
	}
	return steps, nil
}

// sectionOf returns the machines a section's heading comment names, or nil when line is none.
func sectionOf(line string, machines []string) []string {
	m := listRe.FindStringSubmatch(line)
	if m == nil {
		return nil
	}
	names := listSepRe.Split(m[1], -1)
	for _, n := range names {
		if !slices.Contains(machines, n) {
			return nil
		}
	}
	return names
}
