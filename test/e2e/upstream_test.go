package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// upstreamCalicoctl is upstream Calico's calicoctl, built by scripts/build-upstream-calico.sh and named by
// CALICO_UPSTREAM_CALICOCTL (scripts/test-interop.sh sets it from the build cache).
func upstreamCalicoctl(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CALICO_UPSTREAM_CALICOCTL")
	if bin == "" {
		t.Skip("CALICO_UPSTREAM_CALICOCTL names no upstream calicoctl: build one with scripts/build-upstream-calico.sh (make test-interop runs this test)")
	}
	return bin
}

// upstream runs upstream calicoctl against the plugin's embedded etcd, as an operator would, with
// DATASTORE_TYPE=etcdv3 and the client certificate the daemon generated.
func (e *env) upstream(bin string, args ...string) (string, error) {
	e.t.Helper()
	cfg, err := datastore.EmbeddedClientConfig(e.plugin.DataDir())
	if err != nil {
		e.t.Fatalf("finding the embedded etcd: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+cfg.Endpoints[0],
		"ETCD_CA_CERT_FILE="+cfg.CACertFile, "ETCD_CERT_FILE="+cfg.CertFile, "ETCD_KEY_FILE="+cfg.Key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("upstream calicoctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// upstreamApply runs upstream `calicoctl VERB -f FILE` on a document (YAML or JSON).
func (e *env) upstreamApply(bin, verb, doc string) {
	e.t.Helper()
	file := filepath.Join(e.t.TempDir(), "resource")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.mustUpstream(bin, verb, "-f", file)
}

// endpointOf is the name of the workload endpoint holding ip.
func (e *env) endpointOf(ip string) string {
	e.t.Helper()
	for _, w := range e.endpoints() {
		spec, _ := w["spec"].(map[string]any)
		nets, _ := spec["ipNetworks"].([]any)
		if slices.Contains(nets, any(ip+"/32")) {
			return w["metadata"].(map[string]any)["name"].(string)
		}
	}
	e.t.Fatalf("no workload endpoint holds %s", ip)
	return ""
}

// upstreamIPAMCheck prepares what upstream `calicoctl ipam check` needs besides etcd and returns what runs
// it with --show-problem-ips. The check also lists Kubernetes Services (load balancer addresses are in
// use) and reads KubeControllersConfiguration default, so it needs a Kubernetes API, which a Docker
// cluster does not have: a stand-in answers that one list with no Services, and upstream calicoctl
// writes the default KubeControllersConfiguration as Calico's kube-controllers would.
func (e *env) upstreamIPAMCheck(bin string) func() string {
	e.t.Helper()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/services" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"ServiceList","apiVersion":"v1","metadata":{},"items":[]}`)
	}))
	e.t.Cleanup(api.Close)
	kubeconfig := filepath.Join(e.t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: services, cluster: {server: %q}}]
contexts: [{name: services, context: {cluster: services, user: none}}]
users: [{name: none, user: {}}]
current-context: services
`, api.URL)), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.upstreamApply(bin, "apply", "apiVersion: projectcalico.org/v3\nkind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {controllers: {}}\n")
	return func() string {
		e.t.Helper()
		return e.mustUpstream(bin, "ipam", "check", "--show-problem-ips", "--kubeconfig", kubeconfig)
	}
}

func (e *env) mustUpstream(bin string, args ...string) string {
	e.t.Helper()
	out, err := e.upstream(bin, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// itemNames are the metadata names of a calicoctl `-o json` list.
func itemNames(t *testing.T, out string) []string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not a calicoctl list: %v\n%s", err, out)
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Metadata.Name)
	}
	slices.Sort(names)
	return names
}

// Upstream calicoctl reads every kind the plugin writes, in JSON and YAML, as our calicoctl lists it, and
// its IPAM commands account for the plugin's allocations: `ipam show` (pool, blocks, one address), `ipam
// check` (no problem, then exactly the address the plugin allocated for no container) and `ipam release`
// of that address. Both refuse a pool overlapping the plugin's, with the same reason.
func TestUpstreamCalicoctlReadsOurData(t *testing.T) {
	bin := upstreamCalicoctl(t)
	e := start(t, map[string]string{"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true"})
	net := e.network("net")
	a := e.run("a", "--net", net, "--label", "org.projectcalico.label.app=web")
	e.run("b", "--net", net)

	for _, kind := range []struct{ plural, scope string }{
		{"workloadendpoints", "-A"}, {"profiles", ""}, {"nodes", ""}, {"ippools", ""},
		{"clusterinformations", ""}, {"tiers", ""}, {"felixconfigurations", ""},
	} {
		args := []string{"get", kind.plural}
		if kind.scope != "" {
			args = append(args, kind.scope)
		}
		want := itemNames(t, e.calicoctl(append(args, "-o", "json")...))
		if len(want) == 0 {
			t.Errorf("the plugin wrote no %s", kind.plural)
		}
		if kind.plural == "profiles" {
			// The profile upstream's client lists always, though no datastore holds it.
			want = append(want, "projectcalico-default-allow")
			slices.Sort(want)
		}
		if got := itemNames(t, e.mustUpstream(bin, append(args, "-o", "json")...)); !slices.Equal(got, want) {
			t.Errorf("upstream get %s -o json: %v, ours %v", kind.plural, got, want)
		}
		yaml := e.mustUpstream(bin, append(args, "-o", "yaml")...)
		for _, name := range want {
			if !strings.Contains(yaml, "name: "+name+"\n") {
				t.Errorf("upstream get %s -o yaml lacks %s:\n%s", kind.plural, name, yaml)
			}
		}
	}
	e.eventually(func() error { // the plugin copies container labels once the container runs
		if weps := e.mustUpstream(bin, "get", "workloadendpoints", "-n", "libnetwork", "-o", "json"); !strings.Contains(weps, `"app": "web"`) {
			return fmt.Errorf("upstream does not see container a's label app=web:\n%s", weps)
		}
		return nil
	})

	ip := netip.MustParseAddr(e.containerIP(a, net, false))
	block := netip.PrefixFrom(ip, 26).Masked()
	show := e.mustUpstream(bin, "ipam", "show")
	if !regexp.MustCompile(`\| IP Pool +\| 192\.168\.0\.0/16 \| +65536 \| +2 \(`).MatchString(show) {
		t.Errorf("upstream ipam show does not count 2 addresses in use in 192.168.0.0/16:\n%s", show)
	}
	if blocks := e.mustUpstream(bin, "ipam", "show", "--show-blocks"); !strings.Contains(blocks, "| Block    | "+block.String()+" ") {
		t.Errorf("upstream ipam show --show-blocks lacks block %s:\n%s", block, blocks)
	}
	if one := e.mustUpstream(bin, "ipam", "show", "--ip", ip.String()); !strings.Contains(one, "IP "+ip.String()+" is in use\nHandle ID: libnetwork.") {
		t.Errorf("upstream ipam show --ip %s:\n%s", ip, one)
	}

	// A pool overlapping the plugin's default pool: both refuse it, naming both pools alike.
	var pool struct{ Spec struct{ CIDR string } }
	if err := json.Unmarshal([]byte(e.calicoctl("get", "ippool", "default-ipv4-ippool", "-o", "json")), &pool); err != nil {
		t.Fatal(err)
	}
	overlap := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: overlap}\nspec: {cidr: %s}\n", pool.Spec.CIDR)
	reason := "IPPool(overlap) CIDR overlaps with IPPool(default-ipv4-ippool) CIDR " + pool.Spec.CIDR
	file := filepath.Join(t.TempDir(), "overlap.yaml")
	if err := os.WriteFile(file, []byte(overlap), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"create", "apply"} {
		if _, err := e.upstream(bin, verb, "-f", file); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("upstream %s of an overlapping pool: %v, want %q", verb, err, reason)
		}
		if _, err := e.plugin.Calicoctl(verb, "-f", file); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("our %s of an overlapping pool: %v, want %q", verb, err, reason)
		}
	}

	check := e.upstreamIPAMCheck(bin)
	if out := check(); !strings.Contains(out, "Check complete; found 0 problems.") {
		t.Errorf("upstream ipam check on the plugin's allocations:\n%s", out)
	}

	// An address the plugin allocated that no container took: upstream's check reports it and nothing
	// else, upstream releases it, and the plugin's IPAM agrees that it is free.
	var leaked struct{ Address string }
	status, body, err := e.plugin.Call(ipamSock, "IpamDriver.RequestAddress", []byte(`{"PoolID":"CalicoPoolIPv4"}`))
	if err != nil || status != 200 || json.Unmarshal(body, &leaked) != nil {
		t.Fatalf("RequestAddress: %d %s %v", status, body, err)
	}
	addr := netip.MustParsePrefix(leaked.Address).Addr().String()
	out := check()
	if !strings.Contains(out, "Check complete; found 1 problems.") || !strings.Contains(out, "  "+addr+" leaked;") {
		t.Errorf("upstream ipam check does not report exactly %s as leaked:\n%s", addr, out)
	}
	t.Logf("upstream ipam check with %s planted:\n%s", addr, out)
	if out := e.mustUpstream(bin, "ipam", "release", "--ip", addr); !strings.Contains(out, "Successfully released IP address "+addr) {
		t.Errorf("upstream ipam release --ip %s: %s", addr, out)
	}
	if out := e.calicoctl("ipam", "show", "--ip", addr); !strings.Contains(out, "not assigned") {
		t.Errorf("after upstream released %s, our calicoctl says:\n%s", addr, out)
	}
}

// What an operator changes with upstream calicoctl takes effect in the plugin: `label` on a container's
// endpoint selects it into a policy, `replace` and `patch` of a network's profile change who reaches its
// containers, `delete` removes a policy, and a pool `patch`ed to disabled gives no more addresses.
func TestUpstreamCalicoctlWritesTakeEffect(t *testing.T) {
	bin := upstreamCalicoctl(t)
	e := start(t, nil)
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	ipB := e.containerIP(b, net, false)
	e.mustPing(a, ipB)

	e.upstreamApply(bin, "create", `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-db}
spec:
  selector: role == 'db'
  types: [Ingress]
  ingress: [{action: Deny}]
`)
	wep := e.endpointOf(ipB)
	e.mustUpstream(bin, "label", "workloadendpoint", wep, "-n", "libnetwork", "role=db")
	e.expectPing(a, ipB, false)
	e.mustUpstream(bin, "label", "workloadendpoint", wep, "-n", "libnetwork", "role", "--remove")
	e.expectPing(a, ipB, true)
	e.mustUpstream(bin, "label", "workloadendpoint", wep, "-n", "libnetwork", "role=db")
	e.expectPing(a, ipB, false)
	e.mustUpstream(bin, "delete", "globalnetworkpolicy", "deny-db")
	e.expectPing(a, ipB, true)

	// The network's profile, read and written back by upstream without its ingress rule: nothing admits.
	var profile map[string]any
	if err := json.Unmarshal([]byte(e.mustUpstream(bin, "get", "profile", net, "-o", "json")), &profile); err != nil {
		t.Fatal(err)
	}
	delete(profile["spec"].(map[string]any), "ingress")
	doc, _ := json.Marshal(profile)
	e.upstreamApply(bin, "replace", string(doc))
	e.expectPing(a, ipB, false)
	e.mustUpstream(bin, "patch", "profile", net, "-p", `{"spec":{"ingress":[{"action":"Allow"}]}}`)
	e.expectPing(a, ipB, true)

	e.mustUpstream(bin, "patch", "ippool", "default-ipv4-ippool", "-p", `{"spec":{"disabled":true}}`)
	if out, err := harness.DockerErr("run", "-d", "--name", e.name("c"), "--net", net, harness.TestImage, "sleep", "3600"); err == nil || !strings.Contains(out+err.Error(), "pool") {
		t.Errorf("docker run with the only pool disabled: %v\n%s", err, out)
	}
	e.mustUpstream(bin, "patch", "ippool", "default-ipv4-ippool", "-p", `{"spec":{"disabled":false}}`)
	e.run("d", "--net", net)
}
