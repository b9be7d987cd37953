package interop

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// calicoctl get lists every resource of the dump, of every kind, with the fields upstream stored.
func TestDumpCalicoctlGet(t *testing.T) {
	dump := loadDump(t)
	for _, kind := range api.KindNames() {
		info, _ := api.LookupKind(kind)
		var want []string
		prefix := datastore.KindPrefix(info, "")
		for key := range dump {
			if strings.HasPrefix(key, prefix) {
				want = append(want, key[strings.LastIndexByte(key, '/')+1:])
			}
		}
		args := []string{"get", info.Plural, "-o", "json"}
		if info.Namespaced {
			args = append(args, "-A")
		}
		out, stderr, err := calicoctlRun(t, "", args...)
		if err != nil {
			t.Fatalf("calicoctl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		var list struct {
			Kind  string           `json:"kind"`
			Items []map[string]any `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%s: %v\n%s", kind, err, out)
		}
		var got []string
		for _, it := range list.Items {
			got = append(got, it["metadata"].(map[string]any)["name"].(string))
		}
		slices.Sort(got)
		slices.Sort(want)
		if list.Kind != kind+"List" || !slices.Equal(got, want) {
			t.Errorf("get %s: %s %v, want %v", info.Plural, list.Kind, got, want)
		}
	}

	// The table upstream prints, with the tier of namespaced policies.
	out, _, err := calicoctlRun(t, "", "get", "networkpolicies", "-A")
	if err != nil || !strings.Contains(out, "allow-web-to-db") || !strings.Contains(out, "default") {
		t.Errorf("get networkpolicies -A: %v\n%s", err, out)
	}
	out, _, err = calicoctlRun(t, "", "get", "ippool", "default-ipv4-ippool", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ipipMode: Never", "vxlanMode: Never", "nodeSelector: all()", "assignmentMode: Automatic"} {
		if !strings.Contains(out, want) {
			t.Errorf("pool with omitted fields lacks upstream's default %q:\n%s", want, out)
		}
	}
	out, _, err = calicoctlRun(t, "", "get", "felixconfiguration", "default", "-o", "yaml")
	if err != nil || !strings.Contains(out, "logSeverityScreen: Info") {
		t.Errorf("get felixconfiguration default: %v\n%s", err, out)
	}
}

// Applying a change to something upstream wrote keeps the fields we do not model.
func TestDumpCalicoctlApplyKeepsUnknownFields(t *testing.T) {
	dump := loadDump(t)
	const key = "/calico/resources/v3/projectcalico.org/felixconfigurations/default"
	var stored struct {
		Metadata struct {
			UID               string `json:"uid"`
			CreationTimestamp string `json:"creationTimestamp"`
		} `json:"metadata"`
	}
	must(t, json.Unmarshal(dump[key], &stored))
	yaml := `apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Debug
  vxlanVNI: 4096
`
	if _, stderr, err := calicoctlRun(t, yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	v := rawValue(t, key)
	// Modelled fields are replaced as the YAML says (reportingInterval is gone); the ones only upstream
	// knows stay, as do uid and creationTimestamp.
	for _, want := range []string{`"logSeverityScreen":"Debug"`, `"bpfLogLevel":""`, `"floatingIPs":"Disabled"`,
		`"nftablesFlowTableOffload":"Disabled"`, `"uid":"` + stored.Metadata.UID + `"`, `"creationTimestamp":"` + stored.Metadata.CreationTimestamp + `"`} {
		if !strings.Contains(v, want) {
			t.Errorf("stored value lacks %s: %s", want, v)
		}
	}
	if strings.Contains(v, "reportingInterval") || strings.Contains(v, "resourceVersion") {
		t.Errorf("stored value: %s", v)
	}
}

// Bad input is rejected, naming the field the way upstream does.
func TestCalicoctlRejectsWithUpstreamFieldNames(t *testing.T) {
	loadDump(t)
	tests := []struct{ name, yaml, want string }{
		{"unknown field", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  vxlanPorts: 4789\n",
			`unknown field "spec.vxlanPorts"`},
		{"unknown nested field", "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: np\n  namespace: libnetwork\nspec:\n  ingress:\n  - action: Allow\n    destination:\n      portz: [80]\n",
			`unknown field "spec.ingress[0].destination.portz"`},
		{"bad CIDR", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: bad\nspec:\n  cidr: 10.300.0.0/16\n",
			`spec.cidr: "10.300.0.0/16" is not a valid CIDR`},
		{"bad action", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: bad\nspec:\n  ingress:\n  - action: allow-all\n",
			`spec.ingress[0].action`},
		{"bad VNI", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  vxlanVNI: 0\n",
			`spec.vxlanVNI`},
		{"bad node address", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: host-x\nspec:\n  bgp:\n    ipv4Address: 10.0.0.1/99\n",
			`spec.bgp.ipv4Address`},
	}
	for _, tc := range tests {
		_, stderr, err := calicoctlRun(t, tc.yaml, "apply", "-f", "-")
		msg := stderr
		if err != nil {
			msg += err.Error()
		}
		if err == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: want an error with %q, got %v\n%s", tc.name, tc.want, err, stderr)
		}
	}
	// Nothing of the above was written.
	if v := rawValue(t, "/calico/resources/v3/projectcalico.org/ippools/bad"); v != "" {
		t.Errorf("bad pool stored: %s", v)
	}
}
