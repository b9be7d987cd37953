package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// TestSwarmService runs swarm services on a Calico network of the managed plugin, in a single-node swarm
// made on the host's dockerd (and left again at the end, whatever happens):
//
//   - Proof of the Docker limitation: a --scope swarm network given --ipam-driver loses it. Swarm's
//     allocator leaves the networks of a driver of local scope to the nodes and hands them no IPAM
//     settings, so the node's network comes with Docker's default IPAM, which the driver refuses with a
//     message pointing at --config-from.
//   - What works: a --config-only network carries --ipam-driver, the --scope swarm --attachable network is
//     created --config-from it; replicas get Calico addresses and reach each other by address and by name
//     (Docker's DNS: tasks.<service>, and <service> itself, which has no virtual IP: swarm allocates none
//     on such networks, so both endpoint modes resolve to the tasks), a standalone container attaches, and
//     scaling to 6, to 1 and removing leaves exactly the live containers' endpoints and addresses, then none.
func TestSwarmService(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireDocker(t)
	harness.EnsureTestImage(t)
	if harness.FirewallBackend(t) == "nftables" {
		t.Skip("Docker refuses swarm mode with its nftables firewall backend (\"--firewall-backend=nftables is " +
			"incompatible with swarm mode\"): swarm is tested with the iptables backend")
	}
	if state := harness.Docker(t, "info", "-f", "{{.Swarm.LocalNodeState}}"); state != "inactive" {
		t.Skipf("dockerd's swarm state is %q, not inactive: this test makes and leaves a swarm of its own", state)
	}
	prefix := harness.UniqueName(t, "e2esw")
	ref, dataDir := installManagedPlugin(t, prefix, "e2e-swarm")
	harness.CleanupDocker(t, prefix) // the config-only network, once the swarm is gone
	initSwarm(t)
	s := &swarmEnv{t: t, prefix: prefix, dataDir: dataDir}

	// The limitation: --ipam-driver on a swarm network is dropped.
	direct := prefix + "-direct"
	harness.Docker(t, "network", "create", "--scope", "swarm", "--attachable", "-d", ref, "--ipam-driver", ref, direct)
	if got := harness.Docker(t, "network", "inspect", "-f", "{{.IPAM.Driver}}", direct); got != "" {
		t.Errorf("swarm kept IPAM driver %q for a local-scope driver's network; README's Swarm services section needs revisiting", got)
	}
	s.service("direct", direct)
	linktest.Eventually(t, 60*time.Second, time.Second, func() error {
		out := harness.Docker(t, "service", "ps", "--no-trunc", "-f", "desired-state=shutdown", "--format", "{{.Error}}", prefix+"-direct")
		if !strings.Contains(out, "--config-from") {
			return fmt.Errorf("no task refused with the --config-from advice yet; task errors: %q", out)
		}
		return nil
	})
	harness.Docker(t, "service", "rm", prefix+"-direct")
	s.waitTasks(prefix+"-direct", 0)

	// What works.
	config, network := prefix+"-cfg", prefix+"-net"
	harness.Docker(t, "network", "create", "--config-only", "--ipam-driver", ref, config)
	harness.Docker(t, "network", "create", "--scope", "swarm", "--attachable", "--config-from", config, "-d", ref, network)
	vip, rr := prefix+"-vip", prefix+"-rr"
	s.service("vip", network, "--replicas", "3")
	s.service("rr", network, "--replicas", "2", "--endpoint-mode", "dnsrr")
	vips := s.waitTasks(vip, 3)
	rrs := s.waitTasks(rr, 2)
	if out := harness.Docker(t, "service", "inspect", "-f", "{{json .Endpoint.VirtualIPs}}", vip); strings.Contains(out, `"Addr"`) {
		t.Errorf("swarm allocated a virtual IP on the Calico network (%s); README says it does not", out)
	}
	all := append(slices.Clone(vips), rrs...)
	for _, from := range all {
		for _, to := range all {
			if from.name != to.name {
				s.ping(from.name, to.addr.String())
			}
		}
	}
	// Docker's DNS, from a task of each service: task records, and the service names themselves.
	s.resolves(vips[0].name, "tasks."+vip, vips)
	s.resolves(vips[0].name, rr, rrs)
	s.resolves(rrs[0].name, vip, vips)
	s.ping(rrs[0].name, vip)
	attached := prefix + "-attached"
	harness.Docker(t, "run", "-d", "--name", attached, "--network", network, harness.TestImage, "sleep", "3600")
	s.ping(attached, rr)
	harness.Docker(t, "rm", "-f", attached)

	harness.Docker(t, "service", "scale", "--detach", vip+"=6")
	s.waitTasks(vip, 6)
	s.assertAllocations(6 + 2)
	harness.Docker(t, "service", "scale", "--detach", vip+"=1")
	s.ping(rrs[0].name, s.waitTasks(vip, 1)[0].addr.String())
	s.assertAllocations(1 + 2)

	harness.Docker(t, "service", "rm", vip, rr)
	s.waitTasks(vip, 0)
	s.waitTasks(rr, 0)
	s.assertAllocations(0)
	for id := range s.endpoints {
		if _, err := net.InterfaceByName("cali" + id[:11]); err == nil {
			t.Errorf("interface cali%s of a removed task is left", id[:11])
		}
	}
}

// initSwarm makes the host's dockerd a single-node swarm manager and leaves the swarm at cleanup, after
// the services are gone (registered later, so run earlier), removing docker_gwbridge if swarm made it.
func initSwarm(t *testing.T) {
	t.Helper()
	_, gwbridgeErr := harness.DockerErr("network", "inspect", "docker_gwbridge")
	t.Cleanup(func() {
		cleanupDocker(t, "swarm", "leave", "--force")
		if gwbridgeErr != nil {
			cleanupDocker(t, "network", "rm", "docker_gwbridge")
		}
	})
	// Loopback would do for one node, but swarm refuses it: advertise the address of the default route.
	addr := "127.0.0.1"
	if out, err := exec.Command("ip", "-4", "-o", "route", "get", "192.0.2.255").Output(); err == nil {
		if m := regexp.MustCompile(`src (\S+)`).FindSubmatch(out); m != nil {
			addr = string(m[1])
		}
	}
	harness.Docker(t, "swarm", "init", "--advertise-addr", addr)
}

// swarmEnv is one test's swarm services and what it learnt of their endpoints.
type swarmEnv struct {
	t         *testing.T
	prefix    string
	dataDir   string
	endpoints map[string]bool // every endpoint ID seen, for the interface check at the end
}

// task is one running replica on the Calico network.
type task struct {
	name string
	addr netip.Addr
}

// service creates prefix-suffix (sleeping busybox) on network without waiting, and removes it at cleanup.
func (s *swarmEnv) service(suffix, network string, flags ...string) {
	s.t.Helper()
	name := s.prefix + "-" + suffix
	s.t.Cleanup(func() {
		if _, err := harness.DockerErr("service", "inspect", name); err == nil {
			cleanupDocker(s.t, "service", "rm", name)
			s.waitTasks(name, 0)
		}
	})
	args := append([]string{"service", "create", "--detach", "--quiet", "--name", name, "--network", network}, flags...)
	harness.Docker(s.t, append(args, harness.TestImage, "sleep", "3600")...)
}

var slotRE = regexp.MustCompile(`^(.+)\.\d+\.[0-9a-z]+$`)

// waitTasks waits until exactly n containers of service run (stopped ones hold no endpoint), each with a Calico address, and returns them.
func (s *swarmEnv) waitTasks(service string, n int) []task {
	s.t.Helper()
	var tasks []task
	linktest.Eventually(s.t, 90*time.Second, 500*time.Millisecond, func() error {
		tasks = nil
		out, err := harness.DockerErr("ps", "-q", "-f", "label=com.docker.swarm.service.name="+service)
		if err != nil {
			return err
		}
		ids := strings.Fields(out)
		if len(ids) != n {
			return fmt.Errorf("service %s has %d containers, want %d", service, len(ids), n)
		}
		for _, id := range ids {
			out, err := harness.DockerErr("inspect", "-f",
				`{{.State.Status}} {{.Name}}{{range .NetworkSettings.Networks}} {{.EndpointID}} {{.IPAddress}}{{end}}`, id)
			if err != nil {
				return err
			}
			f := strings.Fields(out)
			if len(f) != 4 || f[0] != "running" {
				return fmt.Errorf("container %s: %q, want running with one network", id, out)
			}
			addr, err := netip.ParseAddr(f[3])
			if err != nil || !netip.MustParsePrefix("192.168.0.0/16").Contains(addr) {
				return fmt.Errorf("container %s has address %q, want one of the default Calico pool", f[1], f[3])
			}
			if m := slotRE.FindStringSubmatch(strings.TrimPrefix(f[1], "/")); m == nil || m[1] != service {
				return fmt.Errorf("container %s is not a task of %s", f[1], service)
			}
			if s.endpoints == nil {
				s.endpoints = map[string]bool{}
			}
			s.endpoints[f[2]] = true
			tasks = append(tasks, task{name: strings.TrimPrefix(f[1], "/"), addr: addr})
		}
		return nil
	})
	return tasks
}

func (s *swarmEnv) ping(from, to string) {
	s.t.Helper()
	if out, err := harness.DockerErr("exec", from, "ping", "-c", "1", "-W", "2", to); err != nil {
		s.t.Errorf("%s cannot ping %s: %v\n%s", from, to, err, out)
	}
}

var answerRE = regexp.MustCompile(`(?m)^Address(?: \d+)?:\s*([0-9.]+)\s*$`)

// resolves checks that name resolves, in container from, to exactly the addresses of tasks.
func (s *swarmEnv) resolves(from, name string, tasks []task) {
	s.t.Helper()
	var want []string
	for _, tk := range tasks {
		want = append(want, tk.addr.String())
	}
	slices.Sort(want)
	linktest.Eventually(s.t, 10*time.Second, 500*time.Millisecond, func() error {
		out, _ := harness.DockerErr("exec", from, "nslookup", name)
		var got []string
		for _, m := range answerRE.FindAllStringSubmatch(out, -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s resolves %s to %v, want %v:\n%s", from, name, got, want, out)
		}
		return nil
	})
}

// endpointKindRE counts endpoints in calicoctl's JSON, a list or (for one) a bare object.
var endpointKindRE = regexp.MustCompile(`"kind":\s*"WorkloadEndpoint"`)

// assertAllocations waits (the last containers may still be going) until the plugin's datastore holds
// exactly n address allocations and n workload endpoints, and calicoctl ipam check finds no problem.
func (s *swarmEnv) assertAllocations(n int) {
	s.t.Helper()
	linktest.Eventually(s.t, 20*time.Second, 500*time.Millisecond, func() error {
		check := s.calicoctl("ipam", "check")
		if m := allocationsRE.FindStringSubmatch(check); m == nil || m[1] != strconv.Itoa(n) || !strings.Contains(check, "found 0 problems") {
			return fmt.Errorf("want %d IPAM allocations and no problems:\n%s", n, check)
		}
		weps := s.calicoctl("get", "workloadendpoints", "-n", "libnetwork", "-o", "json")
		if got := len(endpointKindRE.FindAllString(weps, -1)); got != n {
			return fmt.Errorf("want %d workload endpoints, have %d:\n%s", n, got, weps)
		}
		return nil
	})
}

// calicoctl runs calicoctl against the managed plugin's embedded etcd.
func (s *swarmEnv) calicoctl(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(bins.Calicoctl, args...)
	cmd.Env = append(os.Environ(), "CALICO_DATA_DIR="+s.dataDir)
	return mustRun(s.t, cmd)
}
