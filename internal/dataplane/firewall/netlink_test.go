package firewall

import (
	"fmt"
	"log/slog"
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
	if why, err := f.drift(); err != nil || why != "" {
		t.Errorf("drift right after writing: %q, %v\n%s", why, err, mustExec(t, host, "nft", "list", "table", "inet", "calico"))
	}
}

// A rule edited by hand is found by its content (the chain keeps its length) and restored by the next
// Ensure, which the agent runs every resync period.
func TestHandEditedRuleRestored(t *testing.T) {
	host, w := linktest.Routed(t, "cali")
	f := newInNS(t, host)
	if err := f.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	idx := allowAll(t, f, w)
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
// to fit netlink's 16-bit attribute lengths), read back without drift, and a new process rewrites them
// in one transaction too.
func TestThousandEndpoints(t *testing.T) {
	host := linktest.Host(t)
	idx := policy.NewIndex("host")
	idx.SetProfile("open", &api.Profile{Spec: api.ProfileSpec{
		Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}})
	var nets []string
	for i := range 1000 {
		wep := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: fmt.Sprintf("cali%011x", i),
			IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 64+i/65536, i/256%256, i%256)}, Profiles: []string{"open"}}}
		wep.Namespace, wep.Labels = "libnetwork", map[string]string{"app": fmt.Sprint("app", i%20)}
		idx.SetEndpoint(wep.Spec.InterfaceName, wep)
		nets = append(nets, fmt.Sprintf("192.168.%d.%d/32", i/256, i%256))
	}
	order := 1.0
	idx.SetPolicy("", "many-nets", &api.PolicySpec{Order: &order, Selector: "app == 'app1'", Types: []string{"Ingress"},
		Ingress: []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Nets: nets, Selector: "has(app)"}}}})
	for range 2 {
		f := newInNS(t, host)
		var logs strings.Builder
		f.log = slog.New(slog.NewTextHandler(&logs, nil))
		if err := f.Ensure(Options{}); err != nil {
			t.Fatal(err)
		}
		if err := f.ApplyPolicy(idx, idx.All()); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "refused") {
			t.Errorf("a transaction was refused:\n%s", logs.String())
		}
		if why, err := f.drift(); err != nil || why != "" {
			t.Errorf("drift after writing: %q, %v", why, err)
		}
	}
}
