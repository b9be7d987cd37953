package e2e

// Where Docker engines legitimately differ, as seen by a network plugin. scripts/test-e2e.sh runs this
// package on Debian's Docker 20.10 and on the current engine (Docker 29 line); harness.Engine says which
// one answered. Behaviour that is the same on both is tested elsewhere, without version checks.

import (
	"regexp"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// twoColourPools creates pools and networks "red" (10.221.0.0/16) and "blue" (10.222.0.0/16).
func (e *env) twoColourPools() (red, blue string) {
	e.t.Helper()
	return e.poolNetwork("e2e-eng-red", "red", "10.221.0.0/16"), e.poolNetwork("e2e-eng-blue", "blue", "10.222.0.0/16")
}

// ifaceWith returns the name of the container interface that carries ip.
func (e *env) ifaceWith(container, ip string) string {
	e.t.Helper()
	out, err := e.exec(container, "ip", "-o", "addr")
	if err != nil {
		e.t.Fatalf("ip addr in %s: %v", container, err)
	}
	for _, line := range strings.Split(out, "\n") {
		// "3: cali0    inet 10.221.20.128/32 scope global cali0..."
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], ip+"/") {
			return f[1]
		}
	}
	e.t.Fatalf("no interface in %s carries %s:\n%s", container, ip, out)
	return ""
}

// defaultRoute returns the container's IPv4 "default via GW dev IF" line.
func (e *env) defaultRoute(container string) string {
	e.t.Helper()
	out, _ := e.exec(container, "ip", "-4", "route", "show", "default")
	return strings.TrimSpace(out)
}

// TestEngineReport records which engine and client the suite runs against (read it with go test -v).
func TestEngineReport(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireDocker(t)
	eng := harness.Engine(t)
	t.Logf("engine under test: %v, firewall backend %s; Docker 28+: %v, per-endpoint MAC: %v",
		eng, harness.FirewallBackend(t), eng.Docker28(), eng.PerEndpointMAC())
}

// Default gateway with two Calico networks: with equal priority every engine gives it to the network whose
// name sorts first (here blue, although red came first); Docker 28 adds gw-priority, which overrides the
// order. Either way the plugin's per-interface gateways make the chosen one work and the other network's
// peers stay reachable through its own interface.
func TestEngineDefaultGateway(t *testing.T) {
	e := start(t, nil)
	eng := harness.Engine(t)
	red, blue := e.twoColourPools()
	redPeer, bluePeer := e.run("redpeer", "--net", red), e.run("bluepeer", "--net", blue)
	redIP, blueIP := e.containerIP(redPeer, red, false), e.containerIP(bluePeer, blue, false)

	c := e.run("c", "--net", red)
	e.docker("network", "connect", blue, c)
	blueIf := e.ifaceWith(c, e.containerIP(c, blue, false))
	if got := e.defaultRoute(c); !regexp.MustCompile(`^default via 169\.254\.1\.\d+ dev ` + blueIf + `\b`).MatchString(got) {
		t.Errorf("default route %q, want it through %s (network %s sorts first)", got, blueIf, blue)
	}
	e.mustPing(c, redIP)
	e.mustPing(c, blueIP)

	if !eng.Docker28() {
		t.Logf("gw-priority: needs Docker 28 (API 1.48), engine is %s; order by name checked only", eng.ServerVersion)
		return
	}
	p := e.run("prio", "--net", blue)
	e.docker("network", "connect", "--gw-priority", "10", red, p)
	redIf := e.ifaceWith(p, e.containerIP(p, red, false))
	if got := e.defaultRoute(p); !regexp.MustCompile(`^default via 169\.254\.1\.\d+ dev ` + redIf + `\b`).MatchString(got) {
		t.Errorf("default route %q, want it through %s (gw-priority 10)", got, redIf)
	}
	e.mustPing(p, redIP)
	e.mustPing(p, blueIP)
}

// --ip on a network created without --subnet: Docker 20.10 to 28 refuse it themselves; Docker 29 passes it
// to calico-ipam (the network's pool is the 0.0.0.0/0 placeholder), which assigns it when an enabled pool
// holds it and refuses it, naming the address, when none does.
func TestEngineStaticIPWithoutSubnet(t *testing.T) {
	e := start(t, nil)
	eng := harness.Engine(t)
	net := e.network("net")
	_, err := harness.DockerErr("run", "-d", "--name", e.name("inpool"), "--net", net, "--ip", "192.168.77.7", harness.TestImage, "sleep", "3600")
	if !eng.Docker29() {
		// 20.10: "...only when connecting to networks with user configured subnets"; 25 to 28: "no
		// configured subnet or ip-range contain the IP address".
		if err == nil || !strings.Contains(err.Error(), "configured subnet") {
			t.Fatalf("Docker %s: --ip without --subnet: %v, want Docker's refusal", eng.ServerVersion, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Docker 29: --ip 192.168.77.7 in the default pool: %v", err)
	}
	if ip := e.containerIP(e.name("inpool"), net, false); ip != "192.168.77.7" {
		t.Errorf("--ip ignored: %s", ip)
	}
	peer := e.run("peer", "--net", net)
	e.mustPing(peer, "192.168.77.7")

	_, err = harness.DockerErr("run", "-d", "--name", e.name("nopool"), "--net", net, "--ip", "10.99.0.7", harness.TestImage, "sleep", "3600")
	if err == nil || !strings.Contains(err.Error(), "10.99.0.7 is not in any enabled IP pool") {
		t.Errorf("--ip outside every pool: %v, want calico-ipam's refusal", err)
	}
}

// --mac-address: Docker 25 (API 1.44) takes a MAC per endpoint, so each network of a container can have its
// own; before, only the container's first network gets one (and a 28.x client refuses the flag on a user
// network below API 1.44). The plugin creates each veth with the MAC Docker asks for.
func TestEngineMACPerEndpoint(t *testing.T) {
	e := start(t, nil)
	eng := harness.Engine(t)
	red, blue := e.twoColourPools()
	const macRed, macBlue = "02:42:0a:dd:00:01", "02:42:0a:dd:00:02"
	var c string
	if eng.PerEndpointMAC() {
		c = e.run("c", "--network", "name="+red+",mac-address="+macRed, "--network", "name="+blue+",mac-address="+macBlue)
	} else {
		c = e.run("c", "--net", red, "--mac-address", macRed)
		e.docker("network", "connect", blue, c)
	}
	want := map[string]string{red: macRed}
	if eng.PerEndpointMAC() {
		want[blue] = macBlue
	}
	for net, mac := range want {
		ifname := e.ifaceWith(c, e.containerIP(c, net, false))
		if got, _ := e.exec(c, "cat", "/sys/class/net/"+ifname+"/address"); got != mac {
			t.Errorf("network %s (%s): MAC %s, want %s", net, ifname, got, mac)
		}
	}
	macs := map[string]bool{}
	for _, w := range e.endpoints() {
		macs[w["spec"].(map[string]any)["mac"].(string)] = true
	}
	for _, mac := range want {
		if !macs[mac] {
			t.Errorf("no workload endpoint records MAC %s (have %v)", mac, macs)
		}
	}
}

// IPv6-only networks (docker network create --ipv4=false --ipv6) exist from Docker 28: Docker then asks
// calico-ipam for no IPv4 pool and sends enable_ipv4=false. The container gets only an IPv6 address and an
// IPv6 default route through the host veth, and reaches its peer.
func TestEngineIPv6Only(t *testing.T) {
	e := start(t, map[string]string{"CALICO_IPV6POOL_CIDR": "fd80:24e2:f998:72d7::/64"})
	eng := harness.Engine(t)
	if !eng.Docker28() {
		t.Skipf("IPv6-only networks need Docker 28 (API 1.48); engine is %s (API %s)", eng.ServerVersion, eng.ServerAPI)
	}
	net := e.network("v6only", "--ipv4=false", "--ipv6")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	if ip4 := e.containerIP(a, net, false); ip4 != "" {
		t.Errorf("IPv4 address %s on an IPv6-only network", ip4)
	}
	if out, _ := e.exec(a, "ip", "-4", "addr", "show", "dev", "cali0"); strings.Contains(out, "inet ") {
		t.Errorf("cali0 has an IPv4 address:\n%s", out)
	}
	ip6 := e.containerIP(b, net, true)
	if !strings.HasPrefix(ip6, "fd80:24e2:f998:72d7:") {
		t.Fatalf("IPv6 address %q not from the pool", ip6)
	}
	if routes, _ := e.exec(a, "ip", "-6", "route"); !regexp.MustCompile(`default via fe80::\S+ dev cali0`).MatchString(routes) {
		t.Errorf("IPv6 routes:\n%s", routes)
	}
	e.mustPing(a, ip6)
}

// Disconnecting one Calico network from a running container must leave Docker's view of the container
// consistent: `docker stats` still reports its traffic, and Docker 28+ (which names an interface with the
// lowest free number per prefix; 20.10 counts up) can give a later network the freed name.
//
// The plugin keeps the veth until DeleteEndpoint for this: were it gone at Leave, Docker would keep a stale
// interface, `docker stats` would show 0B and the freed name would never be reused.
func TestEngineDisconnectKeepsDockerConsistent(t *testing.T) {
	e := start(t, nil)
	eng := harness.Engine(t)
	red, blue := e.twoColourPools()
	third := e.network("third")
	c := e.run("c", "--net", red)
	e.docker("network", "connect", blue, c)
	blueIf := e.ifaceWith(c, e.containerIP(c, blue, false))
	e.docker("network", "disconnect", blue, c)

	peer := e.run("peer", "--net", red)
	e.mustPing(c, e.containerIP(peer, red, false))
	if out := e.docker("stats", "--no-stream", "--format", "{{.NetIO}}", c); strings.HasPrefix(out, "0B /") {
		t.Errorf("docker stats after disconnect: NetIO %q: Docker lost the remaining interface's counters", out)
	}

	e.docker("network", "connect", third, c)
	got := e.ifaceWith(c, e.containerIP(c, third, false))
	want := "cali2" // 20.10 never reuses a number
	if eng.Docker28() {
		want = blueIf // the lowest free number: the one blue left
	}
	if got != want {
		t.Errorf("Docker %s named the next interface %s, want %s", eng.ServerVersion, got, want)
	}
}
