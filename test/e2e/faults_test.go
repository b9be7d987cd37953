package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

const (
	// etcdOutage is how long etcd stays down in TestEtcdOutage.
	etcdOutage = 30 * time.Second
	// driverCallBound is how long a driver call may take to fail while etcd is down: the driver gives each
	// call 5 s, whatever number of etcd requests it makes, plus scheduling slack.
	driverCallBound = 6 * time.Second
	// dockerRunBound is how long `docker run` may take to fail while etcd is down: one failing driver call
	// (RequestAddress) and Docker's own work around it.
	dockerRunBound = 10 * time.Second
	// dockerRmBound is how long `docker rm -f` may take while etcd is down: two failing driver calls
	// (DeleteEndpoint, ReleaseAddress) and Docker's own work around them.
	dockerRmBound = 15 * time.Second
)

// etcd goes away for 30 s under a running plugin while containers come and go: driver calls fail within
// their 5 s with an error naming etcd, so Docker never hangs (runs fail, removals succeed); running
// containers keep their connectivity; and once etcd is back containers start again without anyone's help.
// Containers removed meanwhile (Docker gives up on the failing DeleteEndpoint and ReleaseAddress) leave
// their endpoints and addresses only until the leak collectors find them.
func TestEtcdOutage(t *testing.T) {
	harness.RequireRoot(t) // start checks these too, but only after etcd would have started for nothing
	harness.RequireDocker(t)
	etcd := harness.StartEtcd(t)
	e := start(t, map[string]string{"ETCD_ENDPOINTS": etcd.Endpoint(), "CALICO_IPAM_GC_GRACE": "2s"})
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	doomed := []string{e.run("doomed0", "--net", net), e.run("doomed1", "--net", net)}
	ping := e.watchPing(a, e.containerIP(b, net, false))

	etcd.Stop()
	down := time.Now()
	began := time.Now()
	status, body, err := e.plugin.Call(ipamSock, "IpamDriver.RequestAddress", []byte(`{"PoolID":"CalicoPoolIPv4"}`))
	took := time.Since(began)
	t.Logf("RequestAddress with etcd down answered after %v: HTTP %d %s", took.Round(time.Millisecond), status, body)
	if err != nil || status == 200 || !strings.Contains(string(body), "etcd") {
		t.Errorf("RequestAddress with etcd down: want an error naming etcd, got HTTP %d %s (%v)", status, body, err)
	}
	if took > driverCallBound {
		t.Errorf("RequestAddress with etcd down took %v to fail, more than %v", took, driverCallBound)
	}
	for i := 0; time.Since(down) < etcdOutage; i++ {
		name := e.name(fmt.Sprintf("down%d", i))
		began := time.Now()
		_, err := harness.DockerErr("run", "-d", "--name", name, "--net", net, harness.TestImage, "sleep", "3600")
		took := time.Since(began)
		t.Logf("docker run with etcd down failed after %v: %v", took.Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), "etcd") {
			t.Errorf("docker run with etcd down: want an error naming etcd, got %v", err)
		}
		if took > dockerRunBound {
			t.Errorf("docker run with etcd down took %v to fail, more than %v", took, dockerRunBound)
		}
		e.docker("rm", "-f", name) // created, never started: no driver call
		if i < len(doomed) {
			began = time.Now()
			e.docker("rm", "-f", doomed[i])
			took = time.Since(began)
			t.Logf("docker rm -f with etcd down took %v", took.Round(time.Millisecond))
			if took > dockerRmBound {
				t.Errorf("docker rm -f with etcd down took %v, more than %v", took, dockerRmBound)
			}
		}
	}

	etcd.Start()
	t.Logf("etcd back after %v", time.Since(down).Round(100*time.Millisecond))
	ping.check(t, maxLostPings)
	began = time.Now()
	c := e.run("c", "--net", net)
	t.Logf("first docker run after etcd came back took %v", time.Since(began).Round(time.Millisecond))
	e.mustPing(c, e.containerIP(a, net, false))
	began = time.Now()
	e.eventuallyOnlyRunning(net, 30*time.Second, a, b, c)
	t.Logf("removed containers' endpoints and addresses collected %v after the first run", time.Since(began).Round(100*time.Millisecond))
}

// `docker network rm` succeeds when the plugin's record of the network, or the network's profile, was
// deleted behind its back, and leaves neither behind.
func TestNetworkRemoveWithStaleState(t *testing.T) {
	e := start(t, nil)
	for _, tc := range []struct {
		name    string
		restart bool // so that the plugin cannot fall back on what it remembers
		key     func(id, name string) string
	}{
		{"record", true, func(id, _ string) string { return "/calico/libnetwork/v1/networks/" + id }},
		{"profile", false, func(_, name string) string { return "/calico/resources/v3/projectcalico.org/profiles/" + name }},
	} {
		net := e.network(tc.name)
		e.docker("run", "--rm", "--net", net, harness.TestImage, "true")
		key := tc.key(e.docker("network", "inspect", "-f", "{{.Id}}", net), net)
		if out, err := e.etcdctlCmd("del", key).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Fatalf("deleting %s: %v %s", key, err, out)
		}
		if tc.restart {
			e.plugin.Restart()
		}
		e.docker("network", "rm", net)
		if keys := e.etcdKeys(key); len(keys) != 0 {
			t.Errorf("stale %s: %v left after docker network rm", tc.name, keys)
		}
		if keys := e.etcdKeys("/calico/libnetwork/"); len(keys) != 0 {
			t.Errorf("stale %s: network records left: %v", tc.name, keys)
		}
		e.assertNoLeaks(0, 0)
	}
}

// A plugin killed between RequestAddress and CreateEndpoint leaks the address until the leak collector,
// after CALICO_IPAM_GC_GRACE, releases it.
func TestCrashBetweenCalls(t *testing.T) {
	e := start(t, map[string]string{"CALICO_IPAM_GC_GRACE": "2s"})
	w := wire{t: t, p: e.plugin}
	var addr libnetwork.RequestAddressResponse
	w.ok(ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": "", "Options": nil}, &addr)
	e.plugin.Kill()
	e.plugin.Restart()
	began := time.Now()
	linktest.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
		if out := e.calicoctl("ipam", "show", "--ip", netip.MustParsePrefix(addr.Address).Addr().String()); !strings.Contains(out, "not assigned") {
			return fmt.Errorf("leaked address still allocated:\n%s", out)
		}
		return nil
	})
	t.Logf("leaked %s released %v after the restart", addr.Address, time.Since(began).Round(100*time.Millisecond))
	e.assertNoLeaks(0, 0)
}

// A full pool: docker run fails with an error saying so, and leaves no endpoint, interface or address.
func TestPoolExhausted(t *testing.T) {
	e := start(t, map[string]string{"NO_DEFAULT_POOLS": "true"})
	e.applyYAML(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: e2e-tiny}
spec: {cidr: 10.203.0.0/26, blockSize: 26}
`)
	net := e.network("tiny", "--subnet", "10.203.0.0/26")
	// Take all but two of the 64 addresses as Docker would for other containers, then run containers.
	w := wire{t: t, p: e.plugin}
	var taken []string
	for range 62 {
		var addr libnetwork.RequestAddressResponse
		w.ok(ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": "e2e-tiny", "Address": "", "Options": nil}, &addr)
		taken = append(taken, netip.MustParsePrefix(addr.Address).Addr().String())
	}
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)

	links := hostLinks(t)
	_, err := harness.DockerErr("run", "-d", "--name", e.name("c"), "--net", net, harness.TestImage, "sleep", "3600")
	if err == nil || !strings.Contains(err.Error(), "e2e-tiny") || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("docker run on a full pool: want an error saying the pool is exhausted, got %v", err)
	}
	if after := hostLinks(t); fmt.Sprint(after) != fmt.Sprint(links) {
		t.Errorf("the failed docker run changed the host's interfaces:\nbefore %v\nafter  %v", links, after)
	}
	for _, ip := range taken {
		w.ok(ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "e2e-tiny", "Address": ip}, nil)
	}
	e.assertNoLeaks(2, 2)
	e.mustPing(a, e.containerIP(b, net, false))
}

// hostLinks lists the names of the host's interfaces.
func hostLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	sort.Strings(names)
	return names
}

// Container labels that cannot be Calico labels (a huge value, a key with a "!") are left out, with a
// warning, and do not stop the valid ones from reaching the endpoint.
func TestInvalidContainerLabels(t *testing.T) {
	e := start(t, map[string]string{"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true"})
	net := e.network("net")
	e.run("a", "--net", net, "--label", "org.projectcalico.label.role=db",
		"--label", "org.projectcalico.label.huge="+strings.Repeat("v", 64<<10),
		"--label", "org.projectcalico.label.bad!key=x")
	linktest.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		for _, w := range e.endpoints() {
			if labels, _ := w["metadata"].(map[string]any)["labels"].(map[string]any); labels["role"] == "db" {
				if labels["huge"] != nil || labels["bad!key"] != nil {
					return fmt.Errorf("invalid labels copied: %v", labels)
				}
				return nil
			}
		}
		return fmt.Errorf("endpoint labels not copied yet")
	})
	if logs := e.plugin.Logs(); strings.Count(logs, "not a valid Calico label") != 2 {
		t.Errorf("want a warning for each of the 2 invalid labels:\n%s", logs)
	}
}

// A second daemon on the host (say the managed plugin installed while the systemd unit still runs) would
// fight the first over the firewall and routes: it refuses to start, naming the first, and the first goes
// on serving containers.
func TestSecondDaemonRefused(t *testing.T) {
	e := start(t, nil)
	if out := mustRefuseSecondDaemon(t, e.plugin.Env()); !strings.Contains(out, bins.Plugin) {
		t.Errorf("the refusal does not name the first daemon (%s):\n%s", bins.Plugin, out)
	}
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	e.mustPing(a, e.containerIP(b, net, false))
}

// mustRefuseSecondDaemon runs another daemon, with env and sockets and a datastore of its own, while one
// programs the host's dataplane; it must exit at once saying so. It returns the daemon's output.
func mustRefuseSecondDaemon(t *testing.T, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, bins.Plugin)
	second.Env = append(env, "CALICO_LIBNETWORK_PLUGIN_DIR="+t.TempDir(), "CALICO_DATA_DIR="+t.TempDir())
	out, err := second.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second daemon was still running after 30 s:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "already programs this host's dataplane") {
		t.Fatalf("second daemon: %v, want a refusal:\n%s", err, out)
	}
	return string(out)
}
