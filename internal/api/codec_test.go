package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// decodeAny decodes JSON into generic maps so that documents can be compared semantically.
func decodeAny(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, data)
	}
	return m
}

// lookupPath follows a dotted path through decoded maps.
func lookupPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// newForDocument returns an empty object of the kind the document declares.
func newForDocument(t *testing.T, data []byte) Object {
	t.Helper()
	var tm TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		t.Fatal(err)
	}
	info, err := LookupKind(tm.Kind)
	if err != nil {
		t.Fatal(err)
	}
	return info.New()
}

// fixtures lists every testdata document with the fields this version does not model, which must survive.
// Those under upstream/ were stored by upstream calicoctl (upstream/record.sh). The three others are
// written by hand on purpose, being what no upstream binary built here writes: a pool with omitted fields
// (as etcdctl or an older calicoctl leaves it), a pool in Calico 3.0's format with fields of even older
// ones, and the ClusterInformation calico/node and the operator complete (calicoVersion, variant).
type fixture struct {
	file    string
	kind    string
	unknown []string
}

var fixtures = []fixture{
	{"ippool-minimal.json", KindIPPool, nil},
	{"ippool-2018.json", KindIPPool, []string{"spec.ipip.enabled", "spec.ipip.mode", "spec.nat-outgoing"}},
	{"clusterinformation.json", KindClusterInformation, []string{"spec.variant"}},
	{"upstream/ippool-v6.json", KindIPPool, []string{"spec.namespaceSelector"}},
	{"upstream/workloadendpoint-libnetwork.json", KindWorkloadEndpoint, nil},
	{"upstream/profile-mynet.json", KindProfile, nil},
	{"upstream/globalnetworkpolicy-rules.json", KindGlobalNetworkPolicy, []string{"spec.performanceHints"}},
	{"upstream/networkpolicy-np1.json", KindNetworkPolicy, nil},
	{"upstream/node-my-host.json", KindNode, []string{"spec.wireguard.interfaceIPv4Address", "status.wireguardPublicKey", "status.podCIDRs"}},
	{"upstream/init-tier-default.json", KindTier, []string{"status"}},
	{"upstream/felixconfiguration-default.json", KindFelixConfiguration, []string{"spec.bpfLogLevel", "spec.natPortRange", "spec.healthPort"}},
	{"upstream/bgpconfiguration-default.json", KindBGPConfiguration, nil},
	{"upstream/bgpconfiguration-node.json", KindBGPConfiguration, nil},
	{"upstream/bgppeer-global.json", KindBGPPeer, nil},
	{"upstream/bgppeer-selector.json", KindBGPPeer, nil},
	{"upstream/bgppeer-ipv6-port.json", KindBGPPeer, nil},
	{"upstream/bgppeer-local-workload.json", KindBGPPeer, nil},
}

func TestFixturesCoverEveryKind(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range fixtures {
		seen[f.kind] = true
	}
	for _, k := range KindNames() {
		if !seen[k] {
			t.Errorf("no testdata fixture for kind %s", k)
		}
	}
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		if !slices.ContainsFunc(fixtures, func(x fixture) bool { return "testdata/"+x.file == f }) {
			t.Errorf("%s is not listed in fixtures", f)
		}
	}
}

func TestRoundTripFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.file, func(t *testing.T) {
			data := readFixture(t, f.file)
			o := newForDocument(t, data)
			if KindOf(o).Kind != f.kind {
				t.Fatalf("kind %s, want %s", KindOf(o).Kind, f.kind)
			}
			if err := Unmarshal(data, o); err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			want, got := decodeAny(t, data), decodeAny(t, out)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip changed the document\nwant %s\ngot  %s", data, out)
			}
			for _, path := range f.unknown {
				if _, ok := lookupPath(got, path); !ok {
					t.Errorf("unknown field %s lost", path)
				}
			}

			// Without the stored document only the modelled fields come out, and all of them do.
			o.GetObjectMeta().Stored = nil
			bare, err := Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			bareMap := decodeAny(t, bare)
			for _, path := range f.unknown {
				if _, ok := lookupPath(bareMap, path); ok {
					t.Errorf("%s is not modelled yet was written without a stored document", path)
				}
			}
			if len(f.unknown) == 0 && !reflect.DeepEqual(want, bareMap) {
				t.Errorf("typed fields alone do not reproduce the document\nwant %s\ngot  %s", data, bare)
			}

			// What Calico stored is valid for us too.
			fresh := newForDocument(t, data)
			if err := Unmarshal(data, fresh); err != nil {
				t.Fatal(err)
			}
			Default(fresh)
			if err := Validate(fresh); err != nil {
				t.Errorf("stored document does not validate: %v", err)
			}
		})
	}
}

func TestUnmarshalTypedFields(t *testing.T) {
	var wep WorkloadEndpoint
	if err := Unmarshal(readFixture(t, "upstream/workloadendpoint-libnetwork.json"), &wep); err != nil {
		t.Fatal(err)
	}
	if wep.Name != "test-libnetwork-libnetwork-"+testEndpointID || wep.Namespace != "libnetwork" ||
		wep.Spec.Node != "test" || wep.Spec.InterfaceName != "cali50d858e0985" ||
		!reflect.DeepEqual(wep.Spec.IPNetworks, []string{"192.168.0.5/32", "fd80:24e2:f998:72d6::5/128"}) ||
		wep.CreationTimestamp == nil ||
		len(wep.Spec.Ports) != 1 || wep.Spec.Ports[0].Protocol.String() != "TCP" || wep.Spec.Ports[0].Port != 80 {
		t.Errorf("decoded %+v %+v", wep.ObjectMeta, wep.Spec)
	}

	var p Profile
	if err := Unmarshal(readFixture(t, "upstream/profile-mynet.json"), &p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.Ingress[0].Source.Selector != "has(mynet)" || p.Spec.Egress[0].Action != ActionAllow ||
		!reflect.DeepEqual(p.Spec.LabelsToApply, map[string]string{"mynet": ""}) {
		t.Errorf("decoded %+v", p.Spec)
	}
	// The spec as upstream calicoctl stores it, byte for byte.
	spec, err := json.Marshal(p.Spec)
	if err != nil {
		t.Fatal(err)
	}
	const upstream = `{"ingress":[{"action":"Allow","source":{"selector":"has(mynet)"}}],"egress":[{"action":"Allow"}],"labelsToApply":{"mynet":""}}`
	if string(spec) != upstream {
		t.Errorf("profile spec\n%s\nwant\n%s", spec, upstream)
	}

	var gnp GlobalNetworkPolicy
	if err := Unmarshal(readFixture(t, "upstream/globalnetworkpolicy-rules.json"), &gnp); err != nil {
		t.Fatal(err)
	}
	r0, r1, r2 := gnp.Spec.Ingress[0], gnp.Spec.Ingress[1], gnp.Spec.Ingress[2]
	if gnp.Spec.Order == nil || *gnp.Spec.Order != 100 || gnp.Spec.Tier != "default" ||
		gnp.Labels["projectcalico.org/tier"] != "default" ||
		r0.Protocol.String() != "TCP" || len(r0.Destination.Ports) != 3 || r0.Destination.Ports[1].String() != "8000:8080" ||
		r0.Destination.Ports[2].Name != "http" ||
		*r1.ICMP.Type != 8 || *r1.ICMP.Code != 0 || *r1.IPVersion != 4 ||
		r2.Protocol.NumberValue() != 17 || r2.NotProtocol.String() != "SCTP" || r2.Metadata.Annotations["why"] != "audit" {
		t.Errorf("decoded %+v", gnp.Spec)
	}

	var node Node
	if err := Unmarshal(readFixture(t, "upstream/node-my-host.json"), &node); err != nil {
		t.Fatal(err)
	}
	if node.Spec.BGP.IPv4Address != "10.0.0.1/24" || node.Spec.BGP.ASNumber == nil || *node.Spec.BGP.ASNumber != 64512 ||
		node.Spec.IPv4VXLANTunnelAddr != "192.168.10.0" || node.Spec.VXLANTunnelMACAddr != "66:3a:5f:01:02:03" {
		t.Errorf("decoded %+v %+v", node.Spec, node.Spec.BGP)
	}

	var tier Tier
	if err := Unmarshal(readFixture(t, "upstream/init-tier-default.json"), &tier); err != nil {
		t.Fatal(err)
	}
	if tier.Spec.Order == nil || *tier.Spec.Order != 1000000 || tier.Spec.DefaultAction != "Deny" {
		t.Errorf("decoded %+v", tier.Spec)
	}
	out, _ := Marshal(&tier)
	if !strings.Contains(string(out), `"order":1000000`) {
		t.Errorf("tier order not written as an integer: %s", out)
	}
}

func TestModifyKeepsUnknownFields(t *testing.T) {
	data := readFixture(t, "upstream/node-my-host.json")
	var node Node
	if err := Unmarshal(data, &node); err != nil {
		t.Fatal(err)
	}
	stored := decodeAny(t, data)["metadata"].(map[string]any)
	node.ResourceVersion = "1234"
	node.Spec.IPv4VXLANTunnelAddr = "192.168.20.0"
	node.Spec.BGP.IPv6Address = ""                  // removed known field must stay removed
	node.Spec.Addresses = nil                       // removed known list too
	node.Labels = map[string]string{"new": "label"} // replaced map
	out, err := Marshal(&node)
	if err != nil {
		t.Fatal(err)
	}
	if node.ResourceVersion != "1234" {
		t.Errorf("Marshal changed the in-memory resourceVersion to %q", node.ResourceVersion)
	}
	m := decodeAny(t, out)
	checks := map[string]any{
		"spec.ipv4VXLANTunnelAddr":            "192.168.20.0",
		"spec.wireguard.interfaceIPv4Address": "192.168.10.2",
		"status.wireguardPublicKey":           "jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=",
		"spec.bgp.ipv4Address":                "10.0.0.1/24",
		"metadata.uid":                        stored["uid"],
		"metadata.labels.new":                 "label",
		"spec.bgp.asNumber":                   float64(64512),
		"kind":                                "Node",
		"apiVersion":                          "projectcalico.org/v3",
		"spec.vxlanTunnelMACAddr":             "66:3a:5f:01:02:03",
		"spec.orchRefs":                       []any{map[string]any{"nodeName": "my-host", "orchestrator": "libnetwork"}},
		"metadata.creationTimestamp":          stored["creationTimestamp"],
		"status.podCIDRs":                     []any{"192.168.10.0/24"},
		"spec.bgp.ipv4IPIPTunnelAddr":         "192.168.10.1",
		"metadata.labels":                     map[string]any{"new": "label"},
		"spec.wireguard":                      map[string]any{"interfaceIPv4Address": "192.168.10.2"},
		"status":                              map[string]any{"wireguardPublicKey": "jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=", "podCIDRs": []any{"192.168.10.0/24"}},
		"spec.bgp":                            map[string]any{"asNumber": float64(64512), "ipv4Address": "10.0.0.1/24", "ipv4IPIPTunnelAddr": "192.168.10.1"},
		"metadata.name":                       "my-host",
	}
	for path, want := range checks {
		got, ok := lookupPath(m, path)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v (present %v), want %#v", path, got, ok, want)
		}
	}
	for _, gone := range []string{"spec.bgp.ipv6Address", "spec.addresses", "metadata.resourceVersion", "metadata.labels.kubernetes.io/hostname"} {
		if _, ok := lookupPath(m, gone); ok {
			t.Errorf("%s still written after it was removed", gone)
		}
	}

	// A second update, from the object decoded out of the first one, still carries the unknown fields.
	var again Node
	if err := Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	again.Spec.VXLANTunnelMACAddr = "66:00:00:00:00:01"
	out2, err := Marshal(&again)
	if err != nil {
		t.Fatal(err)
	}
	m2 := decodeAny(t, out2)
	if v, _ := lookupPath(m2, "spec.wireguard.interfaceIPv4Address"); v != "192.168.10.2" {
		t.Errorf("unknown field lost on the second update: %s", out2)
	}
	if v, _ := lookupPath(m2, "spec.vxlanTunnelMACAddr"); v != "66:00:00:00:00:01" {
		t.Errorf("change not written: %s", out2)
	}

	// 2018 pool: v1-era fields are kept, a known field cleared stays cleared.
	var pool IPPool
	if err := Unmarshal(readFixture(t, "ippool-2018.json"), &pool); err != nil {
		t.Fatal(err)
	}
	pool.Spec.NATOutgoing = false
	pool.Spec.Disabled = true
	pm := decodeAny(t, mustMarshal(t, &pool))
	if _, ok := lookupPath(pm, "spec.natOutgoing"); ok {
		t.Error("natOutgoing resurrected from the stored document")
	}
	if v, _ := lookupPath(pm, "spec.disabled"); v != true {
		t.Error("disabled not written")
	}
	if v, _ := lookupPath(pm, "spec.nat-outgoing"); v != true {
		t.Error("nat-outgoing lost")
	}
	if v, _ := lookupPath(pm, "spec.ipip.mode"); v != "always" {
		t.Error("ipip lost")
	}
}

func mustMarshal(t *testing.T, o Object) []byte {
	t.Helper()
	b, err := Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMarshalNeverStoresResourceVersion(t *testing.T) {
	// A value written by a non-compliant writer that embedded resourceVersion.
	doc := []byte(`{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"p","resourceVersion":"77","selfLinkish":"x"},"spec":{}}`)
	var p Profile
	if err := Unmarshal(doc, &p); err != nil {
		t.Fatal(err)
	}
	if p.ResourceVersion != "77" {
		t.Fatalf("resourceVersion %q", p.ResourceVersion)
	}
	m := decodeAny(t, mustMarshal(t, &p))
	if _, ok := lookupPath(m, "metadata.resourceVersion"); ok {
		t.Error("resourceVersion written")
	}
	if v, _ := lookupPath(m, "metadata.selfLinkish"); v != "x" {
		t.Error("unknown metadata field lost")
	}

	// Without a stored document.
	fresh := goodPool()
	fresh.ResourceVersion = "5"
	m = decodeAny(t, mustMarshal(t, fresh))
	if _, ok := lookupPath(m, "metadata.resourceVersion"); ok {
		t.Error("resourceVersion written")
	}
	if m["kind"] != "IPPool" || m["apiVersion"] != "projectcalico.org/v3" {
		t.Errorf("kind/apiVersion %v %v", m["kind"], m["apiVersion"])
	}
	if fresh.ResourceVersion != "5" {
		t.Error("in-memory resourceVersion lost")
	}
}

func TestMarshalStoredNotAnObject(t *testing.T) {
	p := goodPool()
	p.Stored = json.RawMessage(`[1,2]`)
	m := decodeAny(t, mustMarshal(t, p))
	if v, _ := lookupPath(m, "spec.cidr"); v != "192.168.0.0/16" {
		t.Errorf("got %v", m)
	}
}

func TestOldStyleEmptyEntityRules(t *testing.T) {
	// Older Calico wrote "source":{} and "destination":{} for every rule (omitempty on a struct).
	doc := []byte(`{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"old"},
		"spec":{"ingress":[{"action":"Allow","source":{"selector":"has(old)"},"destination":{}}],"egress":[{"action":"Allow","source":{},"destination":{}}]}}`)
	var p Profile
	if err := Unmarshal(doc, &p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.Ingress[0].Source.Selector != "has(old)" || len(p.Spec.Egress) != 1 {
		t.Fatalf("decoded %+v", p.Spec)
	}
	out := mustMarshal(t, &p)
	var back Profile
	if err := Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Spec, p.Spec) {
		t.Errorf("re-read spec differs:\n%+v\n%+v", back.Spec, p.Spec)
	}
	if strings.Contains(string(out), `"destination":{}`) {
		t.Errorf("empty entity rules written: %s", out)
	}
}

func TestUnmarshalStrict(t *testing.T) {
	var p IPPool
	err := UnmarshalStrict([]byte(`{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/8","natOutgoin":true}}`), &p)
	if err == nil || !strings.Contains(err.Error(), "natOutgoin") {
		t.Errorf("typo accepted or not named: %v", err)
	}
	if err != nil && strings.HasPrefix(err.Error(), "json: ") {
		t.Errorf("error keeps the json: prefix: %v", err)
	}
	if err := UnmarshalStrict([]byte(`{"kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/8","natOutgoing":true}}`), &p); err != nil {
		t.Errorf("valid input rejected: %v", err)
	}
	if !p.Spec.NATOutgoing || p.Spec.CIDR != "10.0.0.0/8" {
		t.Errorf("decoded %+v", p.Spec)
	}
	var prof Profile
	if err := UnmarshalStrict([]byte(`{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[80,"http"]}}]}}`), &prof); err != nil {
		t.Errorf("rule input rejected: %v", err)
	}
	if err := UnmarshalStrict([]byte(`{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[70000]}}]}}`), &prof); err == nil {
		t.Error("port 70000 accepted")
	}
}

func TestUnmarshalBadJSON(t *testing.T) {
	var p IPPool
	if err := Unmarshal([]byte(`{"spec":`), &p); err == nil {
		t.Error("truncated JSON accepted")
	}
	if err := Unmarshal([]byte(`{"spec":{"blockSize":"26"}}`), &p); err == nil {
		t.Error("wrong type accepted")
	}
}

func TestLookupKind(t *testing.T) {
	tests := map[string]string{
		"IPPool": KindIPPool, "ippool": KindIPPool, "ippools": KindIPPool, "pool": KindIPPool, "POOLS": KindIPPool,
		"profile": KindProfile, "profiles": KindProfile,
		"workloadendpoint": KindWorkloadEndpoint, "workloadendpoints": KindWorkloadEndpoint, "wep": KindWorkloadEndpoint, "weps": KindWorkloadEndpoint,
		"networkpolicy": KindNetworkPolicy, "np": KindNetworkPolicy, "networkpolicies": KindNetworkPolicy,
		"globalnetworkpolicy": KindGlobalNetworkPolicy, "gnp": KindGlobalNetworkPolicy, "globalnetworkpolicies": KindGlobalNetworkPolicy,
		"node": KindNode, "nodes": KindNode,
		"clusterinformation": KindClusterInformation, "clusterinformations": KindClusterInformation,
		"tier": KindTier, "tiers": KindTier,
		"felixconfiguration": KindFelixConfiguration, "felixconfigurations": KindFelixConfiguration, "felixconfig": KindFelixConfiguration,
		"bgpconfiguration": KindBGPConfiguration, "bgpconfigurations": KindBGPConfiguration, "bgpconfig": KindBGPConfiguration,
		"bgpconfigs": KindBGPConfiguration, "BGPConfiguration": KindBGPConfiguration,
		"bgppeer": KindBGPPeer, "bgppeers": KindBGPPeer, "bgpPeer": KindBGPPeer, "bgpp": KindBGPPeer, "bgpps": KindBGPPeer,
		"bp": KindBGPPeer, "bps": KindBGPPeer,
	}
	for in, want := range tests {
		info, err := LookupKind(in)
		if err != nil || info.Kind != want {
			t.Errorf("LookupKind(%q) = %v, %v; want %s", in, info.Kind, err, want)
		}
		if info.New == nil || KindOf(info.New()).Kind != want {
			t.Errorf("%s: New/KindOf disagree", in)
		}
	}
	_, err := LookupKind("hostendpoint")
	if err == nil || !strings.Contains(err.Error(), "hostendpoint") || !strings.Contains(err.Error(), "IPPool") {
		t.Errorf("unknown kind error %v", err)
	}
	for _, k := range []string{KindWorkloadEndpoint, KindNetworkPolicy} {
		if info, _ := LookupKind(k); !info.Namespaced {
			t.Errorf("%s not namespaced", k)
		}
	}
	for _, k := range []string{KindIPPool, KindProfile, KindGlobalNetworkPolicy, KindNode, KindClusterInformation, KindTier, KindFelixConfiguration,
		KindBGPConfiguration, KindBGPPeer} {
		if info, _ := LookupKind(k); info.Namespaced {
			t.Errorf("%s namespaced", k)
		}
	}
	if !reflect.DeepEqual(KindNames(), []string{"BGPConfiguration", "BGPPeer", "ClusterInformation", "FelixConfiguration", "GlobalNetworkPolicy", "IPPool", "NetworkPolicy", "Node", "Profile", "Tier", "WorkloadEndpoint"}) {
		t.Errorf("KindNames %v", KindNames())
	}
}
