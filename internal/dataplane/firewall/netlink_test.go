package firewall

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// everyConstruct is a policy using every match the renderer writes, in both families.
func everyConstruct(idx *policy.Index, w []linktest.Workload) {
	order := 1.0
	tcp, icmp := api.Protocol{Name: "TCP"}, api.Protocol{Name: "ICMP"}
	typ, code := 8, 0
	wep := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: w[1].HostIface,
		IPNetworks: []string{w[1].IPv4.String() + "/32", w[1].IPv6.String() + "/128"}, Profiles: []string{"open"},
		Ports: []api.EndpointPort{{Name: "http", Protocol: tcp, Port: 8080}}}}
	wep.Namespace, wep.Labels = "libnetwork", map[string]string{"role": "web"}
	idx.SetEndpoint(w[1].HostIface, wep)
	idx.SetPolicy("", "every", &api.PolicySpec{Order: &order, Selector: "all()", Types: []string{"Ingress", "Egress"},
		Ingress: []api.Rule{
			{Action: api.ActionLog, Protocol: &icmp, ICMP: &api.ICMPFields{Type: &typ, Code: &code}},
			{Action: api.ActionAllow, Protocol: &icmp, NotICMP: &api.ICMPFields{Type: &typ, Code: &code}},
			{Action: api.ActionDeny, Protocol: &tcp, Source: api.EntityRule{Nets: []string{"10.1.0.0/16", "10.3.0.0/16", "fd00:9::/64"},
				NotNets: []string{"10.1.2.0/24"}, NotSelector: "role == 'db'"},
				Destination: api.EntityRule{Ports: []api.Port{{MinPort: 80, MaxPort: 80}, {MinPort: 8000, MaxPort: 8080}}, NotPorts: []api.Port{{MinPort: 8001, MaxPort: 8001}}}},
			{Action: api.ActionPass, Protocol: &tcp, Destination: api.EntityRule{Selector: "role == 'web'", Ports: []api.Port{{Name: "http"}, {MinPort: 443, MaxPort: 443}}}},
			{Action: api.ActionAllow, Source: api.EntityRule{Nets: []string{"10.2.0.0/16"}}},
		},
		Egress: []api.Rule{{Action: api.ActionAllow, Protocol: &tcp, Destination: api.EntityRule{NotPorts: []api.Port{{Name: "http"}}}}},
	})
}

// What is written reads back as written: no drift right after a write, for every construct the
// renderer uses (which is how drift detection can compare rule content at all).
func TestReadBackMatchesWrite(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	f := newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPools(prefixes("10.65.0.0/16", "10.66.0.0/24", "0.0.0.0/1", "fd00:1::/48"), prefixes("10.65.0.0/16")); err != nil {
		t.Fatal(err)
	}
	idx := allowAll(t, f, w)
	everyConstruct(idx, w)
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
	noDrift(t, host, f)
}

// noDrift checks the table for drift now (Ensure skips the check right after a full write) and fails t
// on any.
func noDrift(t *testing.T, host string, f *Firewall) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fresh = false
	drifted, err := f.checkDrift()
	if err != nil || len(drifted) > 0 || f.sweep {
		t.Errorf("drift: %v (unexpected objects: %v), %v\n%s", drifted, f.sweep, err, mustExec(t, host, "nft", "list", "table", "inet", "calico"))
	}
}

// A rule edited by hand is found by its content (the chain keeps its length), and an element added to or
// deleted from a map by hand is found too; the next Ensure, which the agent runs every resync period,
// restores each.
func TestHandEditedRuleRestored(t *testing.T) {
	host, w, f, idx := openFirewall(t)
	everyConstruct(idx, w)
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(Options{}); err != nil { // the first after a full write does not read the table
		t.Fatal(err)
	}
	policyChain := ruleSetChain(policy.RuleSetID{Kind: policy.KindGlobalPolicy, Name: "every", Dir: policy.Ingress})
	// Each edit replaces the first rule containing find with replacement, a rule of as many statements.
	for _, edit := range []struct{ chain, find, replacement string }{
		{"forward", `iifname "cali*" jump from-wl`, `iifname "cali*" accept`},
		{"forward", `ct state established,related accept`, `ct state established,related,new accept`},
		{policyChain, `ip saddr 10.2.0.0/16`, `ip saddr 10.4.0.0/16 meta mark set meta mark | 0x00010000 return`},
		{policyChain, `tcp dport { 80, 8000-8080 }`, `tcp dport 8000-8090 drop`}, // (nft 1.0.6 aborts replacing with an interval set)
	} {
		listing := mustExec(t, host, "nft", "-a", "list", "chain", "inet", "calico", edit.chain)
		var handle, original string
		for line := range strings.Lines(listing) {
			if strings.Contains(line, edit.find) {
				original, _, _ = strings.Cut(strings.TrimSpace(line), " # handle ")
				handle = regexp.MustCompile(`# handle (\d+)`).FindStringSubmatch(line)[1]
				break
			}
		}
		if handle == "" {
			t.Fatalf("no rule %q in\n%s", edit.find, listing)
		}
		edited := edit.replacement
		mustExec(t, host, "nft", "replace", "rule", "inet", "calico", edit.chain, "handle", handle, edited)
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
		if got := mustExec(t, host, "nft", "list", "chain", "inet", "calico", edit.chain); !strings.Contains(got, original) || strings.Contains(got, edited) {
			t.Errorf("%q edited to %q is not restored:\n%s", original, edited, got)
		}
		if err := f.Ensure(Options{}); err != nil { // again past the full write
			t.Fatal(err)
		}
	}
	// Maps and sets are compared element by element, and repaired by difference.
	mustExec(t, host, "nft", `add element inet calico to-wl-map { "cali-extra" : accept }; delete element inet calico from-wl-map { "`+w[1].HostIface+`" }`)
	before := mustExec(t, host, "nft", "list", "map", "inet", "calico", "to-wl-map")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, host, "nft", "list", "map", "inet", "calico", "to-wl-map"); strings.Contains(got, "cali-extra") {
		t.Errorf("an element added by hand is not removed:\n%s", got)
	} else if !strings.Contains(before, "cali-extra") {
		t.Errorf("the element was not added:\n%s", before)
	}
	if got := mustExec(t, host, "nft", "list", "map", "inet", "calico", "from-wl-map"); !strings.Contains(got, `"`+w[1].HostIface+`" : goto`) {
		t.Errorf("an element deleted by hand is not restored:\n%s", got)
	}
}

// A policy the kernel refuses (here, a rule over the kernel's limit of 128 expressions, which Calico's
// validation allows) fails closed for the endpoints it applies to and holds back nothing else: an
// endpoint that joins afterwards gets its connectivity and policy.
func TestRefusedPolicyFailsClosed(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	f := newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	idx := policy.NewIndex("host")
	endpoint := func(wl linktest.Workload, labels map[string]string) {
		wep := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: wl.HostIface,
			IPNetworks: []string{wl.IPv4.String() + "/32", wl.IPv6.String() + "/128"}, Profiles: []string{"open"}}}
		wep.Namespace, wep.Labels = "libnetwork", labels
		idx.SetEndpoint(wl.HostIface, wep)
	}
	endpoint(w[0], map[string]string{"role": "a"})
	idx.SetProfile("open", &api.Profile{Spec: api.ProfileSpec{
		Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}})
	tcp := api.Protocol{Name: "TCP"}
	var names []api.Port
	for i := range 40 {
		names = append(names, api.Port{Name: fmt.Sprintf("p%d", i)})
	}
	order := 1.0
	idx.SetPolicy("", "too-big", &api.PolicySpec{Order: &order, Selector: "role == 'a'", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionAllow, Protocol: &tcp, Destination: api.EntityRule{NotPorts: names}}, {Action: api.ActionAllow}}})
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
	refused := f.Refused()
	if len(refused) != 1 || !strings.Contains(refused[0].String(), "too-big") {
		t.Fatalf("refused: %v, want the chain of too-big", refused)
	}
	// The second workload joins after the refusal: it gets connectivity and policy, while traffic into
	// the first, which the refused policy applies to, fails closed.
	endpoint(w[1], nil)
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatalf("a change after a refusal: %v", err)
	}
	for path, ok := range reachable(w) {
		if into0 := strings.HasSuffix(path, w[0].IPv4.String()) || strings.HasSuffix(path, w[0].IPv6.String()); ok == into0 {
			t.Errorf("%s: reachable %v", path, ok)
		}
	}
	for range 2 { // resyncs keep the stand-in and report it without rewriting
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// Fixing the policy replaces the stand-in.
	idx.SetPolicy("", "too-big", &api.PolicySpec{Order: &order, Selector: "all()", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionAllow}}})
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
	if r := f.Refused(); len(r) != 0 {
		t.Errorf("still refused after the fix: %v", r)
	}
	expectReachable(t, w, true)
}

// A thousand endpoints go to the kernel in one transaction (the dispatch maps' element lists are split
// to fit netlink's 16-bit attribute lengths) and read back without drift. A new process (a restart)
// finds them in the kernel as it wants them and writes nothing; with one endpoint's labels changed
// meanwhile, it writes only the sets that endpoint left and joined; both reading the kernel when it
// writes and reading it ahead (Prefetch). What changes between reading ahead and writing is repaired
// by the next Ensure.
func TestThousandEndpoints(t *testing.T) {
	host := linktest.Host(t)
	idx := policy.NewIndex("host")
	idx.SetProfile("open", &api.Profile{Spec: api.ProfileSpec{
		Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}})
	var nets []string
	weps := make([]*api.WorkloadEndpoint, 1000)
	for i := range weps {
		weps[i] = &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: fmt.Sprintf("cali%011x", i),
			IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 64+i/65536, i/256%256, i%256)}, Profiles: []string{"open"}}}
		weps[i].Namespace, weps[i].Labels = "libnetwork", map[string]string{"app": fmt.Sprint("app", i%20)}
		idx.SetEndpoint(weps[i].Spec.InterfaceName, weps[i])
		nets = append(nets, fmt.Sprintf("192.168.%d.%d/32", i/256, i%256))
	}
	order := 1.0
	idx.SetPolicy("", "many-nets", &api.PolicySpec{Order: &order, Selector: "app == 'app1'", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Nets: nets, Selector: "app == 'app2'"}}}})
	// start runs a new process's first Ensure and ApplyPolicy and returns the transactions it sent;
	// meanwhile, after reading the table ahead, it runs meanwhile.
	start := func(ahead bool, meanwhile func()) []string {
		f := newInNS(t, host)
		var logs strings.Builder
		f.log = slog.New(slog.NewTextHandler(&logs, nil))
		var sent []string
		f.transport = func(b *batch) error {
			sent = append(sent, b.String())
			return f.sendNetlink(b)
		}
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
		if ahead {
			f.Prefetch()
			<-f.prefetch.done
		}
		meanwhile()
		if err := f.ApplyPolicy(idx, idx.All()); err != nil {
			t.Fatal(err)
		}
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "refused") {
			t.Errorf("a transaction was refused:\n%s", logs.String())
		}
		noDrift(t, host, newInNSAdopting(t, host, idx))
		return sent
	}
	nothing := func() {}
	if sent := start(false, nothing); len(sent) != 2 || !strings.Contains(sent[1], `"cali000000003e7" : goto`) {
		t.Errorf("the first process sent %d transactions, want the base chains, then all of the policy", len(sent))
	}
	for _, ahead := range []bool{false, true} {
		if sent := start(ahead, nothing); len(sent) != 0 {
			t.Errorf("a restart (reading ahead: %v) with nothing changed wrote to the kernel:\n%s", ahead, strings.Join(sent, "\n"))
		}
	}
	for i, ahead := range []bool{false, true} {
		w := weps[2+20*i]
		w.Labels = map[string]string{"app": "app1"} // leaves app2's set, joins app1's: now under the policy
		idx.SetEndpoint(w.Spec.InterfaceName, w)
		sent := start(ahead, nothing)
		script := strings.Join(sent, "\n")
		if len(sent) != 1 || strings.Count(script, "\n") > 12 || !strings.Contains(script, strings.TrimSuffix(w.Spec.IPNetworks[0], "/32")) || strings.Contains(script, "cali000000003e7") {
			t.Errorf("a restart (reading ahead: %v) after one endpoint's labels changed sent, want only what changed:\n%s", ahead, script)
		}
	}
	sent := start(true, func() { mustExec(t, host, "nft", `delete element inet calico to-wl-map { "cali000000003e7" }`) })
	if script := strings.Join(sent, "\n"); len(sent) != 1 || !strings.Contains(script, `add element inet calico to-wl-map { "cali000000003e7" : goto`) {
		t.Errorf("an element deleted after reading ahead is not restored by the next Ensure; sent:\n%s", script)
	}
}

// newInNSAdopting is a new process's Firewall that has applied idx by adopting what the kernel holds.
func newInNSAdopting(t *testing.T, host string, idx *policy.Index) *Firewall {
	f := newInNS(t, host)
	f.transport = func(b *batch) error { return fmt.Errorf("the kernel does not hold what is wanted:\n%s", b) }
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.ApplyPolicy(idx, idx.All()); err != nil {
		t.Fatal(err)
	}
	return f
}

// The generation counts transactions of any table: ours, and another's.
func TestGeneration(t *testing.T) {
	host := linktest.Host(t)
	f := newInNS(t, host)
	g0, err := f.generation()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	g1, err := f.generation()
	if err != nil || g1 == g0 {
		t.Fatalf("generation %d after Ensure, %d before (%v)", g1, g0, err)
	}
	mustExec(t, host, "nft", "add table ip other")
	if g2, err := f.generation(); err != nil || g2 != g1+1 {
		t.Errorf("generation %d after another table's transaction, want %d (%v)", g2, g1+1, err)
	}
}

// While no transaction changes any table, Ensure reads nothing back: neither the table (which it would
// repair) nor, with iptables-nft, FORWARD; a change anywhere makes the next Ensure look again.
func TestQuietEnsureReadsNothing(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	f := newInNS(t, host)
	commands := filepath.Join(t.TempDir(), "commands")
	f.wrap = []string{"sh", "-c", `echo "$*" >>` + commands + `; exec ip netns exec ` + host + ` "$@"`, "sh"}
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	idx := allowAll(t, f, w)
	if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
		t.Fatal(err)
	}
	ran := func() string {
		out, _ := os.ReadFile(commands)
		os.Remove(commands)
		return string(out)
	}
	for i, want := range []bool{true, false, false} {
		ran()
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
		if got := ran(); strings.Contains(got, "-S") != want {
			t.Errorf("Ensure %d: read FORWARD: %v, want %v (ran %q)", i+1, !want, want, got)
		}
	}
	if !f.iptablesOnNFTables("iptables") {
		t.Skip("iptables is not iptables-nft here: the generation does not count its changes")
	}
	mustExec(t, host, "iptables", "-P", "FORWARD", "DROP")
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, host, "iptables", "-S", "FORWARD"); !strings.Contains(got, "-j "+forwardChain) {
		t.Errorf("FORWARD set to DROP has no jump to %s after Ensure:\n%s", forwardChain, got)
	}
}
