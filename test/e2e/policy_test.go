package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// servePort is where policy-test containers answer TCP with "ok".
const servePort = "8080"

// policyConverge bounds how long the agent may take to apply a change (it takes milliseconds).
const policyConverge = 10 * time.Second

// runServer starts a long-running container that answers TCP on servePort, again after a restart.
func (e *env) runServer(suffix string, flags ...string) string {
	e.t.Helper()
	name := e.name(suffix)
	args := append([]string{"run", "-d", "--name", name}, flags...)
	e.docker(append(args, harness.TestImage, "sh", "-c", "nc -ll -p "+servePort+" -e echo ok & exec sleep 3600")...)
	return name
}

// tcp connects from a container to ip:servePort and returns what the server said.
func (e *env) tcp(from, ip string) (string, error) {
	return e.exec(from, "nc", "-w", "1", ip, servePort)
}

// eventually retries a check until the agent has had time to apply a change.
func (e *env) eventually(check func() error) {
	e.t.Helper()
	linktest.Eventually(e.t, policyConverge, 200*time.Millisecond, check)
}

// expectTCP waits until TCP from a container to an address works (want) or is blocked (!want).
func (e *env) expectTCP(from, ip string, want bool) {
	e.t.Helper()
	e.eventually(func() error {
		out, err := e.tcp(from, ip)
		if got := err == nil && out == "ok"; got != want {
			return fmt.Errorf("TCP %s -> %s:%s got through: %v, want %v (%q, %v)", from, ip, servePort, got, want, out, err)
		}
		return nil
	})
}

// expectPing waits until ping from a container to an address works (want) or is blocked (!want).
func (e *env) expectPing(from, ip string, want bool) {
	e.t.Helper()
	e.eventually(func() error {
		_, err := e.exec(from, "ping", "-c", "1", "-W", "1", ip)
		if got := err == nil; got != want {
			return fmt.Errorf("ping %s -> %s got through: %v, want %v", from, ip, got, want)
		}
		return nil
	})
}

// etcdctl runs etcdctl against the plugin's datastore.
func (e *env) etcdctl(args ...string) {
	e.t.Helper()
	out, err := e.etcdctlCmd(args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// twoPools creates one pool per network, so a container on both networks routes each through its own
// interface.
func (e *env) twoPools() (netA, netB string) {
	e.t.Helper()
	return e.poolNetwork("e2e-pol-a", "a", "10.211.0.0/16"), e.poolNetwork("e2e-pol-b", "b", "10.212.0.0/16")
}

// Two Calico networks are isolated in both directions by their profiles; a container on both reaches
// each through the network they share, and is reached on each address by that network only.
func TestNetworkIsolation(t *testing.T) {
	e := start(t, nil)
	netA, netB := e.twoPools()
	a1, a2 := e.runServer("a1", "--net", netA), e.runServer("a2", "--net", netA)
	b1 := e.runServer("b1", "--net", netB)
	ab := e.runServer("ab", "--net", netA)
	e.docker("network", "connect", netB, ab)
	ip := func(c, n string) string { return e.containerIP(c, n, false) }

	// Join programs a container's policy before it starts, so no waiting here.
	e.mustPing(a1, ip(a2, netA))
	e.expectTCP(a1, ip(a2, netA), true)
	e.mustPing(ab, ip(a1, netA))
	e.mustPing(ab, ip(b1, netB))
	e.mustPing(a1, ip(ab, netA))
	e.mustPing(b1, ip(ab, netB))

	e.mustNotPing(a1, ip(b1, netB))
	e.expectTCP(a1, ip(b1, netB), false)
	e.mustNotPing(b1, ip(a1, netA))
	e.expectTCP(b1, ip(a2, netA), false)
	// ab's address on netB belongs to netB's profile, which a1 is not on.
	e.mustNotPing(a1, ip(ab, netB))
}

// Policy written as Calico YAML through calicoctl and as Calico JSON straight into etcd, over endpoints
// labelled from container labels.
func TestPolicyFromCalicoctlAndEtcd(t *testing.T) {
	e := start(t, map[string]string{"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true"})
	net := e.network("pol")
	db := e.runServer("db", "--net", net, "--label", "org.projectcalico.label.role=db")
	web := e.runServer("web", "--net", net, "--label", "org.projectcalico.label.role=web")
	other := e.runServer("other", "--net", net)
	dbIP, webIP := e.containerIP(db, net, false), e.containerIP(web, net, false)
	e.eventually(func() error {
		out := e.calicoctl("get", "workloadendpoints", "-n", "libnetwork", "-o", "yaml")
		if strings.Count(out, "role: ") < 2 {
			return fmt.Errorf("container labels not on the endpoints yet:\n%s", out)
		}
		return nil
	})
	e.expectTCP(other, dbIP, true)
	e.expectPing(web, dbIP, true)

	// Only web may reach db, and only on TCP 8080; db itself is not restricted.
	e.applyYAML(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: db-ingress}
spec:
  order: 100
  selector: role == 'db'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'web'}
    destination: {ports: [8080]}
`)
	e.expectTCP(web, dbIP, true)
	e.expectTCP(other, dbIP, false)
	e.expectPing(web, dbIP, false)
	e.expectPing(db, webIP, true)

	// An earlier policy stored directly in etcd, as Calico JSON without the defaulted fields.
	key := "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/deny-web"
	e.etcdctl("put", key, `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3",`+
		`"metadata":{"name":"deny-web"},"spec":{"order":10,"selector":"role == \"db\"",`+
		`"ingress":[{"action":"Deny","protocol":"TCP","source":{"selector":"role == \"web\""}}]}}`)
	e.expectTCP(web, dbIP, false)
	e.etcdctl("del", key)
	e.expectTCP(web, dbIP, true)

	e.calicoctl("delete", "globalnetworkpolicy", "db-ingress")
	e.expectTCP(other, dbIP, true)
	e.expectPing(web, dbIP, true)
}

// natOutgoing: a pool's traffic to a network with no route back to the pools arrives from the host's
// address, and stops arriving without natOutgoing.
func TestNATOutgoingToOutside(t *testing.T) {
	e := start(t, nil)
	const hostIP, outsideIP = "203.0.113.129", "203.0.113.130"
	outside := linktest.NewNS(t, "out")
	hostEnd := "e2eout" + e.prefix[len(e.prefix)-6:]
	for _, args := range [][]string{
		{"ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "out0", "netns", outside},
		{"ip", "addr", "add", hostIP + "/30", "dev", hostEnd},
		{"ip", "link", "set", hostEnd, "up"},
		{"ip", "netns", "exec", outside, "ip", "addr", "add", outsideIP + "/30", "dev", "out0"},
		{"ip", "netns", "exec", outside, "ip", "link", "set", "out0", "up"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	linktest.Serve(t, outside, 8080)
	pool := `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: e2e-nat}
spec: {cidr: 10.213.0.0/16, natOutgoing: %v}
`
	e.applyYAML(fmt.Sprintf(pool, true))
	c := e.run("c", "--net", e.network("nat", "--subnet", "10.213.0.0/16"))
	e.eventually(func() error {
		seen, err := e.exec(c, "nc", "-w", "1", outsideIP, "8080")
		if err != nil || net.ParseIP(seen).String() != hostIP {
			return fmt.Errorf("outside saw %q (%v), want the host's %s", seen, err, hostIP)
		}
		return nil
	})
	e.applyYAML(fmt.Sprintf(pool, false))
	e.eventually(func() error {
		if seen, err := e.exec(c, "nc", "-w", "1", outsideIP, "8080"); err == nil && seen != "" {
			return fmt.Errorf("outside still answers without natOutgoing (saw %q)", seen)
		}
		return nil
	})
}

// Restarting dockerd rewrites its iptables chains and restarts the containers: isolation and policy
// hold, and allowed traffic flows again.
func TestPolicyAcrossDockerdRestart(t *testing.T) {
	e := start(t, nil)
	netA, netB := e.twoPools()
	// sleep as PID 1 ignores SIGTERM: without a short stop timeout dockerd waits 10 s for each to stop.
	restart := []string{"--restart", "always", "--stop-timeout", "1"}
	a1 := e.runServer("a1", append([]string{"--net", netA}, restart...)...)
	a2 := e.runServer("a2", append([]string{"--net", netA}, restart...)...)
	b1 := e.runServer("b1", append([]string{"--net", netB}, restart...)...)
	e.applyYAML(fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: a-no-ping}
spec:
  order: 1
  selector: has(%s)
  types: [Ingress]
  ingress:
  - {action: Deny, protocol: ICMP}
  - {action: Pass}
`, netA))
	check := func() {
		ipA2, ipB1 := e.containerIP(a2, netA, false), e.containerIP(b1, netB, false)
		e.expectTCP(a1, ipA2, true)
		e.expectPing(a1, ipA2, false)
		e.expectTCP(a1, ipB1, false)
		e.expectTCP(b1, ipA2, false)
	}
	check()
	began := time.Now()
	harness.RestartDockerd(t)
	t.Logf("dockerd restarted in %v", time.Since(began))
	linktest.Eventually(t, 60*time.Second, time.Second, func() error {
		for c, n := range map[string]string{a1: netA, a2: netA, b1: netB} {
			if ip, err := harness.DockerErr("inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, n), c); err != nil || ip == "" {
				return fmt.Errorf("%s not back on %s after the dockerd restart: %q %v", c, n, ip, err)
			}
		}
		return nil
	})
	check()
}
