package calicoctl

import (
	"strings"
	"testing"
)

// completion is cobra's, as upstream's: bash, zsh, fish and powershell scripts for calicoctl.
func TestCompletion(t *testing.T) {
	h := newHarness(t, nil)
	for _, shell := range []string{"bash", "zsh"} {
		stdout := h.expect(0, "", "completion", shell)
		if !strings.Contains(stdout, "calicoctl") || !strings.Contains(stdout, "__complete") {
			t.Errorf("completion %s printed no calicoctl completion script:\n%.200s", shell, stdout)
		}
	}
	h.expect(0, "", "completion", "tcsh") // as upstream: usage, exit 0
}
