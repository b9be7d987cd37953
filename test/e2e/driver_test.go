package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// The seed README's health checks, over the sockets with nc.
func TestHealthChecks(t *testing.T) {
	e := start(t, nil)
	for sock, want := range map[string]string{
		"calico.sock":      `{"Scope":"local","ConnectivityScope":"global"}`,
		"calico-ipam.sock": `{"RequiresMACAddress":false,"RequiresRequestReplay":false}`,
	} {
		method := "NetworkDriver"
		if strings.Contains(sock, "ipam") {
			method = "IpamDriver"
		}
		cmd := exec.Command("sh", "-c", `printf 'GET /`+method+`.GetCapabilities HTTP/1.0\r\n\r\n' | nc -U `+e.plugin.PluginDir()+"/"+sock)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "200 OK") || !strings.Contains(string(out), want) {
			t.Errorf("%s health check: %v\n%s", sock, err, out)
		}
	}
}

// One network, two containers: addresses from the default pool, Calico's routes in the container, the
// endpoint and profile in the datastore, reachability, and nothing left after removal.
func TestSingleNetwork(t *testing.T) {
	e := start(t, nil)
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)

	ipA := e.containerIP(a, net, false)
	if !netip.MustParsePrefix("192.168.0.0/16").Contains(netip.MustParseAddr(ipA)) {
		t.Fatalf("address %s is not from the default pool", ipA)
	}
	addr, _ := e.exec(a, "ip", "-4", "addr", "show", "cali0")
	if !strings.Contains(addr, "inet "+ipA+"/32") {
		t.Errorf("cali0 does not carry %s/32:\n%s", ipA, addr)
	}
	routes, _ := e.exec(a, "ip", "-4", "route")
	if got := sortedLines(routes); strings.Join(got, "\n") != "169.254.1.1 dev cali0 scope link\ndefault via 169.254.1.1 dev cali0" {
		t.Errorf("container routes:\n%s", routes)
	}

	weps := e.endpoints()
	if len(weps) != 2 {
		t.Fatalf("want 2 workload endpoints, got %d", len(weps))
	}
	for _, w := range weps {
		meta, spec := w["metadata"].(map[string]any), w["spec"].(map[string]any)
		endpointID := spec["endpoint"].(string)
		if meta["name"] != "e2e--node-libnetwork-libnetwork-"+endpointID || meta["namespace"] != "libnetwork" {
			t.Errorf("endpoint name/namespace: %v/%v", meta["name"], meta["namespace"])
		}
		if spec["interfaceName"] != "cali"+endpointID[:11] || spec["orchestrator"] != "libnetwork" || spec["node"] != "e2e-node" {
			t.Errorf("endpoint spec: %v", spec)
		}
		if p := spec["profiles"].([]any); len(p) != 1 || p[0] != net {
			t.Errorf("endpoint profiles %v, want [%s]", p, net)
		}
		if !regexp.MustCompile(`^[0-9a-f:]{17}$`).MatchString(spec["mac"].(string)) {
			t.Errorf("endpoint MAC %v", spec["mac"])
		}
	}
	profile := e.calicoctl("get", "profile", net, "-o", "json")
	if !strings.Contains(profile, `"labelsToApply"`) || !strings.Contains(profile, "has("+net+")") {
		t.Errorf("profile:\n%s", profile)
	}

	e.mustPing(a, e.containerIP(b, net, false))
	e.mustPing(b, ipA)
	if out, err := exec.Command("ping", "-c", "1", "-W", "2", ipA).CombinedOutput(); err != nil {
		t.Errorf("host cannot reach %s: %v\n%s", ipA, err, out)
	}

	e.docker("rm", "-f", a, b)
	linktest.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if n := len(e.endpoints()); n != 0 {
			return fmt.Errorf("%d endpoints left", n)
		}
		return nil
	})
	if out := e.calicoctl("ipam", "show"); !regexp.MustCompile(`(?m)IP Pool\s*\|\s*192\.168\.0\.0/16\s*\|\s*65536\s*\|\s*0 `).MatchString(out) {
		t.Errorf("addresses still allocated after removal:\n%s", out)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput(); strings.Contains(string(out), "tmp") {
		t.Errorf("interfaces left behind:\n%s", out)
	}
	e.docker("network", "rm", net)
	if _, err := e.plugin.Calicoctl("get", "profile", net); err == nil {
		t.Errorf("profile %s survives its network", net)
	}
}

// Every refused flag is named, sorted, in one error, and nothing is recorded.
func TestRefusedNetworkOptions(t *testing.T) {
	e := start(t, nil)
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{[]string{"-d", "calico", "--ipam-driver", "calico-ipam", "--gateway", "192.168.0.1", "--subnet", "192.168.0.0/16", "--internal", "-o", "foo=bar"},
			[]string{"--gateway", "--internal", "-o foo=bar"}},
		{[]string{"-d", "calico", "--ipam-driver", "calico-ipam", "--subnet", "10.99.0.0/24", "--ip-range", "10.99.0.0/25", "--ipam-opt", "x=y"},
			[]string{"--ip-range", "--ipam-opt", "--subnet 10.99.0.0/24"}},
		{[]string{"-d", "calico"}, []string{"--ipam-driver"}},
	} {
		name := e.name("bad")
		out, err := harness.DockerErr(append(append([]string{"network", "create"}, tc.flags...), name)...)
		if err == nil {
			harness.DockerErr("network", "rm", name)
			t.Errorf("network create %v succeeded", tc.flags)
			continue
		}
		_, msg, _ := strings.Cut(err.Error(), "Error response from daemon")
		last := -1
		for _, w := range tc.want {
			i := strings.Index(msg, w)
			if i < 0 || i < last {
				t.Errorf("flags %v: error does not name %q in order:\n%s%s", tc.flags, w, msg, out)
			}
			last = i
		}
	}
	kvs := e.etcdKeys("/calico/libnetwork/")
	if len(kvs) != 0 {
		t.Errorf("refused networks left records: %v", kvs)
	}
}

// --subnet selects the Calico pool with that CIDR; --ip and --mac-address are honoured.
func TestSubnetStaticIPAndMAC(t *testing.T) {
	e := start(t, nil)
	e.applyYAML(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: e2e-pool}
spec: {cidr: 10.123.0.0/16, blockSize: 26}
`)
	net := e.network("net", "--subnet", "10.123.0.0/16")
	a := e.run("a", "--net", net)
	if ip := e.containerIP(a, net, false); !strings.HasPrefix(ip, "10.123.") {
		t.Errorf("address %s not from the subnet's pool", ip)
	}
	b := e.run("b", "--net", net, "--ip", "10.123.7.7", "--mac-address", "02:42:de:ad:be:ef")
	if ip := e.containerIP(b, net, false); ip != "10.123.7.7" {
		t.Errorf("--ip ignored: %s", ip)
	}
	if mac, _ := e.exec(b, "cat", "/sys/class/net/cali0/address"); mac != "02:42:de:ad:be:ef" {
		t.Errorf("--mac-address ignored: %s", mac)
	}
	found := false
	for _, w := range e.endpoints() {
		if spec := w["spec"].(map[string]any); spec["mac"] == "02:42:de:ad:be:ef" {
			found = true
			if nets := spec["ipNetworks"].([]any); len(nets) != 1 || nets[0] != "10.123.7.7/32" {
				t.Errorf("endpoint networks %v", nets)
			}
		}
	}
	if !found {
		t.Errorf("no endpoint with the requested MAC")
	}
	e.mustPing(a, "10.123.7.7")
	_, err := harness.DockerErr("run", "--rm", "--net", net, "--ip", "10.123.7.7", harness.TestImage, "true")
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("duplicate --ip: %v", err)
	}
}

// IPv6: a dual-stack network gives containers an IPv6 address and the host veth's link-local gateway.
func TestIPv6(t *testing.T) {
	e := start(t, map[string]string{"CALICO_IPV6POOL_CIDR": "fd80:24e2:f998:72d6::/64"})
	net := e.network("v6", "--ipv6")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	ip6 := e.containerIP(b, net, true)
	if !strings.HasPrefix(ip6, "fd80:24e2:f998:72d6:") {
		t.Fatalf("no IPv6 address from the pool: %q", ip6)
	}
	routes, _ := e.exec(a, "ip", "-6", "route")
	if !regexp.MustCompile(`default via fe80::\S+ dev cali0`).MatchString(routes) {
		t.Errorf("IPv6 routes:\n%s", routes)
	}
	e.mustPing(a, ip6)
	e.mustPing(a, e.containerIP(b, net, false))
}

// An IPv6 network made without --subnet. Docker before 28.0.1 (20.10 included) reports such a network's
// IPv6 gateway with its prefix length (calico-ipam's placeholder as "::/0"), which Docker's API types
// refuse to decode as an address, failing every network list while the network exists. The plugin's loops
// that ask Docker must go on regardless: container labels reach the endpoints, the network's name its
// profile, and an address leaked meanwhile is collected, on this network and on an IPv4 one beside it;
// again once dockerd has restarted (the network as Docker stored it) and the plugin too (an upgrade
// meeting such a network).
func TestIPv6NetworkWithoutSubnet(t *testing.T) {
	e := start(t, map[string]string{"CALICO_IPV6POOL_CIDR": "fd80:24e2:f998:72d7::/64",
		"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true", "CALICO_IPAM_GC_GRACE": "2s"})
	net6, net4 := e.network("v6", "--ipv6"), e.network("v4")
	w := wire{t: t, p: e.plugin}
	check := func(round string) {
		t.Helper()
		t.Logf("Docker %s, %s: network inspect .IPAM.Config %s", harness.Engine(t).ServerVersion, round,
			e.docker("network", "inspect", "-f", "{{json .IPAM.Config}}", net6))
		e.run("six-"+round, "--net", net6, "--label", "org.projectcalico.label.role=six-"+round)
		e.run("four-"+round, "--net", net4, "--label", "org.projectcalico.label.role=four-"+round)
		var leaked libnetwork.RequestAddressResponse
		w.ok(ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": "", "Options": nil}, &leaked)
		leakedIP := netip.MustParsePrefix(leaked.Address).Addr().String()
		linktest.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
			want := map[string]string{net6: "six-" + round, net4: "four-" + round}
			for _, ep := range e.endpoints() {
				spec, _ := ep["spec"].(map[string]any)
				labels, _ := ep["metadata"].(map[string]any)["labels"].(map[string]any)
				for net, role := range want {
					if labels["role"] == role && fmt.Sprint(spec["profiles"]) == "["+net+"]" {
						delete(want, net)
					}
				}
			}
			var errs []error
			if len(want) > 0 {
				errs = append(errs, fmt.Errorf("no endpoint with its container's label and its network's profile on %v", want))
			}
			if out := e.calicoctl("ipam", "show", "--ip", leakedIP); !strings.Contains(out, "not assigned") {
				errs = append(errs, fmt.Errorf("leaked address %s still allocated:\n%s", leakedIP, out))
			}
			return errors.Join(errs...)
		})
	}
	check("new")
	if logs := e.plugin.Logs(); strings.Contains(logs, "Docker API unusable") {
		t.Errorf("the plugin found the Docker API unusable:\n%s", logs)
	}
	harness.RestartDockerd(t)
	e.plugin.Restart()
	check("restarted")
}

// A container on two Calico networks (and Docker's bridge): an interface per network, each network's
// peers through its own interface, and disconnecting one leaves the other working.
func TestSeveralNetworksPerContainer(t *testing.T) {
	e := start(t, nil)
	e.applyYAML(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: e2e-red}
spec: {cidr: 10.201.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: e2e-blue}
spec: {cidr: 10.202.0.0/16}
`)
	red := e.network("red", "--subnet", "10.201.0.0/16")
	blue := e.network("blue", "--subnet", "10.202.0.0/16")
	redPeer, bluePeer := e.run("redpeer", "--net", red), e.run("bluepeer", "--net", blue)
	both := e.run("both", "--net", red)
	e.docker("network", "connect", blue, both)
	e.docker("network", "connect", "bridge", both)

	links, _ := e.exec(both, "ip", "-o", "link")
	for _, ifname := range []string{"cali0", "cali1", "eth0"} {
		if !strings.Contains(links, ifname+"@") && !strings.Contains(links, ifname+":") {
			t.Errorf("container lacks %s:\n%s", ifname, links)
		}
	}
	routes, _ := e.exec(both, "ip", "-4", "route")
	for _, want := range []string{"10.201.0.0/16 via 169.254.1.1 dev cali0", "10.202.0.0/16 via 169.254.1.2 dev cali1", "169.254.1.2 dev cali1 scope link"} {
		if !strings.Contains(routes, want) {
			t.Errorf("missing route %q:\n%s", want, routes)
		}
	}
	e.mustPing(both, e.containerIP(redPeer, red, false))
	e.mustPing(both, e.containerIP(bluePeer, blue, false))

	e.docker("network", "disconnect", red, both)
	e.mustPing(both, e.containerIP(bluePeer, blue, false))
	if weps := e.endpoints(); len(weps) != 3 {
		t.Errorf("want 3 endpoints after disconnect, got %d", len(weps))
	}
}

// Containers on two Calico networks from their start (created on one, connected to the other, then
// started, as docker compose does): Docker joins both networks before the container's namespace exists, in
// its own order, and moves the interfaces in later in another order (by network name); both orders start,
// with each network's pool routed through its own interface.
func TestSeveralNetworksFromStart(t *testing.T) {
	e := start(t, nil)
	red, blue := e.twoColourPools()
	for _, order := range [][2]string{{red, blue}, {blue, red}} {
		name := e.name("from-" + order[0][len(order[0])-4:])
		e.docker("create", "--name", name, "--net", order[0], harness.TestImage, "sleep", "3600")
		e.docker("network", "connect", order[1], name)
		e.docker("start", name)
		routes, _ := e.exec(name, "ip", "-4", "route")
		for net, pool := range map[string]string{red: "10.221.0.0/16", blue: "10.222.0.0/16"} {
			dev := e.ifaceWith(name, e.containerIP(name, net, false))
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(pool) + ` via 169\.254\.1\.\d+ dev ` + dev + ` $`).MatchString(routes) {
				t.Errorf("%s (created on %s): no route to %s's pool %s through %s:\n%s", name, order[0], net, pool, dev, routes)
			}
		}
	}
}

// Container labels become endpoint labels shortly after start.
func TestEndpointLabels(t *testing.T) {
	e := start(t, map[string]string{"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true"})
	net := e.network("net")
	e.run("a", "--net", net, "--label", "org.projectcalico.label.role=db", "--label", "other=ignored")
	linktest.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		for _, w := range e.endpoints() {
			labels, _ := w["metadata"].(map[string]any)["labels"].(map[string]any)
			if labels["role"] == "db" && labels["other"] == nil {
				return nil
			}
		}
		return fmt.Errorf("endpoint labels not copied yet")
	})
}

// A killed plugin leaves running containers connected; after restart new containers work, and removing
// the old ones cleans up.
func TestPluginRestartKeepsContainers(t *testing.T) {
	e := start(t, nil)
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	e.plugin.Kill()
	e.mustPing(a, e.containerIP(b, net, false))
	e.plugin.Restart()
	c := e.run("c", "--net", net)
	e.mustPing(c, e.containerIP(a, net, false))
	e.docker("rm", "-f", a, b, c)
	linktest.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if n := len(e.endpoints()); n != 0 {
			return fmt.Errorf("%d endpoints left", n)
		}
		return nil
	})
}

// dockerd restart: a restart-policy container comes back with working networking, and the datastore holds
// exactly its endpoint.
func TestDockerdRestart(t *testing.T) {
	e := start(t, nil)
	net := e.network("net")
	a := e.run("a", "--net", net, "--restart", "always")
	b := e.run("b", "--net", net, "--restart", "always")
	harness.RestartDockerd(t)
	linktest.Eventually(t, 60*time.Second, time.Second, func() error {
		if out, err := e.exec(a, "ping", "-c", "1", "-W", "1", e.containerIP(b, net, false)); err != nil {
			return fmt.Errorf("after dockerd restart: %v %s", err, out)
		}
		return nil
	})
	linktest.Eventually(t, 30*time.Second, time.Second, func() error {
		if n := len(e.endpoints()); n != 2 {
			return fmt.Errorf("want 2 endpoints, have %d", n)
		}
		return nil
	})
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// applyYAML applies Calico resources through calicoctl's stdin.
func (e *env) applyYAML(doc string) {
	e.t.Helper()
	out, err := e.plugin.CalicoctlStdin(doc, "apply", "-f", "-")
	if err != nil {
		e.t.Fatalf("calicoctl apply: %v\n%s", err, out)
	}
}

// etcdKeys lists the keys under prefix in the plugin's datastore.
func (e *env) etcdKeys(prefix string) []string {
	e.t.Helper()
	out, err := e.etcdctlCmd("get", "--prefix", "--keys-only", prefix).CombinedOutput()
	if err != nil {
		e.t.Fatalf("etcdctl: %v\n%s", err, out)
	}
	var keys []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keys = append(keys, l)
		}
	}
	return keys
}

// etcdctlCmd is etcdctl against the plugin's datastore: ETCD_ENDPOINTS when the test gave one, else the
// embedded etcd with the client certificate the daemon generated for it.
func (e *env) etcdctlCmd(args ...string) *exec.Cmd {
	e.t.Helper()
	for _, kv := range e.plugin.Env() {
		if v, ok := strings.CutPrefix(kv, "ETCD_ENDPOINTS="); ok && v != "" {
			return exec.Command("etcdctl", append([]string{"--endpoints", v}, args...)...)
		}
	}
	cfg, err := datastore.EmbeddedClientConfig(e.plugin.DataDir())
	if err != nil {
		e.t.Fatalf("finding the embedded etcd: %v", err)
	}
	flags := []string{"--endpoints", cfg.Endpoints[0], "--cacert", cfg.CACertFile, "--cert", cfg.CertFile, "--key", cfg.Key}
	return exec.Command("etcdctl", append(flags, args...)...)
}
