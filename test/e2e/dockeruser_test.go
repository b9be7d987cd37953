package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// DOCKER-USER, or its nftables equivalent: an operator's rule for forwarded traffic, where Docker tells
// operators to put it, applies to traffic between Calico workloads as it does to Docker's bridges: a drop
// for one workload's address blocks it and deleting the rule restores it, before and after dockerd
// restarts. Under Docker's iptables backend the rule is in DOCKER-USER, and our jump stays right after
// Docker's jump to it. Docker's nftables backend has no DOCKER-USER: its docs ("Docker with nftables",
// Replacing DOCKER-USER with an nftables table) have the operator add a table of their own with a filter
// base chain on the forward hook; there the plugin uses no iptables at all.
func TestDockerUserRules(t *testing.T) {
	e := start(t, nil)
	netName := e.poolNetwork("e2e-dockeruser", "du", "10.232.0.0/16")
	const addr = "10.232.0.50" // fixed, so B keeps it when dockerd restarts it
	restart := []string{"--net", netName, "--restart", "always", "--stop-timeout", "1"}
	a := e.run("a", restart...)
	b := e.run("b", append(restart, "--ip", addr)...)
	e.mustPing(a, addr)

	nftables := harness.FirewallBackend(t) == "nftables"
	drop := operatorDrop(t, nftables, addr)
	drop(true)
	e.expectPing(a, addr, false)
	drop(false)
	e.expectPing(a, addr, true)

	drop(true)
	harness.RestartDockerd(t)
	linktest.Eventually(t, 60*time.Second, time.Second, func() error {
		for _, c := range []string{a, b} {
			if running, err := harness.DockerErr("inspect", "-f", "{{.State.Running}}", c); err != nil || running != "true" {
				return fmt.Errorf("%s not running again after the dockerd restart: %q %v", c, running, err)
			}
		}
		return nil
	})
	if nftables {
		noIptables(t)
	} else {
		jumpAfterDockerUser(t)
	}
	e.expectPing(a, addr, false)
	drop(false)
	e.expectPing(a, addr, true)
}

// operatorDrop returns a function that adds (true) or deletes (false) the operator's rule dropping
// forwarded traffic to addr; the rule also goes when the test ends. Under nftables it is Docker's own
// example (priority filter, the same as Docker's chain; a drop in any base chain is final).
func operatorDrop(t *testing.T, nftables bool, addr string) func(add bool) {
	if !nftables {
		rule := []string{"DOCKER-USER", "-d", addr, "-j", "DROP"}
		t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
		return func(add bool) {
			t.Helper()
			op := "-D"
			if add {
				op = "-I"
			}
			mustHost(t, append([]string{"iptables", op}, rule...)...)
		}
	}
	const table = "e2e-operator"
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
	return func(add bool) {
		t.Helper()
		if !add {
			mustHost(t, "nft", "delete", "table", "ip", table)
			return
		}
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(fmt.Sprintf(`table ip %s {
	chain my-filter-forward {
		type filter hook forward priority filter; policy accept;
		ip daddr %s counter drop
	}
}
`, table, addr))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("adding the operator's nftables table: %v\n%s", err, out)
		}
	}
}

// jumpAfterDockerUser waits one resync of the agent (10 s) for our jump to be right after Docker's.
func jumpAfterDockerUser(t *testing.T) {
	t.Helper()
	linktest.Eventually(t, 15*time.Second, 500*time.Millisecond, func() error {
		out, err := exec.Command("iptables", "-S", "FORWARD").CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables -S FORWARD: %v: %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		// Right after Docker's jump to DOCKER-USER: its last, should an engine have left another.
		i := -1
		for j, l := range lines {
			if l == "-A FORWARD -j DOCKER-USER" {
				i = j
			}
		}
		if i < 0 || i+1 >= len(lines) || lines[i+1] != "-A FORWARD -j CALICO-FORWARD" {
			return fmt.Errorf("FORWARD after the dockerd restart:\n%s", out)
		}
		return nil
	})
}

// noIptables checks that, under Docker's nftables backend, iptables holds nothing of ours, while Docker's
// tables are there: FORWARD has no DROP policy or DOCKER-USER (scripts/test-e2e.sh removes what Debian's
// dockerd left, as Docker's migration notes say), so nothing needs our accept.
func noIptables(t *testing.T) {
	t.Helper()
	if out := mustHost(t, "nft", "list", "tables"); !strings.Contains(out, "table ip docker-bridges\n") {
		t.Errorf("Docker reports its nftables backend but has no table ip docker-bridges:\n%s", out)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		out := mustHost(t, cmd, "-S")
		if strings.Contains(out, "-P FORWARD DROP\n") || strings.Contains(out, "-N DOCKER-USER\n") {
			t.Fatalf("%s keeps FORWARD's DROP policy or DOCKER-USER from the iptables backend: this is not a host "+
				"of Docker's nftables backend alone (ENGINE=current-nft removes them):\n%s", cmd, out)
		}
		// Within one resync of the agent, should an earlier run have left ours.
		linktest.Eventually(t, 15*time.Second, 500*time.Millisecond, func() error {
			out, err := host(cmd, "-S")
			if err == nil && strings.Contains(out, "CALICO-FORWARD") {
				err = fmt.Errorf("%s holds our chain under Docker's nftables backend:\n%s", cmd, out)
			}
			return err
		})
	}
}
