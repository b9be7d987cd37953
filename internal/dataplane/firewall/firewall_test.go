package firewall

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
	"github.com/vishvananda/netns"
)

// newInNS returns a Firewall that programs namespace ns.
func newInNS(t testing.TB, ns string) *Firewall {
	f := New("cali", slog.New(slog.NewTextHandler(t.Output(), nil)))
	f.wrap = []string{"ip", "netns", "exec", ns}
	handle, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { handle.Close() })
	f.netns = int(handle)
	return f
}

func mustExec(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := linktest.Exec(ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// workloadIndex is a policy index holding the workloads as local endpoints with the given profiles.
func workloadIndex(w []linktest.Workload, profiles ...string) *policy.Index {
	idx := policy.NewIndex("host")
	for _, wl := range w {
		idx.SetEndpoint(wl.HostIface, workloadEndpoint(wl, nil, profiles...))
	}
	return idx
}

// workloadEndpoint is the endpoint of a workload on node "host".
func workloadEndpoint(wl linktest.Workload, labels map[string]string, profiles ...string) *api.WorkloadEndpoint {
	wep := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: wl.HostIface,
		IPNetworks: []string{wl.IPv4.String() + "/32", wl.IPv6.String() + "/128"}, Profiles: profiles}}
	wep.Namespace, wep.Labels = "libnetwork", labels
	return wep
}

// applyChanges programs what changed in idx.
func applyChanges(t *testing.T, f *Firewall, idx *policy.Index) {
	t.Helper()
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
}

// openFirewall is a firewall ensured in a routed namespace whose workloads are all on an allow-all profile.
func openFirewall(t *testing.T) (host string, w []linktest.Workload, f *Firewall, idx *policy.Index) {
	t.Helper()
	host, w = linktest.Routed(t, "cali")
	f = newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	return host, w, f, allowAll(t, f, w)
}

// allowAll programs a policy under which the workloads may send and receive anything.
func allowAll(t *testing.T, f *Firewall, w []linktest.Workload) *policy.Index {
	t.Helper()
	idx := workloadIndex(w, "open")
	idx.SetProfile("open", &api.Profile{Spec: api.ProfileSpec{
		Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}})
	applyChanges(t, f, idx)
	return idx
}

// dockerLikeForward gives ns the filter FORWARD chain dockerd leaves behind: policy DROP, the
// DOCKER-USER hook on top, nothing matching workload interfaces.
func dockerLikeForward(t *testing.T, ns string) {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		mustExec(t, ns, cmd, "-N", "DOCKER-USER")
		mustExec(t, ns, cmd, "-A", "DOCKER-USER", "-j", "RETURN")
		mustExec(t, ns, cmd, "-A", "FORWARD", "-j", "DOCKER-USER")
		mustExec(t, ns, cmd, "-P", "FORWARD", "DROP")
	}
}

// reachable reports, for each direction and address family, whether a ping gets through. The pings
// run at once, so blocked paths cost one timeout in all.
func reachable(w []linktest.Workload) map[string]bool {
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := make(map[string]bool)
	for _, pair := range [][2]linktest.Workload{{w[0], w[1]}, {w[1], w[0]}} {
		for _, ip := range []net.IP{pair[1].IPv4, pair[1].IPv6} {
			wg.Go(func() {
				ok := linktest.Ping(pair[0].NS, ip) == nil
				mu.Lock()
				defer mu.Unlock()
				got[pair[0].IPv4.String()+"->"+ip.String()] = ok
			})
		}
	}
	wg.Wait()
	return got
}

func expectReachable(t *testing.T, w []linktest.Workload, want bool) {
	t.Helper()
	for path, ok := range reachable(w) {
		if ok != want {
			t.Errorf("%s: reachable %v, want %v", path, ok, want)
		}
	}
}

func TestEnsureAcceptsWorkloadTrafficPastDockerDrop(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	dockerLikeForward(t, host)
	expectReachable(t, w, false)

	f := newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	// Traffic of interfaces no endpoint policy covers is dropped, as Felix does.
	expectReachable(t, w, false)
	allowAll(t, f, w)
	expectReachable(t, w, true)

	// A second Ensure writes nothing: nft rule handles and iptables rules are unchanged.
	before := mustExec(t, host, "nft", "-a", "list", "ruleset")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if after := mustExec(t, host, "nft", "-a", "list", "ruleset"); after != before {
		t.Errorf("second Ensure rewrote the ruleset:\n%s\nwas:\n%s", after, before)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		rules := mustExec(t, host, cmd, "-S")
		if n := strings.Count(rules, jumpRule+"\n"); n != 1 {
			t.Errorf("%s has %d jumps to %s, want 1:\n%s", cmd, n, forwardChain, rules)
		}
	}

	// dockerd restarting moves its DOCKER-USER jump back on top; ours keeps working below it.
	for _, cmd := range []string{"iptables", "ip6tables"} {
		mustExec(t, host, cmd, "-D", "FORWARD", "-j", "DOCKER-USER")
		mustExec(t, host, cmd, "-I", "FORWARD", "-j", "DOCKER-USER")
	}
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, host, "iptables", "-S", "FORWARD"); !strings.Contains(got,
		"-A FORWARD -j DOCKER-USER\n"+jumpRule+"\n") {
		t.Errorf("FORWARD after a dockerd restart and Ensure:\n%s", got)
	}
	expectReachable(t, w, true)

	// Drift is repaired: our iptables jump flushed away, our nft chain emptied.
	mustExec(t, host, "iptables", "-F", "FORWARD")
	mustExec(t, host, "ip6tables", "-F", "FORWARD")
	mustExec(t, host, "nft", "flush", "chain", "inet", "calico", "forward")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, host, "nft", "list", "chain", "inet", "calico", "forward"); !strings.Contains(got, `iifname "cali*"`) {
		t.Errorf("forward chain not restored:\n%s", got)
	}
	expectReachable(t, w, true)

	if installed, err := f.Installed(); err != nil || !installed {
		t.Errorf("Installed = %v, %v; want true", installed, err)
	}
	removed, err := f.Remove()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nftables table inet calico", "iptables chain CALICO-FORWARD and 1 jump(s) to it from FORWARD",
		"ip6tables chain CALICO-FORWARD and 1 jump(s) to it from FORWARD"}; !slices.Equal(removed, want) {
		t.Errorf("Remove removed %q, want %q", removed, want)
	}
	if removed, err := f.Remove(); err != nil || len(removed) > 0 {
		t.Fatalf("second Remove: %q, %v; want nothing removed", removed, err)
	}
	if installed, err := f.Installed(); err != nil || installed {
		t.Errorf("Installed after Remove = %v, %v; want false", installed, err)
	}
	if out, err := linktest.Exec(host, "nft", "list", "table", "inet", "calico"); err == nil {
		t.Errorf("table still present after Remove:\n%s", out)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if rules := mustExec(t, host, cmd, "-S"); strings.Contains(rules, forwardChain) {
			t.Errorf("%s still has %s after Remove:\n%s", cmd, forwardChain, rules)
		}
	}
	expectReachable(t, w, false)
}

func TestEndpointToHostAction(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	hostIP := "192.0.2.1"
	mustExec(t, host, "ip", "addr", "add", hostIP+"/32", "dev", "uplink1")
	f := newInNS(t, host)
	allowAll(t, f, w)
	for _, tc := range []struct {
		action, rule string
		reachable    bool
	}{
		{"DROP", `iifname "cali*" drop`, false},
		{"", `iifname "cali*" accept`, true},
		{"return", `iifname "cali*" return`, true},
	} {
		if err := f.Ensure(Options{EndpointToHostAction: tc.action}); err != nil {
			t.Fatal(err)
		}
		if got := mustExec(t, host, "nft", "list", "chain", "inet", "calico", "input"); !strings.Contains(got, tc.rule) {
			t.Errorf("action %q: input chain lacks %q:\n%s", tc.action, tc.rule, got)
		}
		if err := linktest.Ping(w[0].NS, net.ParseIP(hostIP)); (err == nil) != tc.reachable {
			t.Errorf("action %q: host reachable = %v, want %v", tc.action, err == nil, tc.reachable)
		}
	}
	if err := f.Ensure(Options{EndpointToHostAction: "LOG"}); err == nil {
		t.Error("EndpointToHostAction LOG accepted")
	}
}

func TestSetPools(t *testing.T) {
	ns := linktest.NewNS(t, "fw")
	f := newInNS(t, ns)
	// Before Ensure, too: SetPools declares the sets itself.
	err := f.SetPools(
		prefixes("10.0.0.0/16", "10.0.1.0/24", "10.0.0.0/16", "192.168.7.9/24", "fd00:1::/48"),
		prefixes("10.0.1.0/24", "fd00:1:0:1::/64"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	got := mustExec(t, ns, "nft", "list", "table", "inet", "calico")
	for _, want := range []string{
		"ip saddr @masq-pools4 ip daddr != @all-pools4 masquerade",
		"ip6 saddr @masq-pools6 ip6 daddr != @all-pools6 masquerade",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	expectSet(t, ns, "all-pools4", "10.0.0.0/16", "192.168.7.0/24")
	expectSet(t, ns, "masq-pools4", "10.0.1.0/24")
	expectSet(t, ns, "all-pools6", "fd00:1::/48")
	expectSet(t, ns, "masq-pools6", "fd00:1:0:1::/64")

	// Replacing, not adding: old members go.
	if err := f.SetPools(prefixes("10.9.0.0/16"), nil); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, "all-pools4", "10.9.0.0/16")
	for _, set := range []string{"masq-pools4", "all-pools6", "masq-pools6"} {
		expectSet(t, ns, set)
	}
	if err := f.SetPools([]netip.Prefix{{}}, nil); err == nil {
		t.Error("invalid prefix accepted")
	}
}

func expectSet(t *testing.T, ns, set string, want ...string) {
	t.Helper()
	out := mustExec(t, ns, "nft", "list", "set", "inet", "calico", set)
	var got []string
	if _, elems, ok := strings.Cut(out, "elements = {"); ok {
		elems, _, _ = strings.Cut(elems, "}")
		for e := range strings.SplitSeq(elems, ",") {
			got = append(got, strings.TrimSpace(e))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("set %s = %v, want %v", set, got, want)
	}
}

func prefixes(cidrs ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		ps[i] = netip.MustParsePrefix(c)
	}
	return ps
}

// Names reach nft scripts and iptables rules, so anything beyond the allowed characters is
// refused before any command runs.
func TestInvalidPrefixRefused(t *testing.T) {
	for _, prefix := range []string{"", "cali\"; flush ruleset", "cali*", "a b", "thirteen-char"} {
		f := New(prefix, nil)
		f.wrap = []string{"/nonexistent"} // any command would fail differently
		idx := policy.NewIndex("host")
		for name, err := range map[string]error{
			"Ensure":      f.Ensure(Options{}),
			"SetPools":    f.SetPools(nil, nil),
			"ApplyPolicy": f.ApplyPolicy(idx, idx.TakeChanges()),
			"Remove":      second(f.Remove()),
			"Installed":   second(f.Installed()),
		} {
			if err == nil || !strings.Contains(err.Error(), "invalid interface prefix") {
				t.Errorf("%s with prefix %q: %v", name, prefix, err)
			}
		}
	}
}

func second[T any](_ T, err error) error { return err }

// A label change that only moves an address between sets writes set elements and nothing else; a new
// process drops what the datastore no longer has; a set element removed behind our back comes back.
func TestApplyPolicyIncrementally(t *testing.T) {
	host, w, f, idx := openFirewall(t)
	order := 1.0
	idx.SetPolicy("", "from-web", &api.PolicySpec{Order: &order, Selector: "all()", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: "role == 'web'"}}}})
	applyChanges(t, f, idx)
	webSet := setName(selector.MustParse("role == 'web'").UniqueID(), 4)
	expectSet(t, host, webSet)

	before := mustExec(t, host, "nft", "-a", "-t", "list", "table", "inet", "calico")
	idx.SetEndpoint(w[1].HostIface, workloadEndpoint(w[1], map[string]string{"role": "web"}, "open"))
	applyChanges(t, f, idx)
	expectSet(t, host, webSet, w[1].IPv4.String())
	if after := mustExec(t, host, "nft", "-a", "-t", "list", "table", "inet", "calico"); after != before {
		t.Errorf("a set member change rewrote chains:\n%s\nwas:\n%s", after, before)
	}
	// a may reach b only from a web workload now: a is not one.
	if linktest.Ping(w[0].NS, w[1].IPv4) == nil {
		t.Error("a reaches b past the policy")
	}
	if err := linktest.Ping(w[1].NS, w[0].IPv4); err != nil {
		t.Errorf("b (web) cannot reach a: %v", err)
	}

	// A periodic Ensure with nothing changed writes nothing (the first after a full write does not even
	// look); then drift, an element deleted by hand, is repaired by the next.
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if after := mustExec(t, host, "nft", "-a", "-t", "list", "table", "inet", "calico"); after != before {
		t.Errorf("Ensure rewrote chains:\n%s\nwas:\n%s", after, before)
	}
	mustExec(t, host, "nft", "delete", "element", "inet", "calico", webSet, "{", w[1].IPv4.String(), "}")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	expectSet(t, host, webSet, w[1].IPv4.String())

	// A new process whose datastore lost the policy: its first write removes the policy's chain and sets.
	f2 := newInNS(t, host)
	if err := f2.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, host, "nft", "list", "set", "inet", "calico", webSet); !strings.Contains(got, w[1].IPv4.String()) {
		t.Errorf("Ensure in a new process touched the policy:\n%s", got)
	}
	allowAll(t, f2, w)
	if out, err := linktest.Exec(host, "nft", "list", "set", "inet", "calico", webSet); err == nil {
		t.Errorf("stale set survived a new process's first write:\n%s", out)
	}
	if got := mustExec(t, host, "nft", "list", "chains"); strings.Contains(got, "pi-from-web") {
		t.Errorf("stale policy chain survived:\n%s", got)
	}
	expectReachable(t, w, true)
}

// A policy that applies to no local workload is not programmed: a workload gaining its label brings its
// chain and set (in the transaction that makes the workload's plan jump there), losing it takes them away.
func TestOnlyActivePolicyProgrammed(t *testing.T) {
	host, w, f, idx := openFirewall(t)
	order := 1.0
	idx.SetPolicy("", "deny-db", &api.PolicySpec{Order: &order, Selector: "role == 'db'", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionDeny, Source: api.EntityRule{Selector: "has(client)"}}, {Action: api.ActionAllow}}})
	applyChanges(t, f, idx)
	chain := ruleSetChain(policy.RuleSetID{Kind: policy.KindGlobalPolicy, Name: "deny-db", Dir: policy.Ingress})
	clients := setName(selector.MustParse("has(client)").UniqueID(), 4)
	expectAbsent := func() {
		t.Helper()
		if got := mustExec(t, host, "nft", "list", "table", "inet", "calico"); strings.Contains(got, chain) || strings.Contains(got, clients) {
			t.Errorf("inactive policy programmed:\n%s", got)
		}
	}
	expectAbsent()

	idx.SetEndpoint(w[0].HostIface, workloadEndpoint(w[0], map[string]string{"client": ""}, "open"))
	idx.SetEndpoint(w[1].HostIface, workloadEndpoint(w[1], map[string]string{"role": "db"}, "open"))
	applyChanges(t, f, idx)
	mustExec(t, host, "nft", "list", "chain", "inet", "calico", chain)
	expectSet(t, host, clients, w[0].IPv4.String())
	if linktest.Ping(w[0].NS, w[1].IPv4) == nil {
		t.Error("a client reaches the db past the policy")
	}
	if err := linktest.Ping(w[1].NS, w[0].IPv4); err != nil {
		t.Errorf("the db cannot reach the client: %v", err)
	}

	idx.SetEndpoint(w[1].HostIface, workloadEndpoint(w[1], nil, "open"))
	applyChanges(t, f, idx)
	expectAbsent()
	expectReachable(t, w, true)
}

func TestPlanJump(t *testing.T) {
	const du, other = userJump, "-A FORWARD -o docker0 -j DOCKER"
	for _, tc := range []struct {
		name    string
		forward []string
		want    jumpPlan
	}{
		{"empty FORWARD: at the top", nil, jumpPlan{insert: 1}},
		{"alone", []string{jumpRule}, jumpPlan{}},
		{"alone among others", []string{jumpRule, other}, jumpPlan{}},
		{"missing, DOCKER-USER first", []string{du, other}, jumpPlan{insert: 2}},
		{"right after DOCKER-USER", []string{du, jumpRule, other}, jumpPlan{}},
		{"above DOCKER-USER", []string{jumpRule, du, other}, jumpPlan{remove: 1, insert: 2}},
		{"further down", []string{du, other, jumpRule}, jumpPlan{remove: 1, insert: 2}},
		{"DOCKER-USER last", []string{other, other, du}, jumpPlan{insert: 4}},
		{"twice", []string{du, jumpRule, jumpRule}, jumpPlan{remove: 2, insert: 2}},
		{"after the last DOCKER-USER", []string{du, jumpRule, other, du}, jumpPlan{remove: 1, insert: 4}},
	} {
		if got := planJump(tc.forward); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// forwardRules returns FORWARD's rules in ns, in order.
func forwardRules(t *testing.T, ns, iptables string) []string {
	t.Helper()
	var rules []string
	for line := range strings.Lines(mustExec(t, ns, iptables, "-S", "FORWARD")) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "-A ") {
			rules = append(rules, line)
		}
	}
	return rules
}

// Our jump follows Docker's DOCKER-USER jump through what dockerd and others do to FORWARD, in both
// families; each Ensure puts it back in place.
func TestJumpFollowsDockerUser(t *testing.T) {
	ns := linktest.NewNS(t, "fw")
	f := newInNS(t, ns)
	const docker = "-A FORWARD -o docker0 -j DOCKER"
	steps := []struct {
		name string
		cmds [][]string // run with iptables and ip6tables before Ensure
		want []string   // FORWARD after Ensure
	}{
		{"no Docker: nothing of ours", nil, nil},
		{"dockerd starts, inserting its jump on top",
			[][]string{{"-N", "DOCKER-USER"}, {"-N", "DOCKER"}, {"-I", "FORWARD", "-j", "DOCKER-USER"}, {"-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"}},
			[]string{userJump, jumpRule, docker}},
		{"ours above DOCKER-USER, as an earlier version left it",
			[][]string{{"-D", "FORWARD", "-j", forwardChain}, {"-I", "FORWARD", "-j", forwardChain}},
			[]string{userJump, jumpRule, docker}},
		{"FORWARD flushed, then dockerd restarts",
			[][]string{{"-F", "FORWARD"}, {"-A", "FORWARD", "-j", "DOCKER-USER"}, {"-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"}},
			[]string{userJump, jumpRule, docker}},
		{"DOCKER-USER moved to the end",
			[][]string{{"-D", "FORWARD", "-j", "DOCKER-USER"}, {"-A", "FORWARD", "-j", "DOCKER-USER"}},
			[]string{docker, userJump, jumpRule}},
		{"a second jump of ours on top",
			[][]string{{"-I", "FORWARD", "-j", forwardChain}},
			[]string{docker, userJump, jumpRule}},
		{"dockerd restarts: its jump goes on top again, ours right after it",
			[][]string{{"-D", "FORWARD", "-j", "DOCKER-USER"}, {"-I", "FORWARD", "-j", "DOCKER-USER"}},
			[]string{userJump, jumpRule, docker}},
	}
	for _, step := range steps {
		for _, iptables := range []string{"iptables", "ip6tables"} {
			for _, cmd := range step.cmds {
				mustExec(t, ns, append([]string{iptables}, cmd...)...)
			}
		}
		if err := f.Ensure(Options{}); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		for _, iptables := range []string{"iptables", "ip6tables"} {
			if got := forwardRules(t, ns, iptables); !slices.Equal(got, step.want) {
				t.Errorf("%s: %s FORWARD:\n%s\nwant:\n%s", step.name, iptables, strings.Join(got, "\n"), strings.Join(step.want, "\n"))
			}
		}
	}
}

// A DOCKER-USER rule applies to workload traffic that policy allows: the nftables chain's accept does
// not end the packet's way through iptables' FORWARD, where DOCKER-USER comes before our accept.
func TestDockerUserRulesApplyToWorkloads(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	dockerLikeForward(t, host)
	f := newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	allowAll(t, f, w)
	expectReachable(t, w, true)

	// Dropping what goes to one workload blocks both directions: its replies go to it too.
	drop := [][]string{{"iptables", "DOCKER-USER", "-d", w[1].IPv4.String(), "-j", "DROP"},
		{"ip6tables", "DOCKER-USER", "-d", w[1].IPv6.String(), "-j", "DROP"}}
	for _, rule := range drop {
		mustExec(t, host, append([]string{rule[0], "-I"}, rule[1:]...)...)
	}
	expectReachable(t, w, false)
	for _, rule := range drop {
		mustExec(t, host, append([]string{rule[0], "-D"}, rule[1:]...)...)
	}
	expectReachable(t, w, true)
}

// A named-port set reads back from the kernel as written (so no drift is seen where there is none), and
// an element deleted by hand is restored.
func TestNamedPortSetDrift(t *testing.T) {
	host, w, f, idx := openFirewall(t)
	wep := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: w[1].HostIface,
		IPNetworks: []string{w[1].IPv4.String() + "/32"}, Profiles: []string{"open"},
		Ports: []api.EndpointPort{{Name: "http", Protocol: api.Protocol{Name: "TCP"}, Port: 8080}}}}
	wep.Namespace = "libnetwork"
	idx.SetEndpoint(w[1].HostIface, wep)
	order := 1.0
	tcp := api.Protocol{Name: "TCP"}
	idx.SetPolicy("", "http", &api.PolicySpec{Order: &order, Selector: "all()", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionAllow, Protocol: &tcp, Destination: api.EntityRule{Ports: []api.Port{{Name: "http"}}}}}})
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
	rules, _ := idx.RuleSet(policy.RuleSetID{Kind: policy.KindGlobalPolicy, Name: "http", Dir: policy.Ingress})
	set := setName(rules[0].Dst.NamedPorts[0], 4)
	elem := w[1].IPv4.String() + " . tcp . 8080"
	expectSet(t, host, set, elem)
	before := mustExec(t, host, "nft", "-a", "-t", "list", "table", "inet", "calico")
	for range 2 { // the first Ensure after a full write does not read the table; the second does
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if after := mustExec(t, host, "nft", "-a", "-t", "list", "table", "inet", "calico"); after != before {
		t.Errorf("a named-port set read back as drift: the table was rewritten\n%s\nwas:\n%s", after, before)
	}
	mustExec(t, host, "nft", "delete", "element", "inet", "calico", set, "{", w[1].IPv4.String(), ".", "tcp", ".", "8080", "}")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	expectSet(t, host, set, elem)
}
