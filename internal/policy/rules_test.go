package policy

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

func TestResolveRule(t *testing.T) {
	for _, tc := range []struct {
		name, rule string // the rule as Calico JSON
		want       Rule
		err        string // the reason the rule is left out
	}{
		{name: "ports and ranges merge", rule: `{"action":"Allow","protocol":"TCP","destination":{"ports":[8080,"80:90",85,"91:100"]}}`,
			want: Rule{Action: "Allow", Protocol: 6, Dst: Entity{Ports: []PortRange{{80, 100}, {8080, 8080}}}}},
		{name: "nets merge, bare addresses are hosts", rule: `{"action":"Deny","source":{"nets":["10.0.0.0/8","10.1.0.0/16","192.0.2.7","fd00::/64"]}}`,
			want: Rule{Action: "Deny", Src: Entity{Nets: []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/64")}}}},
		{name: "protocol by number, ICMP type and code", rule: `{"action":"Allow","protocol":1,"icmp":{"type":8,"code":0},"notProtocol":"UDP"}`,
			want: Rule{Action: "Allow", Protocol: 1, NotProtocol: 17, ICMP: &ICMPMatch{Type: 8, HasCode: true}}},
		{name: "named ports mixed with numbers keep the numbers", rule: `{"action":"Allow","protocol":"UDP","destination":{"ports":["dns",53],"notPorts":["x"]}}`,
			want: Rule{Action: "Allow", Protocol: 17, Dst: Entity{Ports: []PortRange{{53, 53}}}}},
		{name: "only named ports", rule: `{"action":"Allow","protocol":"TCP","destination":{"ports":["http"]}}`, err: "named ports"},
		{name: "ports without a port protocol", rule: `{"action":"Allow","destination":{"ports":[80]}}`, err: "ports need protocol"},
		{name: "http", rule: `{"action":"Allow","http":{"methods":["GET"]}}`, err: "http"},
		{name: "namespaceSelector", rule: `{"action":"Allow","source":{"namespaceSelector":"all()"}}`, err: "namespaceSelector"},
		{name: "serviceAccounts", rule: `{"action":"Allow","source":{"serviceAccounts":{"names":["a"]}}}`, err: "serviceAccounts"},
		{name: "bad ICMP type", rule: `{"action":"Allow","protocol":"ICMP","icmp":{"type":300}}`, err: "out of range"},
		{name: "bad selector", rule: `{"action":"Allow","source":{"selector":"a =="}}`, err: "selector"},
		{name: "unknown action", rule: `{"action":"Accept"}`, err: "unknown action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r api.Rule
			if err := json.Unmarshal([]byte(tc.rule), &r); err != nil {
				t.Fatal(err)
			}
			got, err := resolveRule(r, "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one about %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Rule, tc.want) {
				t.Errorf("got %+v, %v\nwant %+v", got.Rule, err, tc.want)
			}
		})
	}
}

// Rules left out, and policies applying to nothing, are reported; the other rules of the policy stay.
func TestWarnings(t *testing.T) {
	x := world(t)
	x.SetPolicy("", "mixed", gnp(1, "all()", []string{"Ingress"}, []api.Rule{
		{Action: api.ActionAllow, HTTP: json.RawMessage(`{"methods":["GET"]}`)},
		{Action: api.ActionDeny},
	}, nil))
	spec := gnp(2, "all()", []string{"Ingress"}, nil, nil)
	spec.NamespaceSelector = "all()"
	x.SetPolicy("", "by-namespace", spec)
	c := x.TakeChanges()
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], "gnp/mixed/ingress rule 0") ||
		!strings.Contains(c.Warnings[1], "gnp/by-namespace applies to no endpoint") {
		t.Errorf("warnings %q", c.Warnings)
	}
	rules, _ := x.RuleSet(RuleSetID{Kind: KindGlobalPolicy, Name: "mixed", Dir: Ingress})
	if len(rules) != 1 || rules[0].Action != api.ActionDeny {
		t.Errorf("rules %+v", rules)
	}
	if ep, _ := x.Interface("calia1"); len(ep.Plans[Ingress].Tiers) != 1 || len(ep.Plans[Ingress].Tiers[0].Policies) != 1 {
		t.Errorf("plan %+v: want only the mixed policy", ep.Plans[Ingress])
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
