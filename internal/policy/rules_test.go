package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

func TestResolveRule(t *testing.T) {
	for _, tc := range []struct {
		name, rule string // the rule as Calico JSON
		want       Rule   // what is enforced (a superset of the rule when problem is set)
		named      [2]namedPorts
		problem    string // a match that cannot be enforced
	}{
		{name: "ports and ranges merge", rule: `{"action":"Allow","protocol":"TCP","destination":{"ports":[8080,"80:90",85,"91:100"]}}`,
			want: Rule{Action: "Allow", Protocol: 6, Dst: Entity{Ports: []PortRange{{80, 100}, {8080, 8080}}}}},
		{name: "nets merge, bare addresses are hosts", rule: `{"action":"Deny","source":{"nets":["10.0.0.0/8","10.1.0.0/16","192.0.2.7","fd00::/64"]}}`,
			want: Rule{Action: "Deny", Src: Entity{Nets: []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/64")}}}},
		{name: "protocol by number, ICMP type and code", rule: `{"action":"Allow","protocol":1,"icmp":{"type":8,"code":0},"notProtocol":"UDP"}`,
			want: Rule{Action: "Allow", Protocol: 1, NotProtocol: 17, ICMP: &ICMPMatch{Type: 8, HasCode: true}}},
		{name: "named ports mixed with numbers", rule: `{"action":"Allow","protocol":"UDP","destination":{"ports":["dns",53,"dns"],"notPorts":["x"]},"source":{"ports":["b","a"]}}`,
			want:  Rule{Action: "Allow", Protocol: 17, Dst: Entity{Ports: []PortRange{{53, 53}}}},
			named: [2]namedPorts{{ports: []string{"a", "b"}}, {ports: []string{"dns"}, notPorts: []string{"x"}}}},
		{name: "Allow with ports but no port protocol is left out", rule: `{"action":"Allow","destination":{"ports":[80]}}`,
			want: Rule{Action: "Allow"}, problem: "ports need protocol"},
		{name: "Allow with http is left out", rule: `{"action":"Allow","http":{"methods":["GET"]}}`,
			want: Rule{Action: "Allow"}, problem: "http"},
		{name: "Deny with http denies without it", rule: `{"action":"Deny","protocol":"TCP","http":{"methods":["GET"]}}`,
			want: Rule{Action: "Deny", Protocol: 6}, problem: "http"},
		{name: "Deny with services denies without them", rule: `{"action":"Deny","destination":{"services":{"name":"a","namespace":"b"},"nets":["10.0.0.0/8"]}}`,
			want: Rule{Action: "Deny", Dst: Entity{Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, problem: "services"},
		{name: "bad ICMP type", rule: `{"action":"Allow","protocol":"ICMP","icmp":{"type":300}}`,
			want: Rule{Action: "Allow", Protocol: 1}, problem: "out of range"},
		{name: "bad selector", rule: `{"action":"Allow","source":{"selector":"a =="}}`, want: Rule{Action: "Allow"}, problem: "selector"},
		{name: "unknown action denies", rule: `{"action":"Accept"}`, want: Rule{Action: "Deny"}, problem: "unknown action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r api.Rule
			if err := json.Unmarshal([]byte(tc.rule), &r); err != nil {
				t.Fatal(err)
			}
			got, problems := resolveRule(r, "")
			if why := strings.Join(problems, "; "); (tc.problem == "") != (why == "") || !strings.Contains(why, tc.problem) {
				t.Errorf("problems %q, want one about %q", problems, tc.problem)
			}
			if !reflect.DeepEqual(got.Rule, tc.want) || !reflect.DeepEqual(got.named, tc.named) {
				t.Errorf("got %+v %+v\nwant %+v %+v", got.Rule, got.named, tc.want, tc.named)
			}
		})
	}
}

// The selectors an entity's endpoints must match, as Calico's converter gives them to Felix.
func TestEntitySelector(t *testing.T) {
	for _, tc := range []struct {
		name, entity, namespace, want, notSel string
	}{
		{name: "global: selector as written", entity: `{"selector":"a == 'x'"}`, want: `a == "x"`},
		{name: "namespaced: confined to the namespace", entity: `{"selector":"a == 'x'"}`, namespace: "ns1",
			want: `(projectcalico.org/namespace == "ns1" && a == "x")`},
		{name: "namespaced notSelector: the positive side is the namespace, the negative is not scoped",
			entity: `{"notSelector":"a == 'x'"}`, namespace: "ns1", want: `projectcalico.org/namespace == "ns1"`, notSel: `a == "x"`},
		{name: "namespaced nets only: no selector", entity: `{"nets":["10.0.0.0/8"]}`, namespace: "ns1"},
		{name: "namespaceSelector replaces the policy's namespace", entity: `{"namespaceSelector":"team == 'a'","selector":"app == 'db'"}`,
			namespace: "ns1", want: `(pcns.team == "a" && app == "db")`},
		{name: "namespaceSelector all() is every namespaced endpoint", entity: `{"namespaceSelector":"all()"}`,
			want: `has(projectcalico.org/namespace)`},
		{name: "namespaceSelector global() is the non-namespaced", entity: `{"namespaceSelector":"global()"}`,
			want: `!has(projectcalico.org/namespace)`},
		{name: "service account names and selector", entity: `{"serviceAccounts":{"names":["sa1","sa2"],"selector":"role == 'x'"},"selector":"app == 'db'"}`,
			want: `(pcsa.role == "x" && projectcalico.org/serviceaccount in {"sa1", "sa2"} && app == "db")`},
		{name: "service accounts in a namespaced policy", entity: `{"serviceAccounts":{"names":["sa1"]}}`, namespace: "ns1",
			want: `(projectcalico.org/namespace == "ns1" && projectcalico.org/serviceaccount in {"sa1"})`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e api.EntityRule
			if err := json.Unmarshal([]byte(tc.entity), &e); err != nil {
				t.Fatal(err)
			}
			var r api.Rule
			r.Action, r.Source = api.ActionAllow, e
			got, problems := resolveRule(r, tc.namespace)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			if s := fmt.Sprint(got.sels[0]); (got.sels[0] == nil) != (tc.want == "") || (tc.want != "" && s != tc.want) {
				t.Errorf("selector %v, want %q", got.sels[0], tc.want)
			}
			if s := fmt.Sprint(got.sels[1]); (got.sels[1] == nil) != (tc.notSel == "") || (tc.notSel != "" && s != tc.notSel) {
				t.Errorf("notSelector %v, want %q", got.sels[1], tc.notSel)
			}
		})
	}
}

// The selector of the endpoints a policy applies to.
func TestPolicySelector(t *testing.T) {
	for _, tc := range []struct {
		name, namespace string
		spec            api.PolicySpec
		want            string
	}{
		{name: "global", spec: api.PolicySpec{Selector: "a == 'x'"}, want: `a == "x"`},
		{name: "namespaced", namespace: "ns1", spec: api.PolicySpec{Selector: "a == 'x'"},
			want: `(a == "x" && projectcalico.org/namespace == "ns1")`},
		{name: "namespaced, no selector", namespace: "ns1", want: `projectcalico.org/namespace == "ns1"`},
		{name: "namespaced, service account selector", namespace: "ns1", spec: api.PolicySpec{ServiceAccountSelector: "role == 'x'"},
			want: `(projectcalico.org/namespace == "ns1" && pcsa.role == "x")`},
		{name: "global namespaceSelector all(): every namespaced endpoint (the policy's all() too)",
			spec: api.PolicySpec{Selector: "all()", NamespaceSelector: "all()"},
			want: `(has(projectcalico.org/namespace) && has(projectcalico.org/namespace))`},
		{name: "global namespace and service account selectors", spec: api.PolicySpec{Selector: "app == 'db'",
			NamespaceSelector: "team == 'a'", ServiceAccountSelector: "all()"},
			want: `(app == "db" && pcns.team == "a" && has(projectcalico.org/serviceaccount))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := policySelector(tc.namespace, &tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := selector.MustParse(sel).String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// Rules that cannot be enforced are reported and fail closed; the other rules of the policy stay.
func TestWarnings(t *testing.T) {
	x := world(t)
	x.SetPolicy("", "mixed", gnp(1, "all()", []string{"Ingress"}, []api.Rule{
		{Action: api.ActionAllow, HTTP: json.RawMessage(`{"methods":["GET"]}`)},
		{Action: api.ActionPass, HTTP: json.RawMessage(`{"methods":["GET"]}`)},
		{Action: api.ActionDeny},
	}, nil))
	c := x.TakeChanges()
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], "gnp/mixed/ingress rule 0 (Allow) left out: http") ||
		!strings.Contains(c.Warnings[1], "gnp/mixed/ingress rule 1 (Pass) enforced as a Deny") {
		t.Errorf("warnings %q", c.Warnings)
	}
	rules, _ := x.RuleSet(RuleSetID{Kind: KindGlobalPolicy, Name: "mixed", Dir: Ingress})
	if len(rules) != 2 || rules[0].Action != api.ActionDeny || rules[1].Action != api.ActionDeny {
		t.Errorf("rules %+v", rules)
	}
	if n := x.Unenforced(); n != 2 {
		t.Errorf("%d rules counted as failing closed, want 2", n)
	}
	// The same policy again is not reported again; deleting it ends the count.
	x.SetPolicy("", "mixed", gnp(1, "all()", []string{"Ingress"}, []api.Rule{
		{Action: api.ActionAllow, HTTP: json.RawMessage(`{"methods":["PUT"]}`)},
		{Action: api.ActionPass, HTTP: json.RawMessage(`{"methods":["GET"]}`)},
		{Action: api.ActionDeny},
	}, nil))
	if c := x.TakeChanges(); len(c.Warnings) != 0 {
		t.Errorf("warnings again: %q", c.Warnings)
	}
	x.SetPolicy("", "mixed", nil)
	if n := x.Unenforced(); n != 0 {
		t.Errorf("%d rules counted after the policy went", n)
	}
}

// Two endpoints claiming one interface: the smaller key wins, whatever the order they came in.
func TestInterfaceOwner(t *testing.T) {
	for _, order := range [][]string{{"k1", "k2"}, {"k2", "k1"}} {
		x := NewIndex(node)
		for _, key := range order {
			x.SetEndpoint(key, wep(node, "calix", "10.0.0."+key[1:], nil, nil))
		}
		if ep, _ := x.Interface("calix"); ep.Key != "k1" || ep.Addrs[0].String() != "10.0.0.1" {
			t.Errorf("order %v: owner %+v", order, ep)
		}
		x.SetEndpoint("k1", nil)
		if ep, _ := x.Interface("calix"); ep.Key != "k2" {
			t.Errorf("order %v: after delete, owner %+v", order, ep)
		}
	}
}

// A rule without ipVersion whose notNets are all IPv4 does not apply to IPv6 at all, as in Felix (which
// renders no IPv6 rule for it): an Allow then lets no IPv6 in.
func TestNotNetsOfOneFamily(t *testing.T) {
	x := world(t)
	x.SetPolicy("", "not-nets", gnp(1, "has(net-a)", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow,
		Source: api.EntityRule{NotNets: []string{"10.9.0.0/16"}}}}, nil))
	ep, _ := x.Interface("calia1")
	for src, want := range map[string]bool{"10.0.0.2": true, "10.9.0.1": false, "fd00::2": false} {
		pkt := packet{src: netip.MustParseAddr(src), dst: netip.MustParseAddr("10.0.0.1"), proto: 6, dport: 80}
		if pkt.src.Is6() {
			pkt.dst = netip.MustParseAddr("fd00::1")
		}
		if got := x.verdict(ep.Plans[Ingress], pkt); got != want {
			t.Errorf("from %s: allowed %v, want %v", src, got, want)
		}
	}
}

// Policies in a tier that has no Tier resource come after every existing tier, as Felix sorts invalid tiers.
func TestMissingTierLast(t *testing.T) {
	x := world(t)
	late := gnp(1, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionAllow}}, nil)
	late.Tier = "aaa-missing"
	x.SetPolicy("", "in-missing-tier", late)
	x.SetPolicy("", "in-default", gnp(1, "all()", []string{"Ingress"}, []api.Rule{{Action: api.ActionDeny}}, nil))
	var names []string
	for _, p := range x.sortedPolicies() {
		names = append(names, p.key.name)
	}
	if want := []string{"in-default", "in-missing-tier"}; !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}
