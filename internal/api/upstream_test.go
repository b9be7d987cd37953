package api

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// Documents as upstream calicoctl stores them (testdata/upstream, recorded from the real binary by its
// record.sh; every one of them is here), plus the hand-written ones no upstream binary built here writes
// (see fixtures), each read, changed the way this project changes that kind, and written back: the result
// must be the stored document with exactly that change, every field this version does not model kept.
func TestUpstreamReadUpdateWrite(t *testing.T) {
	order := 42.0
	type edit struct {
		file  string
		edit  func(Object)
		path  []string // where the edit shows in the document
		value any
	}
	tests := []edit{
		{"upstream/globalnetworkpolicy-egress-only.json", func(o Object) { o.(*GlobalNetworkPolicy).Spec.Order = &order },
			[]string{"spec", "order"}, 42.0},
		{"upstream/networkpolicy-single-quotes.json", func(o Object) { o.(*NetworkPolicy).Spec.Selector = "role == 'db' && has(mynet)" },
			[]string{"spec", "selector"}, "role == 'db' && has(mynet)"},
		{"upstream/felixconfiguration-node.json", func(o Object) { o.(*FelixConfiguration).Spec.LogSeverityScreen = "Debug" },
			[]string{"spec", "logSeverityScreen"}, "Debug"},
		{"upstream/globalnetworkpolicy-tiered.json", func(o Object) { o.(*GlobalNetworkPolicy).Spec.Order = &order },
			[]string{"spec", "order"}, 42.0},
		{"upstream/ippool-all-fields.json", func(o Object) { o.(*IPPool).Spec.Disabled = false },
			[]string{"spec", "disabled"}, nil},
		{"upstream/tier-security.json", func(o Object) { o.(*Tier).Spec.Order = &order }, []string{"spec", "order"}, 42.0},
		{"upstream/init-tier-default.json", func(o Object) { o.GetObjectMeta().Labels = map[string]string{"a": "b"} },
			[]string{"metadata", "labels"}, map[string]any{"a": "b"}},
		{"upstream/init-tier-kube-admin.json", func(o Object) { o.(*Tier).Spec.Order = &order }, []string{"spec", "order"}, 42.0},
		{"upstream/init-tier-kube-baseline.json", func(o Object) { o.(*Tier).Spec.DefaultAction = "Deny" },
			[]string{"spec", "defaultAction"}, "Deny"},
		{"upstream/init-clusterinformation-default.json", func(o Object) { o.(*ClusterInformation).Spec.ClusterType = "libnetwork" },
			[]string{"spec", "clusterType"}, "libnetwork"},
		{"upstream/node-my-host.json", func(o Object) { o.(*Node).Spec.BGP.IPv4Address = "10.9.9.9/16" },
			[]string{"spec", "bgp", "ipv4Address"}, "10.9.9.9/16"},
		{"upstream/workloadendpoint-libnetwork.json", func(o Object) { o.GetObjectMeta().Labels["role"] = "db" },
			[]string{"metadata", "labels", "role"}, "db"},
		{"upstream/profile-mynet.json", func(o Object) { o.(*Profile).Spec.LabelsToApply["other"] = "x" },
			[]string{"spec", "labelsToApply", "other"}, "x"},
		{"upstream/ippool-minimal.json", func(o Object) { o.(*IPPool).Spec.Disabled = true },
			[]string{"spec", "disabled"}, true},
		{"upstream/ippool-v6.json", func(o Object) { o.(*IPPool).Spec.NATOutgoing = false },
			[]string{"spec", "natOutgoing"}, nil},
		{"upstream/felixconfiguration-default.json", func(o Object) { o.(*FelixConfiguration).Spec.LogSeverityScreen = "Debug" },
			[]string{"spec", "logSeverityScreen"}, "Debug"},
		{"upstream/globalnetworkpolicy-rules.json", func(o Object) { o.GetObjectMeta().Labels["owner"] = "libnetwork" },
			[]string{"metadata", "labels", "owner"}, "libnetwork"},
		{"upstream/networkpolicy-np1.json", func(o Object) { o.(*NetworkPolicy).Spec.Selector = "all()" },
			[]string{"spec", "selector"}, "all()"},
		{"upstream/bgpconfiguration-default.json", func(o Object) { o.(*BGPConfiguration).Spec.ListenPort = 179 },
			[]string{"spec", "listenPort"}, 179.0},
		{"upstream/bgpconfiguration-node.json", func(o Object) { o.(*BGPConfiguration).Spec.LogSeverityScreen = "Debug" },
			[]string{"spec", "logSeverityScreen"}, "Debug"},
		{"upstream/bgppeer-global.json", func(o Object) { o.(*BGPPeer).Spec.ASNumber = 64514 },
			[]string{"spec", "asNumber"}, 64514.0},
		{"upstream/bgppeer-selector.json", func(o Object) { o.(*BGPPeer).Spec.PeerSelector = "has(route-reflector)" },
			[]string{"spec", "peerSelector"}, "has(route-reflector)"},
		{"upstream/bgppeer-ipv6-port.json", func(o Object) { o.(*BGPPeer).Spec.SourceAddress = "" },
			[]string{"spec", "sourceAddress"}, nil},
		{"upstream/bgppeer-local-workload.json", func(o Object) { o.GetObjectMeta().Labels = map[string]string{"rack": "r1"} },
			[]string{"metadata", "labels"}, map[string]any{"rack": "r1"}},
		{"ippool-minimal.json", func(o Object) { o.(*IPPool).Spec.Disabled = true },
			[]string{"spec", "disabled"}, true},
		{"clusterinformation.json", func(o Object) { o.(*ClusterInformation).Spec.CalicoVersion = "v9.9.9" },
			[]string{"spec", "calicoVersion"}, "v9.9.9"},
	}
	recorded, _ := filepath.Glob("testdata/upstream/*.json")
	for _, file := range recorded {
		if !slices.ContainsFunc(tests, func(tc edit) bool { return "testdata/"+tc.file == file }) {
			t.Errorf("%s, recorded from upstream, is not tested", file)
		}
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			data := readFixture(t, tc.file)
			o := newForDocument(t, data)
			// The datastore's read path: lenient decode, then Calico's defaults.
			if err := Unmarshal(data, o); err != nil {
				t.Fatal(err)
			}
			Default(o)
			if err := Validate(o); err != nil {
				t.Fatalf("upstream document does not validate: %v", err)
			}
			tc.edit(o)
			out, err := Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			want, got := decodeAny(t, data), decodeAny(t, out)
			setPath(want, tc.path, tc.value)
			// Defaulting may add the fields upstream would fill in (it writes them itself); nothing may be
			// lost or changed.
			if diff := missingFrom(want, got, ""); diff != "" {
				t.Errorf("%s\nstored %s\nwrote  %s", diff, data, out)
			}
			if tc.value != nil {
				if v, _ := lookupPath(got, joinPath(tc.path)); !reflect.DeepEqual(v, tc.value) {
					t.Errorf("edit not written: %s = %v", joinPath(tc.path), v)
				}
			}
		})
	}
}

// An IPPool stored with omitted fields (etcdctl, an older calicoctl) reads back with upstream's defaults, as
// upstream lists it.
func TestUpstreamPoolDefaults(t *testing.T) {
	var p IPPool
	if err := Unmarshal(readFixture(t, "ippool-minimal.json"), &p); err != nil {
		t.Fatal(err)
	}
	Default(&p)
	s := p.Spec
	if s.IPIPMode != EncapNever || s.VXLANMode != EncapNever || s.NodeSelector != "all()" ||
		s.AssignmentMode != AssignAutomatic || s.BlockSize != 26 || !s.NATOutgoing {
		t.Errorf("defaults %+v", s)
	}
}

// Selectors keep the quotes the user wrote, in the policy and in its rules.
func TestUpstreamSelectorQuotes(t *testing.T) {
	var gnp GlobalNetworkPolicy
	if err := Unmarshal(readFixture(t, "upstream/globalnetworkpolicy-egress-only.json"), &gnp); err != nil {
		t.Fatal(err)
	}
	var np NetworkPolicy
	if err := Unmarshal(readFixture(t, "upstream/networkpolicy-single-quotes.json"), &np); err != nil {
		t.Fatal(err)
	}
	if gnp.Spec.Selector != `role == "db"` || gnp.Spec.Egress[0].Destination.Selector != `role == "web"` {
		t.Errorf("double quotes changed: %q, %q", gnp.Spec.Selector, gnp.Spec.Egress[0].Destination.Selector)
	}
	if np.Spec.Selector != `role == 'db'` || np.Spec.Ingress[0].Source.Selector != `role == 'web'` {
		t.Errorf("single quotes changed: %q, %q", np.Spec.Selector, np.Spec.Ingress[0].Source.Selector)
	}
	if gnp.Spec.Tier != "default" || gnp.Labels["projectcalico.org/tier"] != "default" ||
		gnp.Annotations["projectcalico.org/metadata"] != `{"name":"db-egress"}` {
		t.Errorf("tier, label or annotation lost: %+v %+v", gnp.Spec, gnp.ObjectMeta)
	}
}

func setPath(m map[string]any, path []string, value any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	if value == nil {
		delete(m, path[len(path)-1])
	} else {
		m[path[len(path)-1]] = value
	}
}

func joinPath(path []string) string {
	s := path[0]
	for _, p := range path[1:] {
		s += "." + p
	}
	return s
}

// missingFrom describes the first member of want that got lacks or holds differently ("" when none).
// Objects are compared member by member (got may have more); everything else must be equal.
func missingFrom(want, got any, at string) string {
	wm, ok := want.(map[string]any)
	if !ok {
		if !reflect.DeepEqual(want, got) {
			return at + ": stored " + describe(want) + ", wrote " + describe(got)
		}
		return ""
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return at + ": no longer an object"
	}
	for k, wv := range wm {
		gv, present := gm[k]
		if !present {
			return at + "." + k + ": lost"
		}
		if d := missingFrom(wv, gv, at+"."+k); d != "" {
			return d
		}
	}
	return ""
}

func describe(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
