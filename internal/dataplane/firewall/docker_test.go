package firewall

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

func TestReadDockerFilter(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		want        dockerFilter
		needs       bool
	}{
		{"no Docker, or Docker's nftables backend", "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n", dockerFilter{}, false},
		{"Docker 20.10, iptables", "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER\n-N DOCKER-ISOLATION-STAGE-1\n" +
			"-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n-A DOCKER-USER -j RETURN\n",
			dockerFilter{dropPolicy: true, userChain: true}, true},
		{"Docker 20.10, ip6tables: untouched", "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n", dockerFilter{}, false},
		{"Docker 29, iptables", "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER\n-N DOCKER-FORWARD\n-N DOCKER-USER\n" +
			"-A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-FORWARD\n", dockerFilter{dropPolicy: true, userChain: true}, true},
		{"Docker, iptables, forwarding on before it started: no DROP", "-P FORWARD ACCEPT\n-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n",
			dockerFilter{userChain: true}, true},
		{"switched to nftables, DROP and DOCKER-USER left", "-P FORWARD DROP\n-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n",
			dockerFilter{dropPolicy: true, userChain: true}, true},
		{"another tool's DROP policy", "-P FORWARD DROP\n-N ufw-before-forward\n", dockerFilter{dropPolicy: true}, true},
		{"our own chain only, left from the iptables backend", "-P FORWARD ACCEPT\n-N CALICO-FORWARD\n-A FORWARD -j CALICO-FORWARD\n",
			dockerFilter{}, false},
		{"names that only look alike", "-P INPUT DROP\n-N DOCKER-USER2\n-A FORWARD -j DROP\n", dockerFilter{}, false},
	} {
		got := readDockerFilter(tc.rules)
		if got != tc.want || got.needsForwardAccept() != tc.needs {
			t.Errorf("%s: %+v (needs accept %v), want %+v (%v)", tc.name, got, got.needsForwardAccept(), tc.want, tc.needs)
		}
	}
}

// dockerNftables is the filter part of the tables Docker's nftables backend makes (Docker 29, default
// bridge; integration/network/bridge/nftablesdoc in moby), in both families.
const dockerNftables = `
table FAMILY docker-bridges {
	chain filter-forward-in__docker0 {
		ct state established,related counter accept
		iifname "docker0" counter accept comment "ICC"
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__docker0 {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-in__docker0 }
	}
	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-out__docker0 }
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
}
`

// iptablesState is both families' filter tables, as iptables -S prints them.
func iptablesState(t *testing.T, ns string) string {
	t.Helper()
	return mustExec(t, ns, "iptables", "-S") + mustExec(t, ns, "ip6tables", "-S")
}

// The iptables accept follows Docker's firewall backend as the kernel shows it: none where Docker uses
// nftables (iptables stays exactly as it was, Docker's tables too, and workloads still talk), right after
// DOCKER-USER where Docker uses iptables, and through a switch from iptables to nftables only while
// FORWARD's DROP policy or DOCKER-USER remains, family by family.
func TestForwardAcceptFollowsDockerBackend(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	nftScript := ""
	for _, family := range []string{"ip", "ip6"} {
		nftScript += strings.ReplaceAll(dockerNftables, "FAMILY", family)
	}
	cmd := exec.Command("ip", "netns", "exec", host, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nftScript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("loading Docker's nftables: %v\n%s", err, out)
	}
	dockerTables := func() string {
		return mustExec(t, host, "nft", "-s", "list", "table", "ip", "docker-bridges") +
			mustExec(t, host, "nft", "-s", "list", "table", "ip6", "docker-bridges")
	}
	docker, before := dockerTables(), iptablesState(t, host)

	f := newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	allowAll(t, f, w)
	expectReachable(t, w, true)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if after := iptablesState(t, host); after != before {
		t.Errorf("Docker's nftables backend: iptables changed:\n%s\nwas:\n%s", after, before)
	}
	if after := dockerTables(); after != docker {
		t.Errorf("Docker's tables changed:\n%s\nwas:\n%s", after, docker)
	}

	// Docker's iptables backend.
	dockerLikeForward(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	for _, iptables := range []string{"iptables", "ip6tables"} {
		if got := forwardRules(t, host, iptables); len(got) != 2 || got[0] != userJump || got[1] != jumpRule {
			t.Errorf("iptables backend: %s FORWARD %q, want DOCKER-USER then ours", iptables, got)
		}
	}
	expectReachable(t, w, true)

	// Switched to nftables: FORWARD keeps DROP and DOCKER-USER until the operator removes them, here in
	// ip6tables first.
	dropDockerForward(t, host, "ip6tables")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := forwardRules(t, host, "iptables"); len(got) != 2 || got[1] != jumpRule {
		t.Errorf("iptables FORWARD with DROP and DOCKER-USER left: %q, want ours after DOCKER-USER", got)
	}
	if got := mustExec(t, host, "ip6tables", "-S"); strings.Contains(got, forwardChain) {
		t.Errorf("ip6tables without DROP or DOCKER-USER keeps ours:\n%s", got)
	}
	expectReachable(t, w, true)

	dropDockerForward(t, host, "iptables")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if after := iptablesState(t, host); after != before {
		t.Errorf("iptables after the switch to nftables:\n%s\nwant as it was:\n%s", after, before)
	}
	expectReachable(t, w, true)
	if after := dockerTables(); after != docker {
		t.Errorf("Docker's tables changed:\n%s\nwas:\n%s", after, docker)
	}
}

// dropDockerForward removes what Docker's iptables backend leaves in one family's FORWARD: its DROP
// policy and DOCKER-USER, as an operator does after switching Docker to nftables.
func dropDockerForward(t *testing.T, host, iptables string) {
	mustExec(t, host, iptables, "-P", "FORWARD", "ACCEPT")
	mustExec(t, host, iptables, "-D", "FORWARD", "-j", "DOCKER-USER")
	mustExec(t, host, iptables, "-F", "DOCKER-USER")
	mustExec(t, host, iptables, "-X", "DOCKER-USER")
}
