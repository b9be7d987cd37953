package calicoctl

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// The embedded etcd shared by all tests, and a client for setting up and inspecting its contents.
var (
	testEtcd  *datastoretest.Etcd
	testStore *datastore.Store
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(datastoretest.Main(m, func(e *datastoretest.Etcd) { testEtcd, testStore = e, e.Store }))
}

// harness runs calicoctl command lines in-process against a clean datastore and records a transcript
// (command, stdin, stdout, stderr, exit status) that is compared with testdata/<name>.golden.
type harness struct {
	t          *testing.T
	env        map[string]string
	timeout    time.Duration
	transcript bytes.Buffer
	// replacements are further literal strings to normalise in the transcript.
	replacements map[string]string
}

func newHarness(t *testing.T, env map[string]string) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := testStore.Client().Delete(ctx, "/calico/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("wiping the datastore: %v", err)
	}
	return &harness{t: t, env: env, timeout: 5 * time.Second}
}

// run executes one command line and returns its raw stdout, stderr and exit status.
func (h *harness) run(stdin string, args ...string) (string, string, int) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	o := &options{
		version:        "v9.9.9-test",
		stdin:          strings.NewReader(stdin),
		stdout:         &stdout,
		stderr:         &stderr,
		lookupEnv:      func(name string) (string, bool) { v, ok := h.env[name]; return v, ok },
		requestTimeout: h.timeout,
	}
	cmd := newRootCommand(o)
	cmd.SetArgs(args)
	code := 0
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(&stderr, err)
		code = 1
	}
	fmt.Fprintf(&h.transcript, "$ calicoctl %s\n", strings.Join(args, " "))
	if stdin != "" {
		fmt.Fprintf(&h.transcript, "--- stdin\n%s", stdin)
	}
	if stdout.Len() > 0 {
		fmt.Fprintf(&h.transcript, "--- stdout\n%s", stdout.String())
	}
	if stderr.Len() > 0 {
		fmt.Fprintf(&h.transcript, "--- stderr\n%s", stderr.String())
	}
	fmt.Fprintf(&h.transcript, "--- exit %d\n\n", code)
	return stdout.String(), stderr.String(), code
}

// expect runs a command line and fails the test if its exit status is not want.
func (h *harness) expect(want int, stdin string, args ...string) string {
	h.t.Helper()
	stdout, stderr, code := h.run(stdin, args...)
	if code != want {
		h.t.Errorf("calicoctl %s: exit %d, want %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), code, want, stdout, stderr)
	}
	return stdout
}

var normalisers = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uid>"},
	{regexp.MustCompile(`\b[0-9a-f]{32}\b`), "<guid>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<timestamp>"},
	{regexp.MustCompile(`("?resourceVersion"?: )"\d+"`), `$1"<rv>"`},
	{regexp.MustCompile(`resource version '\d+' is out of date \(latest: \d+\)`), "resource version '<rv>' is out of date (latest: <rv>)"},
	{regexp.MustCompile(`https?://127\.0\.0\.1:\d+`), "<etcd>"},
}

func normalise(s string) string {
	s = strings.ReplaceAll(s, testEtcd.Dir, "<datadir>")
	for _, n := range normalisers {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

// check compares the normalised transcript with testdata/<name>.golden (or rewrites it with -update).
func (h *harness) check(name string) {
	h.t.Helper()
	got := h.transcript.String()
	for from, to := range h.replacements {
		got = strings.ReplaceAll(got, from, to)
	}
	got = normalise(got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		h.t.Errorf("output differs from %s (run go test -update to accept):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %q\n  got:  %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// metaOf extracts metadata.resourceVersion and metadata.uid from a `get -o json` of a single resource.
func metaOf(t *testing.T, js string) (rv, uid string) {
	t.Helper()
	var obj struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
			UID             string `json:"uid"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(js), &obj); err != nil || obj.Metadata.ResourceVersion == "" {
		t.Fatalf("no resourceVersion in %q: %v", js, err)
	}
	return obj.Metadata.ResourceVersion, obj.Metadata.UID
}

func TestResourceLifecycle(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, "", "create", "-f", "testdata/resources.yaml")
	h.expect(1, "", "create", "-f", "testdata/resources.yaml")
	h.expect(0, "", "create", "--skip-exists", "-f", "testdata/resources.yaml")

	h.expect(0, "", "get", "ippools")
	h.expect(0, "", "get", "ippools", "-o", "wide")
	h.expect(0, "", "get", "profiles", "-o", "wide")
	h.expect(0, "", "get", "gnp", "-o", "wide")
	h.expect(0, "", "get", "networkpolicy")
	h.expect(0, "", "get", "networkpolicies", "-n", "libnetwork", "-o", "wide")
	h.expect(0, "", "get", "np", "-A")
	h.expect(0, "", "get", "clusterinformation")
	h.expect(0, "", "get", "tiers")

	h.expect(0, "", "get", "ippool", "pool1", "-o", "yaml")
	h.expect(0, "", "get", "ippool", "pool2", "-o", "json")
	h.expect(0, "", "get", "ippools", "-o", "yaml")
	h.expect(0, "", "get", "profile", "-o", "json")
	h.expect(0, "", "get", "globalnetworkpolicy", "deny-web", "-o", "yaml")
	h.expect(0, "", "get", "networkpolicy", "allow-db", "-n", "libnetwork", "-o", "yaml")
	h.expect(1, "", "get", "ippool", "nosuchpool")
	h.expect(1, "", "get", "ippool", "pool1", "nosuchpool", "-o", "yaml")
	h.expect(1, "", "get", "widgets")
	h.expect(1, "", "get", "ippools", "-o", "xml")

	// apply creates, then updates.
	h.expect(0, "", "apply", "-f", "testdata/pool-apply.yaml")
	created, uid := metaOf(t, h.expect(0, "", "get", "ippool", "pool3", "-o", "json"))
	h.expect(0, "", "apply", "-f", "testdata/pool-apply.yaml")
	applied, appliedUID := metaOf(t, h.expect(0, "", "get", "ippool", "pool3", "-o", "json"))
	if created == applied || uid != appliedUID {
		t.Errorf("second apply: resourceVersion %s -> %s, uid %s -> %s; want a new version and the same uid", created, applied, uid, appliedUID)
	}

	// replace: a stale resourceVersion is refused, the current one accepted.
	replacement := `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool3
  resourceVersion: "%s"
spec:
  cidr: 172.16.0.0/20
  blockSize: 28
  disabled: true
`
	h.expect(1, fmt.Sprintf(replacement, created), "replace", "-f", "-")
	h.expect(0, fmt.Sprintf(replacement, applied), "replace", "-f", "-")
	if _, replacedUID := metaOf(t, h.expect(0, "", "get", "ippool", "pool3", "-o", "json")); replacedUID != uid {
		t.Errorf("replace changed the uid from %s to %s", uid, replacedUID)
	}
	h.expect(1, strings.ReplaceAll(fmt.Sprintf(replacement, ""), "pool3", "pool9"), "replace", "-f", "-")

	// ClusterInformation is read-only.
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata:\n  name: default\nspec: {}\n", "apply", "-f", "-")

	// delete by name, by file, and the skip flag.
	h.expect(0, "", "delete", "ippool", "pool3")
	h.expect(1, "", "delete", "ippool", "pool3")
	h.expect(0, "", "delete", "ippool", "pool3", "--skip-not-exists")
	h.expect(0, "", "delete", "networkpolicy", "allow-db", "-n", "libnetwork")
	h.expect(1, "", "delete", "-f", "testdata/resources.yaml")
	h.expect(0, "", "delete", "--skip-not-exists", "-f", "testdata/resources.yaml")
	h.expect(0, "", "get", "ippools")
	h.expect(0, "", "get", "ippools", "-o", "yaml")
	h.check("lifecycle")
}

func TestDecodingAndValidation(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(1, "", "create", "-f", "testdata/unknown-field.yaml")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: p\nspec:\n  ingress:\n  - action: Allow\n    source:\n      selectr: all()\n", "apply", "-f", "-")
	h.expect(1, "apiVersion: projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: old\nspec:\n  cidr: 10.0.0.0/8\n", "create", "-f", "-")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: hep\n", "create", "-f", "-")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: dup\nspec:\n  cidr: 10.0.0.0/8\n  cidr: 10.1.0.0/16\n", "create", "-f", "-")
	h.expect(1, "", "create", "-f", "testdata/no-such-file.yaml")
	h.expect(1, "", "create")

	// Validation errors name the kind, the resource and the field; the first failure stops the run.
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: badcidr\nspec:\n  cidr: 10.0.0.1/8\n", "create", "-f", "-")
	h.expect(1, "", "create", "-f", "testdata/invalid-pool.yaml")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: badsel\nspec:\n  selector: role ==\n", "apply", "-f", "-")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: np\n  namespace: prod\nspec: {}\n", "create", "-n", "dev", "-f", "-")
	h.expect(0, "", "get", "ippools")

	// A <Kind>List in JSON, a top-level YAML list, and empty input.
	h.expect(0, "", "create", "-f", "testdata/pools.json")
	h.expect(0, "- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata: {name: list-a}\n  spec: {cidr: 10.70.0.0/16}\n- apiVersion: projectcalico.org/v3\n  kind: Profile\n  metadata: {name: list-b}\n  spec: {}\n", "apply", "-f", "-")
	h.expect(0, "# nothing here\n---\n", "apply", "-f", "-")
	h.expect(0, "", "get", "ippools", "-o", "wide")
	h.check("decoding")
}

func TestWorkloadEndpointsAndNodes(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, "", "create", "-f", "testdata/endpoints.yaml")
	h.expect(0, "", "get", "workloadendpoints")
	h.expect(0, "", "get", "weps", "-A")
	h.expect(0, "", "get", "wep", "-n", "libnetwork", "-o", "wide")
	h.expect(0, "", "get", "wep", "host--1-libnetwork-libnetwork-ep1", "-o", "yaml")
	h.expect(0, "", "get", "nodes")
	h.expect(0, "", "get", "nodes", "-o", "wide")
	h.expect(0, "", "delete", "wep", "host--1-libnetwork-libnetwork-ep2")
	h.expect(1, "", "delete", "wep", "host--1-libnetwork-libnetwork-ep2")
	h.expect(0, "", "get", "weps", "-A", "-o", "wide")
	h.check("endpoints")
}

// BGPConfiguration and BGPPeer through every verb, with upstream calicoctl's tables, its refusals, and
// its check that a peer's BGPFilters exist.
func TestBGP(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, "", "create", "-f", "testdata/bgp.yaml")
	h.expect(0, "", "get", "bgpconfigs")
	h.expect(0, "", "get", "bgpConfiguration", "-o", "wide")
	h.expect(0, "", "get", "bgpconfig", "default", "-o", "yaml")
	h.expect(0, "", "get", "bgppeers")
	h.expect(0, "", "get", "bgpPeer", "-o", "wide")
	h.expect(0, "", "get", "bp", "to-route-reflectors", "-o", "json")
	h.expect(0, "", "get", "nodes", "-o", "wide") // host-1 shows BGPConfiguration default's AS number

	peer := "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor-a\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 64514\n"
	h.expect(0, peer, "apply", "-f", "-")
	h.expect(0, strings.Replace(peer, "64514", "64515", 1), "replace", "-f", "-")
	h.expect(0, "", "get", "bgppeer", "tor-a", "-o", "yaml")

	// What upstream refuses.
	h.expect(1, peer+"  peerSelector: all()\n", "apply", "-f", "-")
	h.expect(1, strings.Replace(peer, "64514", "4294967295", 1), "apply", "-f", "-")
	h.expect(1, strings.Replace(peer, "64514", `"65536.1"`, 1), "apply", "-f", "-")
	h.expect(1, strings.Replace(peer, "192.0.2.1", "192.0.2.1:0", 1), "apply", "-f", "-")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.host-2\nspec:\n  asNumber: 65000\n", "create", "-f", "-")
	h.expect(1, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.host-2\nspec:\n  communities: [{name: c, value: \"1:1\"}]\n", "create", "-f", "-")

	// A peer's filters must exist (BGPFilters are upstream's; this project only looks them up).
	filtered := peer + "  filters: [export-v4, export-v6]\n"
	h.expect(1, filtered, "apply", "-f", "-")
	if _, err := testStore.Client().Put(context.Background(), bgpFiltersPrefix+"export-v4", "{}"); err != nil {
		t.Fatal(err)
	}
	h.expect(1, filtered, "apply", "-f", "-")
	if _, err := testStore.Client().Put(context.Background(), bgpFiltersPrefix+"export-v6", "{}"); err != nil {
		t.Fatal(err)
	}
	h.expect(0, filtered, "apply", "-f", "-")

	h.expect(0, "", "delete", "bgppeer", "tor-a")
	h.expect(0, "", "delete", "bgpconfig", "node.host-1")
	h.expect(0, "", "delete", "bgpconfig", "default")
	h.expect(0, "", "get", "nodes", "-o", "wide") // now calico/node's default AS number
	h.expect(0, "", "delete", "-f", "testdata/bgp.yaml", "--skip-not-exists")
	h.expect(0, "", "get", "bgppeers")
	h.expect(0, "", "get", "bgpconfigurations", "-o", "yaml")
	h.check("bgp")
}

func TestDatastoreDiscoveryAndVersion(t *testing.T) {
	// No ETCD_ENDPOINTS: the endpoint file the embedded etcd wrote under CALICO_DATA_DIR is used.
	h := newHarness(t, map[string]string{"CALICO_DATA_DIR": testEtcd.Dir})
	h.expect(0, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: found-by-file\nspec:\n  cidr: 10.80.0.0/16\n", "create", "-f", "-")
	h.expect(0, "", "get", "ippools", "--allow-version-mismatch")
	h.expect(0, "", "version")

	ctx := context.Background()
	info, err := datastore.Get[*api.ClusterInformation](ctx, testStore, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	info.Spec.CalicoVersion, info.Spec.ClusterType = "v3.99.0", "libnetwork"
	if err := testStore.Update(ctx, info); err != nil {
		t.Fatal(err)
	}
	h.expect(0, "", "version")
	h.expect(0, "", "get", "clusterinformation", "default", "-o", "yaml")

	// Neither ETCD_ENDPOINTS nor a running daemon.
	emptyDir := t.TempDir()
	h.replacements = map[string]string{emptyDir: "<emptydir>"}
	h.env = map[string]string{"CALICO_DATA_DIR": emptyDir}
	h.expect(1, "", "get", "ippools")
	h.expect(0, "", "version")
	h.expect(0, "", "version", "--client")
	h.env = testEtcd.Env()
	if _, err := testStore.Client().Delete(ctx, "/calico/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	h.expect(1, "", "version") // as upstream: no ClusterInformation yet
	h.env = map[string]string{"ETCD_ENDPOINTS": "localhost:2379"}
	h.expect(1, "", "get", "ippools")
	h.check("discovery")
}

func TestUnreachableDatastore(t *testing.T) {
	h := newHarness(t, map[string]string{"ETCD_ENDPOINTS": "http://127.0.0.1:1"})
	start := time.Now()
	_, stderr, code := h.run("", "get", "ippools")
	if elapsed := time.Since(start); elapsed > 8*time.Second {
		t.Errorf("an unreachable etcd took %s to report", elapsed)
	}
	if code != 1 || !strings.Contains(stderr, "cannot reach the datastore at http://127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// With nothing configured, the default data directory is named. (Skipped on a host where a daemon runs.)
func TestNoDatastoreDefaultMessage(t *testing.T) {
	if _, err := os.Stat("/var/lib/calico/etcd-endpoint"); err == nil {
		t.Skip("a calico-libnetwork daemon is running on this host")
	}
	h := newHarness(t, map[string]string{})
	_, stderr, code := h.run("", "get", "ippools")
	want := "no datastore configured: set ETCD_ENDPOINTS, or start calico-libnetwork on this host (no embedded etcd endpoint in /var/lib/calico/etcd-endpoint)\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want exit 1, %q", code, stderr, want)
	}
}
