package multihost

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
	"github.com/projectcalico/calico-libnetwork/test/e2e/readme"
)

// The lab's address plan, all in test ranges (198.18.0.0/15, 2001:db8::/32). Segment A and segment B are
// two L2 segments (Linux bridges) joined by the router; the pools lie outside both.
var segments = []segment{
	{bridge: "segA", v4: netip.MustParsePrefix("198.18.0.0/24"), v6: netip.MustParsePrefix("2001:db8:0:a::/64")},
	{bridge: "segB", v4: netip.MustParsePrefix("198.18.1.0/24"), v6: netip.MustParsePrefix("2001:db8:0:b::/64")},
}

const (
	pool4     = "198.19.0.0/16"
	pool6     = "2001:db8:100::/48"
	imageFile = "image.tar"
)

// etcdAddrs are the etcd members' addresses, on segment A in the router's namespace.
var etcdAddrs = []string{"198.18.0.201", "198.18.0.202", "198.18.0.203"}

func labEtcdMembers() []memberAddr {
	out := make([]memberAddr, len(etcdAddrs))
	for i, a := range etcdAddrs {
		out[i] = memberAddr{client: a + ":2379", peer: a + ":2380"}
	}
	return out
}

type segment struct {
	bridge string
	v4, v6 netip.Prefix
}

// gateway is the router's address on the segment (the first one).
func (s segment) gateway(v6 bool) netip.Addr {
	if v6 {
		return s.v6.Addr().Next()
	}
	return s.v4.Addr().Next()
}

// lab is a set of hosts, each a network namespace with its own dockerd and calico-libnetwork, on two L2
// segments joined by a router namespace that also runs the three etcd members.
//
// The bridges live in the router's namespace rather than the root one: with br_netfilter loaded (Docker
// loads it), bridged frames traverse the root namespace's iptables FORWARD chain, whose policy Docker
// sets to DROP.
type lab struct {
	t      *testing.T
	id     string
	dir    string // /run/calico-mh-<id>: sockets, exec roots, scripts; unique to this run
	data   string // /var/lib/calico-mh-<id>: Docker data roots (overlay2 needs a real filesystem)
	router string
	etcd   *etcdCluster
	hosts  []*host
}

// hostSpec places a host: its name and the segment and host number of its address. A felix host runs
// the plugin with CALICO_DATAPLANE=none and upstream calico-felix (CALICO_FELIX) programming it; backend,
// when set, is the plugin's CALICO_NETWORKING_BACKEND. On a managed host the lab starts no plugin: the test
// installs it as a managed plugin of the host's dockerd (swarm takes no other).
type hostSpec struct {
	name    string
	segment int
	number  int
	felix   bool
	backend string
	managed bool
}

// newLab builds the lab with its etcd cluster and the plugins of all but managed hosts, or skips the test
// when the machine cannot run it.
func newLab(t *testing.T, specs []hostSpec) *lab {
	t.Helper()
	l := newBareLab(t, specs)
	l.etcd = startEtcd(t, l.router, filepath.Join(l.dir, "etcd"), labEtcdMembers())
	for i, h := range l.hosts { // one after another: each registers its Node

		if specs[i].managed {
			continue
		}
		h.startPlugin()
		if h.felix {
			h.startFelix()
		}
	}
	return l
}

// newBareLab builds the router and the hosts with their dockerds, without etcd or plugins.
func newBareLab(t *testing.T, specs []hostSpec) *lab {
	t.Helper()
	requireLab(t)
	if slices.ContainsFunc(specs, func(s hostSpec) bool { return s.felix }) {
		requireFelix(t)
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	l := &lab{t: t, id: id, dir: "/run/calico-mh-" + id, data: "/var/lib/calico-mh-" + id, router: "mh" + id + "-r"}
	sweepStale(t)
	// The hosts' firewalls (this plugin's, Felix's chains and sets) live and die with their namespaces.
	before := rootTraces()
	t.Cleanup(func() {
		if after := rootTraces(); !slices.Equal(after, before) {
			t.Errorf("the lab changed Calico's traces in this machine's own namespace:\nbefore:\n%s\nafter:\n%s",
				strings.Join(before, "\n"), strings.Join(after, "\n"))
		}
	})
	t.Cleanup(l.teardown)
	for _, d := range []string{l.dir, l.data, harness.DefaultPluginDir} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(l.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644))
	l.buildRouter()
	start := time.Now()
	if out, err := run(time.Minute, "sh", "-c", fmt.Sprintf("%s save %s > %s", harness.DockerBin, harness.TestImage, filepath.Join(l.dir, imageFile))); err != nil {
		t.Fatalf("saving the test image: %v\n%s", err, out)
	}
	for _, s := range specs {
		l.hosts = append(l.hosts, l.newHost(s))
	}
	// The dockerds start in parallel (a few seconds each).
	errs := make([]error, len(l.hosts))
	var wg sync.WaitGroup
	for i, h := range l.hosts {
		wg.Go(func() { errs[i] = h.startDocker() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("host %s: %v\n--- dockerd output ---\n%s", l.hosts[i].name, err, l.hosts[i].dockerd.logs.String())
		}
	}
	t.Cleanup(func() {
		if d, _ := time.ParseDuration(os.Getenv("MULTIHOST_DEBUG_PAUSE")); t.Failed() && d > 0 {
			t.Logf("lab %s kept for %v for inspection", l.id, d)
			time.Sleep(d)
		}
	})
	t.Logf("lab %s: %d hosts up in %v", id, len(l.hosts), time.Since(start).Round(time.Millisecond))
	return l
}

// requireLab skips unless this machine has what the lab needs.
func requireLab(t *testing.T) {
	t.Helper()
	harness.RequireRoot(t)
	harness.RequireDocker(t) // the image comes from the host's dockerd
	for _, bin := range []string{"/usr/sbin/dockerd", etcdBinary, "/usr/bin/etcdctl", "/usr/bin/nsenter", "/usr/bin/unshare"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("skipping: needs %s (bash scripts/install-deps.sh)", bin)
		}
	}
	if bins.Plugin == "" {
		t.Skip("skipping: binaries not built (TestMain builds them as root)")
	}
	harness.EnsureTestImage(t)
}

// ip runs an ip(8) command, failing the test on error.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := run(10*time.Second, append([]string{"ip"}, args...)...); err != nil {
		l.t.Fatalf("%v\n%s", err, out)
	}
}

// inNS runs a command in a network namespace, failing the test on error.
func (l *lab) inNS(netns string, args ...string) string {
	l.t.Helper()
	out, err := run(10*time.Second, append([]string{"nsenter", "--net=/var/run/netns/" + netns}, args...)...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// buildRouter creates the router namespace with one bridge per segment and the etcd members' addresses.
func (l *lab) buildRouter() {
	l.ip("netns", "add", l.router)
	l.ip("-n", l.router, "link", "set", "lo", "up")
	for _, s := range segments {
		l.ip("-n", l.router, "link", "add", s.bridge, "type", "bridge")
		l.ip("-n", l.router, "link", "set", s.bridge, "up")
		for _, a := range []netip.Prefix{netip.PrefixFrom(s.gateway(false), s.v4.Bits()), netip.PrefixFrom(s.gateway(true), s.v6.Bits())} {
			l.ip("-n", l.router, "addr", "add", a.String(), "dev", s.bridge, "nodad")
		}
	}
	for _, a := range etcdAddrs {
		l.ip("-n", l.router, "addr", "add", a+"/24", "dev", segments[0].bridge)
	}
	l.inNS(l.router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
}

// ownerFile records the PID of the test process that owns a lab.
const ownerFile = "owner.pid"

// sweepStale removes the labs of test processes that died without tearing down (killed on a go test
// timeout, say): their dockerds died with them, but containerd shims and containers outlive them. Labs of
// live processes (another run of this suite) are left alone.
func sweepStale(t *testing.T) {
	dirs, _ := filepath.Glob("/run/calico-mh-*")
	for _, dir := range dirs {
		pid, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err == nil {
			if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); err == nil {
				continue
			}
		}
		id := strings.TrimPrefix(dir, "/run/calico-mh-")
		t.Logf("removing the lab %s of a test process that is gone", id)
		stale := &lab{t: t, id: id, dir: dir, data: "/var/lib/calico-mh-" + id, router: "mh" + id + "-r"}
		if out, err := run(10*time.Second, "ip", "netns", "list"); err == nil {
			for _, f := range strings.Fields(out) {
				if strings.HasPrefix(f, "mh"+id+"-") && f != stale.router {
					stale.hosts = append(stale.hosts, &host{netns: f})
				}
			}
		}
		stale.teardown()
	}
}

// teardown removes everything the lab made, also after a failure half way: containers and daemons,
// namespaces (taking the bridges and veths with them), the cgroups of killed containers, folders.
func (l *lab) teardown() {
	var wg sync.WaitGroup
	for _, h := range l.hosts {
		wg.Go(func() {
			h.felixd.stop(syscall.SIGKILL, 5*time.Second)
			h.dockerd.stop(syscall.SIGTERM, 15*time.Second)
			h.anchor.stop(syscall.SIGKILL, 5*time.Second)
		})
	}
	wg.Wait()
	killMatching(l.dir)
	removeContainerCgroups(l.data)
	if l.etcd != nil {
		for _, m := range l.etcd.members {
			m.stop(syscall.SIGKILL, 5*time.Second)
		}
	}
	for _, h := range l.hosts {
		_, _ = run(10*time.Second, "ip", "netns", "del", h.netns)
	}
	_, _ = run(10*time.Second, "ip", "netns", "del", l.router)
	// Mounts lived in the hosts' private mount namespaces, gone with their processes.
	for _, d := range []string{l.dir, l.data} {
		if err := os.RemoveAll(d); err != nil {
			l.t.Logf("teardown: %v", err)
		}
	}
}

// rootTraces lists the rules, chains, sets and nftables tables of this machine's own network namespace
// that name Calico (cali-*, CALICO-*, calico tables).
func rootTraces() []string {
	out, _ := run(30*time.Second, "sh", "-c", "iptables-save; ip6tables-save; ipset list -n; nft list tables")
	return slices.DeleteFunc(lines(out), func(l string) bool { return !strings.Contains(strings.ToLower(l), "cali") })
}

// host returns the host of that name.
func (l *lab) host(name string) *host {
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	l.t.Fatalf("no host %s", name)
	return nil
}

// calicoctl runs calicoctl against the lab's etcd, from the router's namespace (a host may run no plugin
// of the lab's).
func (l *lab) calicoctl(stdin string, args ...string) string {
	l.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + l.router, bins.Calicoctl}, args...)...)
	cmd.Env = append(os.Environ(), "ETCD_ENDPOINTS="+l.etcd.endpoints())
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if e, ok := err.(*exec.ExitError); ok {
			stderr = e.Stderr
		}
		l.t.Fatalf("calicoctl %s: %v: %s\n%s", strings.Join(args, " "), err, stderr, out)
	}
	return string(out)
}

// runREADME runs the README's example for several hosts under heading that mentions what, with names
// replaced, in bash, its calicoctl the lab's (the example's docker commands would need a host; those are
// run by the tests themselves).
func (l *lab) runREADME(t *testing.T, heading, what string, names *strings.Replacer) {
	t.Helper()
	block := readmeBlock(t, heading, what)
	dir := t.TempDir()
	wrapper := "#!/bin/sh\nexec nsenter --net=/var/run/netns/" + l.router + " env ETCD_ENDPOINTS=" + l.etcd.endpoints() +
		" " + bins.Calicoctl + " \"$@\"\n"
	must(t, os.WriteFile(filepath.Join(dir, "calicoctl"), []byte(wrapper), 0o755))
	cmd := exec.Command("bash", "-e", "-o", "pipefail", "-x", "-c", names.Replace(block.Text))
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README.md line %d: %v\n%s", block.Line, err, out)
	}
	t.Logf("README.md line %d ran in the lab", block.Line)
}

// readmeBlock returns the README's multihost example under heading that mentions what.
func readmeBlock(t *testing.T, heading, what string) readme.Block {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	must(t, err)
	blocks, err := readme.Parse(string(doc))
	must(t, err)
	i := slices.IndexFunc(blocks, func(b readme.Block) bool {
		return b.Kind == readme.MultiHost && b.Heading == heading && strings.Contains(b.Text, what)
	})
	if i < 0 {
		t.Fatalf("README.md has no multihost example mentioning %q under %q", what, heading)
	}
	return blocks[i]
}

// setPools applies the lab's IPv4 pool with a VXLAN mode and its IPv6 pool.
func (l *lab) setPools(vxlanMode string) {
	l.t.Helper()
	l.calicoctl(fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: lab4}
spec: {cidr: %s, vxlanMode: %s, natOutgoing: false}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: lab6}
spec: {cidr: %s}
`, pool4, vxlanMode, pool6), "apply", "-f", "-")
}

// removeContainerCgroups removes the (empty) cgroups that containers killed with their dockerd leave.
func removeContainerCgroups(dataRoot string) {
	ids, _ := filepath.Glob(filepath.Join(dataRoot, "*", "containers", "*"))
	for _, id := range ids {
		cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "docker", filepath.Base(id)))
		for _, cg := range cgroups {
			_ = waitFor(2*time.Second, func() error { return syscall.Rmdir(cg) })
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// lines splits command output into trimmed, non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
