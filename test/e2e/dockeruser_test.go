package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// An operator's DOCKER-USER rule applies to traffic between Calico workloads as it does to Docker's
// bridges: a drop for one workload's address blocks it and deleting the rule restores it, before and
// after dockerd restarts (rewriting FORWARD), with our jump right after Docker's DOCKER-USER jump.
func TestDockerUserRules(t *testing.T) {
	e := start(t, nil)
	netName := e.poolNetwork("e2e-dockeruser", "du", "10.232.0.0/16")
	const addr = "10.232.0.50" // fixed, so B keeps it when dockerd restarts it
	restart := []string{"--net", netName, "--restart", "always", "--stop-timeout", "1"}
	a := e.run("a", restart...)
	b := e.run("b", append(restart, "--ip", addr)...)
	e.mustPing(a, addr)

	rule := []string{"DOCKER-USER", "-d", addr, "-j", "DROP"}
	t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
	iptables := func(op string) {
		t.Helper()
		if out, err := exec.Command("iptables", append([]string{op}, rule...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %s %s: %v\n%s", op, strings.Join(rule, " "), err, out)
		}
	}
	iptables("-I")
	e.expectPing(a, addr, false)
	iptables("-D")
	e.expectPing(a, addr, true)

	iptables("-I")
	harness.RestartDockerd(t)
	linktest.Eventually(t, 60*time.Second, time.Second, func() error {
		for _, c := range []string{a, b} {
			if running, err := harness.DockerErr("inspect", "-f", "{{.State.Running}}", c); err != nil || running != "true" {
				return fmt.Errorf("%s not running again after the dockerd restart: %q %v", c, running, err)
			}
		}
		return nil
	})
	// Within one resync of the agent (10 s) our jump is right after Docker's.
	linktest.Eventually(t, 15*time.Second, 500*time.Millisecond, func() error {
		out, err := exec.Command("iptables", "-S", "FORWARD").CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables -S FORWARD: %v: %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if i := slices.Index(lines, "-A FORWARD -j DOCKER-USER"); i < 0 || i+1 >= len(lines) || lines[i+1] != "-A FORWARD -j CALICO-FORWARD" {
			return fmt.Errorf("FORWARD after the dockerd restart:\n%s", out)
		}
		return nil
	})
	e.expectPing(a, addr, false)
	iptables("-D")
	e.expectPing(a, addr, true)
}
