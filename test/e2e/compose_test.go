package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// The README's Compose example (compose.yaml, with its pools.yaml and policy.yaml) and the tests' override
// of its image with the local one.
var (
	composeExample    = filepath.Join("testdata", "compose", "compose.yaml")
	composeLocalImage = filepath.Join("testdata", "compose", "local-image.yaml")
)

// composeConverge bounds how long scaled-down or removed containers' endpoints, addresses and interfaces
// may take to go (Docker removes them as it stops each container).
const composeConverge = 30 * time.Second

// composeProject is one Compose project of a test, named after the test's prefix so that its containers
// (<prefix>-<service>-<n>) and networks (<prefix>_<network>) go with the test's other Docker objects.
type composeProject struct {
	e     *env
	files []string
}

// requireCompose skips the test unless the client under test has the Compose v2 CLI plugin.
func requireCompose(t *testing.T) {
	t.Helper()
	requireEngine(t)
	if out, err := harness.DockerErr("compose", "version"); err != nil {
		t.Skipf("skipping: %s has no compose plugin (build and install it: scripts/build-compose.sh): %v %s", harness.DockerBin, err, out)
	}
}

func (e *env) compose(files ...string) *composeProject { return &composeProject{e: e, files: files} }

// run runs `docker compose` on the project's files; the error carries compose's output.
func (p *composeProject) run(args ...string) (string, error) {
	argv := []string{"compose", "--project-name", p.e.prefix}
	for _, f := range p.files {
		argv = append(argv, "--file", f)
	}
	return harness.DockerErr(append(argv, args...)...)
}

func (p *composeProject) must(args ...string) {
	p.e.t.Helper()
	if _, err := p.run(args...); err != nil {
		p.e.t.Fatal(err)
	}
}

func (p *composeProject) container(service string, n int) string {
	return fmt.Sprintf("%s-%s-%d", p.e.prefix, service, n)
}

func (p *composeProject) network(name string) string { return p.e.prefix + "_" + name }

// newLinks returns the host's workload interfaces that are not in before.
func newLinks(t *testing.T, before []string) []string {
	return slices.DeleteFunc(workloadLinks(t), func(l string) bool { return slices.Contains(before, l) })
}

func readTestdata(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The README's Compose file: three labelled services on two Calico networks with a pool each. `up -d`
// gives every replica an address from each network's pool; a calicoctl policy selecting services by their
// labels lets api reach db and stops web; `--scale` up and down and `down` leave exactly the running
// replicas' addresses, endpoints and interfaces, then none, and no network or profile.
func TestCompose(t *testing.T) {
	requireCompose(t)
	e := start(t, map[string]string{"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true"})
	links := workloadLinks(t)
	e.applyYAML(readTestdata(t, filepath.Join("testdata", "compose", "pools.yaml")))
	p := e.compose(composeExample, composeLocalImage)
	p.must("up", "--detach")

	pools := map[string]netip.Prefix{
		p.network("front"): netip.MustParsePrefix("10.70.1.0/24"),
		p.network("back"):  netip.MustParsePrefix("10.70.2.0/24"),
	}
	// addrs returns a replica's address on each network, checking that it comes from that network's pool.
	addrs := func(container string) []string {
		t.Helper()
		var ips []string
		for net, pool := range pools {
			ip := e.containerIP(container, net, false)
			if a, err := netip.ParseAddr(ip); err != nil || !pool.Contains(a) {
				t.Fatalf("%s's address on %s is %q, not from the pool %s", container, net, ip, pool)
			}
			ips = append(ips, ip)
		}
		return ips
	}
	web, api, db := p.container("web", 1), p.container("api", 1), p.container("db", 1)
	dbIPs := addrs(db)
	addrs(web)
	addrs(api)
	if out, _ := e.exec(web, "ip", "-o", "link"); !strings.Contains(out, " cali0@") || !strings.Contains(out, " cali1@") {
		t.Errorf("%s lacks an interface per network:\n%s", web, out)
	}
	e.assertNoLeaks(6, 6)
	e.eventually(func() error {
		labelled := 0
		for _, w := range e.endpoints() {
			if labels, _ := w["metadata"].(map[string]any)["labels"].(map[string]any); labels["role"] != nil {
				labelled++
			}
		}
		if labelled != 6 {
			return fmt.Errorf("%d of 6 endpoints have their service's role label", labelled)
		}
		return nil
	})
	for _, ip := range dbIPs {
		e.expectTCP(web, ip, true)
	}

	e.applyYAML(readTestdata(t, filepath.Join("testdata", "compose", "policy.yaml")))
	for _, ip := range dbIPs {
		e.expectTCP(api, ip, true)
		e.expectTCP(web, ip, false)
	}

	p.must("up", "--detach", "--scale", "api=3")
	for _, replica := range []string{p.container("api", 2), p.container("api", 3)} {
		addrs(replica)
		// Allowed once the replica's labels reach its endpoints.
		e.expectTCP(replica, dbIPs[0], true)
	}
	e.assertNoLeaks(10, 10)
	if got := newLinks(t, links); len(got) != 10 {
		t.Errorf("%d workload interfaces for 10 endpoints: %v", len(got), got)
	}

	p.must("up", "--detach", "--scale", "api=1")
	linktest.Eventually(t, composeConverge, 500*time.Millisecond, func() error {
		if n := len(e.endpoints()); n != 6 {
			return fmt.Errorf("%d endpoints after scaling api down to 1, want 6", n)
		}
		if got := newLinks(t, links); len(got) != 6 {
			return fmt.Errorf("%d workload interfaces after scaling api down to 1, want 6: %v", len(got), got)
		}
		return nil
	})
	e.assertNoLeaks(6, 6)
	e.expectTCP(api, dbIPs[1], true)

	p.must("down")
	if out := e.docker("network", "ls", "--filter", "name="+e.prefix, "--format", "{{.Name}}"); out != "" {
		t.Errorf("networks left after down: %s", out)
	}
	linktest.Eventually(t, composeConverge, 500*time.Millisecond, func() error {
		if n := len(e.endpoints()); n != 0 {
			return fmt.Errorf("%d endpoints left after down", n)
		}
		if got := newLinks(t, links); len(got) != 0 {
			return fmt.Errorf("workload interfaces left after down: %v", got)
		}
		return nil
	})
	e.assertNoLeaks(0, 0)
	for net := range pools {
		if _, err := e.plugin.Calicoctl("get", "profile", net); err == nil {
			t.Errorf("profile %s survives compose down", net)
		}
	}
	if keys := e.etcdKeys("/calico/libnetwork/"); len(keys) != 0 {
		t.Errorf("network records left after down: %v", keys)
	}
}

// Compose's driver_opts and ipam.options reach the drivers as `docker network create`'s -o and --ipam-opt
// do, and are refused with the same error; `up` fails and leaves no network, container, address or record.
func TestComposeRefusedOptions(t *testing.T) {
	requireCompose(t)
	e := start(t, nil)
	_, err := harness.DockerErr("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam",
		"-o", "foo=bar", "--ipam-opt", "x=y", e.name("cli"))
	if err == nil {
		t.Fatal("network create with -o and --ipam-opt succeeded")
	}
	const refusal = "calico networks do not support --ipam-opt (calico-ipam takes no options), -o foo=bar ("
	i := strings.Index(err.Error(), refusal)
	if i < 0 {
		t.Fatalf("network create's refusal: %v", err)
	}
	want := err.Error()[i:]

	p := e.compose(filepath.Join("testdata", "compose", "refused.yaml"))
	if _, err := p.run("up", "--detach"); err == nil {
		t.Fatal("compose up with driver_opts and ipam.options succeeded")
	} else if !strings.Contains(err.Error(), want) {
		t.Errorf("compose up's error does not carry network create's refusal %q:\n%v", want, err)
	}
	if out := e.docker("ps", "--all", "--filter", "name="+e.prefix, "--format", "{{.Names}}"); out != "" {
		t.Errorf("containers left by the refused up: %s", out)
	}
	if out := e.docker("network", "ls", "--filter", "name="+e.prefix, "--format", "{{.Name}}"); out != "" {
		t.Errorf("networks left by the refused up: %s", out)
	}
	e.assertNoLeaks(0, 0)
	if keys := e.etcdKeys("/calico/libnetwork/"); len(keys) != 0 {
		t.Errorf("the refused network left records: %v", keys)
	}
	if _, err := e.plugin.Calicoctl("get", "profile", p.network("net")); err == nil {
		t.Errorf("the refused network left its profile")
	}
}
