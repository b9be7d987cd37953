package multihost

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

const (
	// settle bounds how long swarm takes to run, move or remove tasks, and the plugin to release addresses.
	settle = 60 * time.Second
	// leaveRelease bounds how long after `swarm leave` the node's tasks' addresses are released. The node
	// removes the tasks' containers through the plugin, which releases them at once: the leak collector
	// (CALICO_IPAM_GC_GRACE, default 10 minutes, left so here) plays no part.
	leaveRelease = 10 * time.Second
	// swarmPlugin is the managed plugin's name, as the README's example has it.
	swarmPlugin = "calico/libnetwork-plugin:latest"
)

// TestSwarm makes the lab's three engines one swarm (h1 the manager, h2 and h3 workers, h3 behind the
// router), each with the managed plugin talking to the lab's etcd, by running the README's example
// "Swarm across several hosts" as written (runExample; node1 to node3 are h1 to h3): a service on a --scope
// swarm Calico network made --config-from a --config-only network on every node. Then:
//
//   - its six replicas, at most two per node, run two on each node; every task reaches every other one
//     across the hosts, and tasks.<service> resolves, on every node, to all six (Docker's DNS learns the
//     other nodes' tasks through swarm's gossip, because the driver's connectivity scope is global);
//   - a standalone container attached to the network on h2 reaches them by address and by name;
//   - a worker leaving the swarm (swarm leave --force) removes its tasks: their addresses and endpoints go
//     within seconds, and that node's record of the network with them, while the others keep it;
//   - scaling down (to 2) and removing the service leave exactly the live containers' endpoints and
//     addresses on every node, then none.
//
// No registry is reachable here: the example's busybox is the test image tagged so on every node, which
// swarm runs after its pull fails. Swarm's ingress and routing mesh are not used (no published ports): a
// service on a Calico network has no virtual IP anyway (README: Swarm services), and this machine has no
// IPVS, which they need.
func TestSwarm(t *testing.T) {
	requireLab(t)
	if harness.FirewallBackend(t) == "nftables" {
		t.Skip("skipping: Docker refuses swarm mode with its nftables firewall backend")
	}
	l := newLab(t, []hostSpec{{name: "h1", segment: 0, number: 11, managed: true},
		{name: "h2", segment: 0, number: 12, managed: true}, {name: "h3", segment: 1, number: 13, managed: true}})
	h1, h2, h3 := l.host("h1"), l.host("h2"), l.host("h3")
	// Pools before the plugins start, which then make no default pool; h3 is reached over VXLAN.
	l.setPools("CrossSubnet")
	start := time.Now()
	rootfs := pluginRootfs(t)
	parallel(t, l.hosts, func(h *host) error { return h.createManagedPlugin(rootfs) })
	block := readmeBlock(t, "Swarm across several hosts", "docker swarm init")
	nodes := map[string]*host{"node1": h1, "node2": h2, "node3": h3}
	addrs := strings.NewReplacer("http://10.0.0.10:2379", l.etcd.endpoints(), "10.0.1.11", h1.addr4.Addr().String())
	l.runExample(t, block, exampleSteps(t, block, addrs, slices.Sorted(maps.Keys(nodes))), nodes)
	leaveSwarmAtCleanup(t, l) // before the shells end: the tasks must not be restarted as they are removed
	const network, service = "calico-swarm", "web"
	tasks := waitTasks(t, l, service, 6, map[string]int{"h1": 2, "h2": 2, "h3": 2})
	t.Logf("swarm of 3 nodes with the managed plugin and 6 tasks up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("AcrossHosts", func(t *testing.T) {
		expectMatrix(t, tasks, false)
		for _, h := range l.hosts {
			from := tasksOn(tasks, h)[0]
			expectResolves(t, from, "tasks."+service, tasks)
		}
	})
	standalone := h2.run("standalone", network)
	t.Run("Standalone", func(t *testing.T) {
		for _, to := range tasks {
			expectPing(t, standalone, to.ip4)
		}
		expectResolves(t, standalone, "tasks."+service, tasks)
		expectPing(t, standalone, "tasks."+service)
		expectAllocations(t, l, map[string]int{"h1": 2, "h2": 3, "h3": 2})
	})
	t.Run("NodeLeaves", func(t *testing.T) {
		netID := h1.mustDocker("network", "inspect", "-f", "{{.Id}}", network)
		left := tasksOn(tasks, h3)
		t0 := time.Now()
		h3.mustDocker("swarm", "leave", "--force")
		waitHost(t, h3, leaveRelease, func() error {
			for _, c := range left {
				if out := l.calicoctl("", "ipam", "show", "--ip", c.ip4); !strings.Contains(out, "is not assigned") {
					return fmt.Errorf("%s of %s (left the swarm) is still allocated:\n%s", c.ip4, c.name, out)
				}
			}
			return nil
		})
		t.Logf("the addresses of the tasks of h3 released %v after it left the swarm", time.Since(t0).Round(time.Millisecond))
		expectAllocations(t, l, map[string]int{"h1": 2, "h2": 3})
		// The network stays on h1 and h2 (one Calico network, its profile); h3's record of it is gone.
		waitHost(t, h3, settle, func() error {
			keys := l.etcdKeys("/calico/libnetwork/v1/networks/" + netID + "/")
			if want := []string{"h1", "h2"}; !slices.Equal(keys, want) {
				return fmt.Errorf("nodes with a record of network %s: %v, want %v", netID, keys, want)
			}
			return nil
		})
		l.calicoctl("", "get", "profile", network)
		remaining := slices.DeleteFunc(slices.Clone(tasks), func(c *container) bool { return c.host == h3 })
		expectMatrix(t, append(remaining, standalone), false)
	})
	t.Run("ScaleDownAndRemove", func(t *testing.T) {
		// Two nodes are left for six replicas of at most two per node: four run, two wait.
		t0 := time.Now()
		h1.mustDocker("service", "scale", "--detach", service+"=2")
		left := waitTasks(t, l, service, 2, nil)
		t.Logf("scaled down to 2 tasks in %v", time.Since(t0).Round(time.Millisecond))
		want := map[string]int{"h2": 1} // the standalone container
		for _, c := range left {
			want[c.host.name]++
		}
		expectAllocations(t, l, want)
		expectMatrix(t, append(left, standalone), false)

		t0 = time.Now()
		h1.mustDocker("service", "rm", service)
		h2.mustDocker("rm", "-f", standalone.name)
		waitTasks(t, l, service, 0, nil)
		expectAllocations(t, l, map[string]int{})
		t.Logf("service removed and nothing allocated %v after docker service rm", time.Since(t0).Round(time.Millisecond))
		for _, h := range l.hosts {
			if out, err := h.sh("ip -o link show | grep -E ': cali[0-9a-f]{11}[@:]'"); err == nil {
				t.Errorf("interfaces of removed containers left on %s:\n%s", h.name, out)
			}
		}
	})
}

// pluginRootfs assembles the plugin's root filesystem and config as packaging/plugin.sh gives them to
// `docker plugin create`, straight from static binaries (the image's rootfs, without building the image).
func pluginRootfs(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	must(t, err)
	work := t.TempDir()
	binDir := filepath.Dir(bins.Plugin)
	if os.Getenv("HARNESS_RACE") == "1" { // the lab's binaries are not static then
		binDir = filepath.Join(work, "bin")
		for _, cmd := range []string{"calico-libnetwork", "calicoctl"} {
			build := exec.Command("go", "build", "-o", filepath.Join(binDir, cmd), "./cmd/"+cmd)
			build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", cmd, err, out)
			}
		}
	}
	dir := filepath.Join(work, "plugin")
	if out, err := run(time.Minute, "bash", filepath.Join(root, "packaging", "image-rootfs.sh"), binDir, filepath.Join(dir, "rootfs")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	config, err := os.ReadFile(filepath.Join(root, "packaging", "plugin", "config.json"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644))
	return dir
}

// createManagedPlugin creates the managed plugin from dir on the host's dockerd, disabled, with its data
// folder and Docker socket the host's own (the lab's hosts share one filesystem).
func (h *host) createManagedPlugin(dir string) error {
	data := filepath.Join(h.dir, "calico-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"plugin", "create", swarmPlugin, dir},
		{"plugin", "set", swarmPlugin, "data.source=" + data, "docker-socket.source=" + strings.TrimPrefix(h.socket(), "unix://")},
	} {
		if _, err := h.docker(args...); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
	}
	return nil
}

// leaveSwarmAtCleanup leaves the swarm on every host at cleanup, which removes the tasks' containers while
// the plugins still answer.
func leaveSwarmAtCleanup(t *testing.T, l *lab) {
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, h := range l.hosts {
			wg.Go(func() {
				_, _ = h.docker("swarm", "leave", "--force")
				h.removeContainers()
			})
		}
		wg.Wait()
	})
}

// parallel runs f for each host at once and fails the test with every error.
func parallel(t *testing.T, hosts []*host, f func(*host) error) {
	t.Helper()
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { errs[i] = f(h) })
	}
	wg.Wait()
	must(t, errors.Join(errs...))
}

// waitTasks waits until the service has total running containers, perHost[host] on each host unless
// perHost is nil, each with an address on the service's one network, and returns them.
func waitTasks(t *testing.T, l *lab, service string, total int, perHost map[string]int) []*container {
	t.Helper()
	var tasks []*container
	waitHost(t, l.hosts[0], settle, func() error {
		tasks = nil
		for _, h := range l.hosts {
			ids, err := h.docker("ps", "-q", "-f", "label=com.docker.swarm.service.name="+service)
			if err != nil {
				return err
			}
			if n := len(strings.Fields(ids)); perHost != nil && n != perHost[h.name] {
				return fmt.Errorf("%s runs %d tasks of %s, want %d", h.name, n, service, perHost[h.name])
			}
			for _, id := range strings.Fields(ids) {
				out, err := h.docker("inspect", "-f", `{{.State.Status}} {{.Name}}{{range .NetworkSettings.Networks}} {{.IPAddress}}{{end}}`, id)
				if err != nil {
					return err
				}
				f := strings.Fields(out)
				if len(f) != 3 || f[0] != "running" || !netip.MustParsePrefix(pool4).Contains(netip.MustParseAddr(f[2])) {
					return fmt.Errorf("task %s on %s: %q, want running with one address of pool %s", id, h.name, out, pool4)
				}
				tasks = append(tasks, &container{host: h, name: strings.TrimPrefix(f[1], "/"), ip4: f[2]})
			}
		}
		if len(tasks) != total {
			return fmt.Errorf("%s has %d tasks running, want %d", service, len(tasks), total)
		}
		return nil
	})
	return tasks
}

func tasksOn(tasks []*container, h *host) []*container {
	return slices.DeleteFunc(slices.Clone(tasks), func(c *container) bool { return c.host != h })
}

var answerRE = regexp.MustCompile(`(?m)^Address(?: \d+)?:\s*([0-9.]+)\s*$`)

// expectResolves waits until name resolves, in container from, to exactly the addresses of want.
func expectResolves(t *testing.T, from *container, name string, want []*container) {
	t.Helper()
	var addrs []string
	for _, c := range want {
		addrs = append(addrs, c.ip4)
	}
	slices.Sort(addrs)
	waitHost(t, from.host, converge, func() error {
		out, _ := from.host.docker("exec", from.name, "nslookup", name)
		var got []string
		for _, m := range answerRE.FindAllStringSubmatch(out, -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		if !slices.Equal(got, addrs) {
			return fmt.Errorf("%s on %s resolves %s to %v, want %v:\n%s", from.name, from.host.name, name, got, addrs, out)
		}
		return nil
	})
}

var (
	checkWorkloadRE = regexp.MustCompile(`Found (\d+) workload IPs and (\d+) node tunnel IPs in use`)
	checkProblemRE  = regexp.MustCompile(`Found (\d+) (?:IPs that are allocated in IPAM but not|in-use IPs that are not allocated|handle problems)`)
)

// expectAllocations waits until the datastore holds, for each node, exactly perNode[node] workload
// endpoints (none for nodes not named) and IPAM holds exactly their addresses and the nodes' tunnel
// addresses: no leaked address or handle.
func expectAllocations(t *testing.T, l *lab, perNode map[string]int) {
	t.Helper()
	waitHost(t, l.hosts[0], settle, func() error {
		var weps struct {
			Kind  string
			Items []wepJSON
			wepJSON
		}
		out := l.calicoctl("", "get", "workloadendpoints", "-A", "-o", "json")
		if err := json.Unmarshal([]byte(out), &weps); err != nil {
			return fmt.Errorf("calicoctl get workloadendpoints: %v\n%s", err, out)
		}
		if weps.Kind == "WorkloadEndpoint" {
			weps.Items = []wepJSON{weps.wepJSON}
		}
		got, total := map[string]int{}, 0
		for _, w := range weps.Items {
			got[w.Spec.Node]++
			total++
		}
		for _, h := range l.hosts {
			if got[h.name] != perNode[h.name] {
				return fmt.Errorf("%d workload endpoints on %s, want %d:\n%s", got[h.name], h.name, perNode[h.name], out)
			}
		}
		check := l.calicoctl("", "ipam", "check")
		m := checkWorkloadRE.FindStringSubmatch(check)
		if m == nil || m[1] != strconv.Itoa(total) || !strings.Contains(check, fmt.Sprintf("Found %d IPAM allocations", total+atoi(m[2]))) {
			return fmt.Errorf("want %d workload addresses allocated, and the tunnel addresses:\n%s", total, check)
		}
		for _, p := range checkProblemRE.FindAllStringSubmatch(check, -1) {
			if p[1] != "0" {
				return fmt.Errorf("calicoctl ipam check found problems:\n%s", check)
			}
		}
		return nil
	})
}

type wepJSON struct {
	Spec struct {
		Node string `json:"node"`
	} `json:"spec"`
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// etcdKeys lists the last path element of the keys under prefix in the lab's etcd.
func (l *lab) etcdKeys(prefix string) []string {
	l.t.Helper()
	out := l.inNS(l.router, "env", "ETCDCTL_API=3", "etcdctl", "--endpoints", l.etcd.endpoints(), "get", "--prefix", "--keys-only", prefix)
	var keys []string
	for _, k := range lines(out) {
		keys = append(keys, filepath.Base(k))
	}
	slices.Sort(keys)
	return keys
}
