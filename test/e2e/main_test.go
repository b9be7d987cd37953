// Package e2e runs the plugin against the host's real dockerd: networks, containers, addresses, routes and
// the datastore contents, checked through docker, docker exec and calicoctl. Tests run one at a time (they
// share the host's dockerd and plugin directory) and skip without root or dockerd.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

var bins harness.Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "calico-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Geteuid() == 0 {
		if bins, err = harness.BuildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		removed, err := harness.RemoveLeftoverPlugins()
		if err != nil {
			fmt.Fprintln(os.Stderr, "removing test plugins an earlier run left:", err)
			os.Exit(1)
		}
		for _, ref := range removed {
			fmt.Fprintln(os.Stderr, "e2e: removed the plugin an earlier run left:", ref)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a test's view of one running plugin.
type env struct {
	t      *testing.T
	plugin *harness.Plugin
	prefix string
}

// leftovers removes once per run, with the first test's plugin up, the containers and networks that
// earlier runs left (see harness.RemoveDockerObjects).
var leftovers sync.Once

// start runs a fresh plugin (new datastore) and removes the test's Docker objects afterwards.
func start(t *testing.T, vars map[string]string) *env {
	t.Helper()
	requireEngine(t)
	if vars == nil {
		vars = map[string]string{}
	}
	if _, ok := vars["NODENAME"]; !ok {
		vars["NODENAME"] = "e2e-node"
	}
	return attach(t, harness.StartPlugin(t, bins, vars))
}

// requireEngine skips the test without root or dockerd, and builds the test image if it is missing.
func requireEngine(t *testing.T) {
	t.Helper()
	harness.RequireRoot(t)
	harness.RequireDocker(t)
	harness.EnsureTestImage(t)
}

// attach is the env of a test's running plugin p; the test's Docker objects go before p stops.
func attach(t *testing.T, p *harness.Plugin) *env {
	t.Helper()
	leftovers.Do(func() { harness.RemoveDockerObjects(t, "e2e") })
	prefix := harness.UniqueName(t, "e2e")
	harness.CleanupDocker(t, prefix)
	return &env{t: t, plugin: p, prefix: prefix}
}

func (e *env) name(suffix string) string { return e.prefix + "-" + suffix }

func (e *env) docker(args ...string) string {
	e.t.Helper()
	return harness.Docker(e.t, args...)
}

// network creates a calico network with extra flags.
func (e *env) network(suffix string, flags ...string) string {
	e.t.Helper()
	name := e.name(suffix)
	e.docker(append(append([]string{"network", "create", "-d", "calico", "--ipam-driver", "calico-ipam"}, flags...), name)...)
	return name
}

// poolNetwork creates the Calico pool name for cidr and a network (named after suffix) of that pool alone.
func (e *env) poolNetwork(pool, suffix, cidr string) string {
	e.t.Helper()
	e.applyYAML(fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: %s}\nspec: {cidr: %s}\n", pool, cidr))
	return e.network(suffix, "--subnet", cidr)
}

// run starts a long-running container and returns its name.
func (e *env) run(suffix string, flags ...string) string {
	e.t.Helper()
	name := e.name(suffix)
	args := append([]string{"run", "-d", "--name", name}, flags...)
	e.docker(append(args, harness.TestImage, "sleep", "3600")...)
	return name
}

func (e *env) exec(container string, cmd ...string) (string, error) {
	return harness.DockerErr(append([]string{"exec", container}, cmd...)...)
}

// calicoctl runs calicoctl against the plugin's datastore and fails the test on error.
func (e *env) calicoctl(args ...string) string {
	e.t.Helper()
	out, err := e.plugin.Calicoctl(args...)
	if err != nil {
		e.t.Fatalf("calicoctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// endpoints returns the workload endpoints in the datastore as decoded JSON objects.
func (e *env) endpoints() []map[string]any {
	e.t.Helper()
	out := e.calicoctl("get", "workloadendpoints", "-n", "libnetwork", "-o", "json")
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		// A single object is printed bare.
		var one map[string]any
		if json.Unmarshal([]byte(out), &one) == nil && one["kind"] == "WorkloadEndpoint" {
			return []map[string]any{one}
		}
		e.t.Fatalf("decoding endpoints: %v\n%s", err, out)
	}
	return list.Items
}

// containerIP returns a container's address on one of its networks.
func (e *env) containerIP(container, network string, v6 bool) string {
	e.t.Helper()
	field := "IPAddress"
	if v6 {
		field = "GlobalIPv6Address"
	}
	return e.docker("inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).%s}}`, network, field), container)
}

func (e *env) mustPing(from, to string) {
	e.t.Helper()
	if out, err := e.exec(from, "ping", "-c", "1", "-W", "2", to); err != nil {
		e.t.Fatalf("%s cannot ping %s: %v\n%s", from, to, err, out)
	}
}

func (e *env) mustNotPing(from, to string) {
	e.t.Helper()
	if out, err := e.exec(from, "ping", "-c", "1", "-W", "1", to); err == nil {
		e.t.Fatalf("%s unexpectedly reaches %s\n%s", from, to, out)
	}
}
