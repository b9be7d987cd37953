package firewall

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

func TestRenderRules(t *testing.T) {
	v4 := netip.MustParsePrefix("10.0.0.0/8")
	v6 := netip.MustParsePrefix("fd00::/64")
	set4, set6 := setName("s:abc", 4), setName("s:abc", 6)
	for _, tc := range []struct {
		name string
		rule policy.Rule
		want []string
	}{
		{"allow anything", policy.Rule{Action: api.ActionAllow},
			[]string{"meta mark set meta mark | 0x10000 return"}},
		{"protocol and port ranges", policy.Rule{Action: api.ActionDeny, Protocol: 6,
			Dst: policy.Entity{Ports: []policy.PortRange{{Min: 80, Max: 80}, {Min: 8000, Max: 8080}}, NotPorts: []policy.PortRange{{Min: 8001, Max: 8001}}}},
			[]string{"meta l4proto 6 th dport { 80, 8000-8080 } th dport != { 8001 } drop"}},
		{"addresses split by family", policy.Rule{Action: api.ActionPass,
			Src: policy.Entity{Nets: []netip.Prefix{v4, v6}, Set: "s:abc"}},
			[]string{"meta nfproto ipv4 ip saddr { 10.0.0.0/8 } ip saddr @" + set4 + " meta mark set meta mark | 0x20000 return",
				"meta nfproto ipv6 ip6 saddr { fd00::/64 } ip6 saddr @" + set6 + " meta mark set meta mark | 0x20000 return"}},
		{"a family without nets or without notNets cannot match (as Felix)", policy.Rule{Action: api.ActionAllow,
			Dst: policy.Entity{Nets: []netip.Prefix{v4, v6}, NotNets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, NotSet: "s:abc"}},
			[]string{"meta nfproto ipv4 ip daddr { 10.0.0.0/8 } ip daddr != { 10.1.0.0/16 } ip daddr != @" + set4 + " meta mark set meta mark | 0x10000 return"}},
		{"ipVersion", policy.Rule{Action: api.ActionLog, IPVersion: 6},
			[]string{`meta nfproto ipv6 log prefix "calico-packet: " level info`}},
		{"ICMP type and code, and not", policy.Rule{Action: api.ActionAllow, Protocol: 1,
			ICMP: &policy.ICMPMatch{Type: 8}, NotICMP: &policy.ICMPMatch{Type: 8, Code: 1, HasCode: true}},
			[]string{"meta l4proto 1 icmp type 8 icmp type . icmp code != { 8 . 1 } meta mark set meta mark | 0x10000 return"}},
		{"ICMPv6 only in IPv6", policy.Rule{Action: api.ActionDeny, Protocol: 58, ICMP: &policy.ICMPMatch{Type: 128, Code: 0, HasCode: true},
			Src: policy.Entity{Set: "s:abc"}},
			[]string{"meta nfproto ipv6 meta l4proto 58 icmpv6 type 128 icmpv6 code 0 ip6 saddr @" + set6 + " drop"}},
		{"notProtocol", policy.Rule{Action: api.ActionDeny, NotProtocol: 17},
			[]string{"meta l4proto != 17 drop"}},
		{"named ports are alternatives to numeric ones; the selector set goes with the numeric", policy.Rule{Action: api.ActionAllow, Protocol: 6,
			Dst: policy.Entity{Set: "s:abc", Ports: []policy.PortRange{{Min: 80, Max: 80}}, NamedPorts: []string{"n:http"}, NotNamedPorts: []string{"n:admin"}}},
			[]string{
				"meta nfproto ipv4 meta l4proto 6 ip daddr @" + set4 + " th dport { 80 } ip daddr . meta l4proto . th dport != @n4-admin meta mark set meta mark | 0x10000 return",
				"meta nfproto ipv4 meta l4proto 6 ip daddr . meta l4proto . th dport @n4-http ip daddr . meta l4proto . th dport != @n4-admin meta mark set meta mark | 0x10000 return",
				"meta nfproto ipv6 meta l4proto 6 ip6 daddr @" + set6 + " th dport { 80 } ip6 daddr . meta l4proto . th dport != @n6-admin meta mark set meta mark | 0x10000 return",
				"meta nfproto ipv6 meta l4proto 6 ip6 daddr . meta l4proto . th dport @n6-http ip6 daddr . meta l4proto . th dport != @n6-admin meta mark set meta mark | 0x10000 return"}},
		{"named ports on both sides multiply", policy.Rule{Action: api.ActionDeny, Protocol: 17, IPVersion: 4,
			Src: policy.Entity{NamedPorts: []string{"n:a", "n:b"}}, Dst: policy.Entity{NamedPorts: []string{"n:c"}}},
			[]string{
				"meta nfproto ipv4 meta l4proto 17 ip saddr . meta l4proto . th sport @n4-a ip daddr . meta l4proto . th dport @n4-c drop",
				"meta nfproto ipv4 meta l4proto 17 ip saddr . meta l4proto . th sport @n4-b ip daddr . meta l4proto . th dport @n4-c drop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := texts(renderRules([]policy.Rule{tc.rule})); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestRenderPlan(t *testing.T) {
	pol := func(name string) policy.RuleSetID {
		return policy.RuleSetID{Kind: policy.KindGlobalPolicy, Name: name, Dir: policy.Ingress}
	}
	prof := policy.RuleSetID{Kind: policy.KindProfile, Name: "net", Dir: policy.Ingress}
	got := texts(renderPlan(policy.Plan{
		Tiers: []policy.TierPlan{
			{Name: "security", Policies: []policy.RuleSetID{pol("a")}, EndPass: true},
			{Name: "default", Policies: []policy.RuleSetID{pol("b"), pol("c")}},
		},
		Profiles: []policy.RuleSetID{prof},
	}))
	want := []string{
		"meta mark set meta mark & 0xfffcffff",
		"jump " + ruleSetChain(pol("a")),
		"meta mark & 0x10000 != 0 return",
		"meta mark set meta mark & 0xfffdffff",
		"jump " + ruleSetChain(pol("b")),
		"meta mark & 0x10000 != 0 return",
		"meta mark & 0x20000 == 0 jump " + ruleSetChain(pol("c")),
		"meta mark & 0x10000 != 0 return",
		"meta mark & 0x20000 == 0 drop",
		"jump " + ruleSetChain(prof),
		"meta mark & 0x10000 != 0 return",
		"drop",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Generated names are what nft accepts unquoted, whatever the input, and stay unique.
func TestNames(t *testing.T) {
	nftName := regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)
	ids := []policy.RuleSetID{
		{Kind: policy.KindGlobalPolicy, Name: "web", Dir: policy.Ingress},
		{Kind: policy.KindGlobalPolicy, Name: "web", Dir: policy.Egress},
		{Kind: policy.KindPolicy, Namespace: "ns", Name: "web", Dir: policy.Ingress},
		{Kind: policy.KindProfile, Name: "web", Dir: policy.Ingress},
		{Kind: policy.KindProfile, Name: `a"; flush ruleset; "` + strings.Repeat("x", 300), Dir: policy.Egress},
	}
	seen := map[string]bool{}
	for _, id := range ids {
		name := ruleSetChain(id)
		if !nftName.MatchString(name) || len(name) > 64 || seen[name] {
			t.Errorf("chain name %q for %v", name, id)
		}
		seen[name] = true
	}
	for _, family := range []int{4, 6} {
		if name := setName("s:"+strings.Repeat("Ab-_9", 10), family); !nftName.MatchString(name) || len(name) > maxSetName {
			t.Errorf("set name %q", name)
		}
	}
}

func texts(rules []rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.text
	}
	return out
}

// A batch orders its commands so that each is valid where it stands.
func TestBatchOrder(t *testing.T) {
	var b batch
	chain := &object{kind: chainKind, rules: []rule{newRule(addrField(4, false).inSet("s4-new", false), drop)}}
	set := &object{kind: setKind, set: addrs4, elems: map[string]string{"10.0.0.1": ""}}
	dispatch := &object{kind: mapKind, set: ifaceVerdicts, elems: map[string]string{"cali1": "goto tw-new"}}
	b.delete(chainKind, 0, "tw-old")
	b.delete(setKind, addrs4, "s4-old")
	b.update(dispatch, &object{kind: mapKind, set: ifaceVerdicts, elems: map[string]string{"cali1": "goto tw-old", "cali2": "goto tw-old"}}, toWLMap)
	b.add(chain, "tw-new")
	b.rewrite(chain, "tw-new")
	b.add(set, "s4-new")
	b.rewrite(set, "s4-new")
	want := `add set inet calico s4-new { type ipv4_addr; }
add chain inet calico tw-new
flush set inet calico s4-new
flush chain inet calico tw-new
add rule inet calico tw-new ip saddr @s4-new drop
delete element inet calico to-wl-map { "cali1", "cali2" }
add element inet calico to-wl-map { "cali1" : goto tw-new }
add element inet calico s4-new { 10.0.0.1 }
flush chain inet calico tw-old
delete chain inet calico tw-old
delete set inet calico s4-old
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
