package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// These tests play Docker's part over the plugin sockets, with a real plugin daemon, datastore and kernel.

const (
	netSock  = harness.NetworkSocket
	ipamSock = harness.IpamSocket
)

// obj is a JSON object of a request, written out as Docker sends it.
type obj = map[string]any

// wire sends plugin calls to one plugin.
type wire struct {
	t *testing.T
	p *harness.Plugin
}

// call sends req (marshalled, unless it is already []byte; nil sends no body) and returns the answer.
func (w wire) call(sock harness.Socket, method string, req any) (int, []byte) {
	w.t.Helper()
	var body []byte
	switch r := req.(type) {
	case nil:
	case []byte:
		body = r
	default:
		var err error
		if body, err = json.Marshal(r); err != nil {
			w.t.Fatalf("encoding %s: %v", method, err)
		}
	}
	status, out, err := w.p.Call(sock, method, body)
	if err != nil {
		w.t.Fatal(err)
	}
	return status, out
}

// ok expects 200 and decodes the answer into out (unless nil).
func (w wire) ok(sock harness.Socket, method string, req, out any) {
	w.t.Helper()
	status, body := w.call(sock, method, req)
	if status != 200 {
		w.t.Fatalf("%s: HTTP %d: %s", method, status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			w.t.Fatalf("%s: decoding %s: %v", method, body, err)
		}
	}
}

// refused expects an error answer with that status whose Err contains want; the Err must stay short (it
// may quote the request) and the plugin must go on serving.
func (w wire) refused(sock harness.Socket, method string, req any, status int, want string) {
	w.t.Helper()
	got, body := w.call(sock, method, req)
	var answer struct{ Err string }
	if err := json.Unmarshal(body, &answer); err != nil {
		w.t.Errorf("%s: answer is not {\"Err\": ...}: %.200s", method, body)
	}
	if got != status || !strings.Contains(answer.Err, want) {
		w.t.Errorf("%s: got HTTP %d %q, want HTTP %d with an Err containing %q", method, got, clipped(answer.Err), status, want)
	}
	if len(answer.Err) > 1024 {
		w.t.Errorf("%s: Err is %d bytes long: %q", method, len(answer.Err), clipped(answer.Err))
	}
	w.serving()
}

// serving checks that both sockets still answer a normal request.
func (w wire) serving() {
	w.t.Helper()
	var caps libnetwork.CapabilitiesResponse
	w.ok(netSock, "NetworkDriver.GetCapabilities", nil, &caps)
	w.ok(ipamSock, "IpamDriver.GetCapabilities", nil, nil)
	if caps.Scope != "local" {
		w.t.Errorf("capabilities after a bad request: %+v", caps)
	}
}

func clipped(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// dockerID returns a fresh ID in Docker's format.
func dockerID(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// netns is a network namespace standing in for a container's sandbox.
type netns struct {
	t          *testing.T
	name, path string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	n := &netns{t: t, name: harness.UniqueName(t, "e2ens")}
	n.path = "/run/netns/" + n.name
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.name).Run() })
	return n
}

// ip runs `ip ARGS` inside the namespace and fails the test on error.
func (n *netns) ip(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ip -n %s %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// attach does with a Join answer what Docker does: move the link into the sandbox under DstPrefix+"0", give
// it the endpoint's MAC and addresses, bring it up, then install the static routes and the gateways.
func (n *netns) attach(j *libnetwork.JoinResponse, mac string, addrs ...string) string {
	n.t.Helper()
	ifname := j.InterfaceName.DstPrefix + "0"
	if out, err := exec.Command("ip", "link", "set", j.InterfaceName.SrcName, "netns", n.name).CombinedOutput(); err != nil {
		n.t.Fatalf("moving %s into the sandbox: %v\n%s", j.InterfaceName.SrcName, err, out)
	}
	n.ip("link", "set", j.InterfaceName.SrcName, "name", ifname)
	n.ip("link", "set", ifname, "address", mac)
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			n.ip("addr", "add", a, "dev", ifname, "nodad")
		} else {
			n.ip("addr", "add", a, "dev", ifname)
		}
	}
	n.ip("link", "set", ifname, "up")
	for _, r := range j.StaticRoutes {
		if r.RouteType == libnetwork.RouteConnected {
			n.ip("route", "add", r.Destination, "dev", ifname, "scope", "link")
		} else {
			n.ip("route", "add", r.Destination, "via", r.NextHop, "dev", ifname)
		}
	}
	if j.Gateway != "" {
		n.ip("-4", "route", "add", "default", "via", j.Gateway, "dev", ifname)
	}
	if j.GatewayIPv6 != "" {
		n.ip("-6", "route", "add", "default", "via", j.GatewayIPv6, "dev", ifname)
	}
	return ifname
}

// hostLinkExists reports whether the host namespace has a link of that name.
func hostLinkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// The calls of `docker network create --ipv6`, `docker run`, `docker stop` and `docker network rm`, in
// Docker's order and shapes, with the interface moved into a namespace and routed as the Join answer says.
func TestProtocolDockerSequence(t *testing.T) {
	fake := startFakeDocker(t)
	e := start(t, map[string]string{"DOCKER_HOST": fake.host, "CALICO_IPV6POOL_CIDR": "fd80:24e2:f998:72d7::/64"})
	w := wire{t: t, p: e.plugin}

	// Activation, on first use of each plugin.
	for sock, want := range map[harness.Socket]string{netSock: "NetworkDriver", ipamSock: "IpamDriver"} {
		var act struct{ Implements []string }
		w.ok(sock, "Plugin.Activate", nil, &act)
		if len(act.Implements) != 1 || act.Implements[0] != want {
			t.Errorf("%s activation: %v", sock, act.Implements)
		}
	}
	var spaces libnetwork.AddressSpacesResponse
	w.ok(ipamSock, "IpamDriver.GetDefaultAddressSpaces", nil, &spaces)

	// docker network create -d calico --ipam-driver calico-ipam --ipv6 NAME
	pools := map[bool]*libnetwork.RequestPoolResponse{}
	ipamData := map[bool][]obj{}
	for _, v6 := range []bool{false, true} {
		pools[v6] = &libnetwork.RequestPoolResponse{}
		w.ok(ipamSock, "IpamDriver.RequestPool", obj{"AddressSpace": spaces.LocalDefaultAddressSpace, "Pool": "",
			"SubPool": "", "Options": obj{}, "V6": v6}, pools[v6])
		ipamData[v6] = []obj{{"AddressSpace": spaces.LocalDefaultAddressSpace, "Pool": pools[v6].Pool,
			"Gateway": pools[v6].Data["com.docker.network.gateway"]}}
	}
	networkID, name := dockerID(t), e.name("wire")
	fake.addNetwork(networkID, name)
	w.ok(netSock, "NetworkDriver.CreateNetwork", obj{"NetworkID": networkID,
		"Options":  obj{"com.docker.network.enable_ipv6": true, "com.docker.network.generic": obj{}},
		"IPv4Data": ipamData[false], "IPv6Data": ipamData[true]}, nil)

	// docker run: addresses, endpoint, join.
	addrs := map[bool]*libnetwork.RequestAddressResponse{}
	for _, v6 := range []bool{false, true} {
		addrs[v6] = &libnetwork.RequestAddressResponse{}
		w.ok(ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": pools[v6].PoolID, "Address": "", "Options": nil}, addrs[v6])
	}
	endpointID := dockerID(t)
	portOptions := obj{"com.docker.network.endpoint.exposedports": []any{}, "com.docker.network.portmap": []any{}}
	var created libnetwork.CreateEndpointResponse
	w.ok(netSock, "NetworkDriver.CreateEndpoint", obj{"NetworkID": networkID, "EndpointID": endpointID,
		"Interface": obj{"Address": addrs[false].Address, "AddressIPv6": addrs[true].Address, "MacAddress": ""},
		"Options":   portOptions}, &created)
	if created.Interface == nil || created.Interface.MacAddress == "" || created.Interface.Address != "" {
		t.Fatalf("CreateEndpoint must add only a MAC to what Docker sent: %+v", created.Interface)
	}
	sandbox := newNetns(t)
	var joined libnetwork.JoinResponse
	w.ok(netSock, "NetworkDriver.Join", obj{"NetworkID": networkID, "EndpointID": endpointID,
		"SandboxKey": sandbox.path, "Options": portOptions}, &joined)
	hostSide := "cali" + endpointID[:11]
	if joined.InterfaceName.SrcName != "tmp"+endpointID[:11] || joined.InterfaceName.DstPrefix != "cali" ||
		joined.Gateway != "169.254.1.1" || !strings.HasPrefix(joined.GatewayIPv6, "fe80::") {
		t.Errorf("Join answer: %+v", joined)
	}
	// The gateways on link; a network drawing on every pool routes no pool of its own.
	wantRoutes := fmt.Sprintf("[{169.254.1.1/32 1 } {%s/128 1 }]", joined.GatewayIPv6)
	if got := fmt.Sprint(joined.StaticRoutes); got != wantRoutes {
		t.Errorf("Join static routes %s, want %s", got, wantRoutes)
	}
	if !hostLinkExists(hostSide) {
		t.Fatalf("no host interface %s after Join", hostSide)
	}
	ifname := sandbox.attach(&joined, created.Interface.MacAddress, addrs[false].Address, addrs[true].Address)
	w.ok(netSock, "NetworkDriver.ProgramExternalConnectivity", obj{"NetworkID": networkID, "EndpointID": endpointID,
		"Options": portOptions}, nil)
	w.ok(netSock, "NetworkDriver.EndpointOperInfo", obj{"NetworkID": networkID, "EndpointID": endpointID}, nil)

	if got := strings.Join(sortedLines(sandbox.ip("-4", "route")), "\n"); got != "169.254.1.1 dev cali0 scope link\ndefault via 169.254.1.1 dev cali0" {
		t.Errorf("sandbox IPv4 routes:\n%s", got)
	}
	if got := sandbox.ip("-6", "route"); !strings.Contains(got, "default via "+joined.GatewayIPv6+" dev "+ifname) {
		t.Errorf("sandbox IPv6 routes:\n%s", got)
	}
	// The host routes to the sandbox, which answers through the gateways the Join asked for.
	for _, a := range []string{addrs[false].Address, addrs[true].Address} {
		ip := netip.MustParsePrefix(a).Addr().String()
		linktest.Eventually(t, 10*time.Second, 250*time.Millisecond, func() error {
			if out, err := exec.Command("ping", "-c", "1", "-W", "1", ip).CombinedOutput(); err != nil {
				return fmt.Errorf("host cannot reach the sandbox at %s: %v\n%s", ip, err, out)
			}
			return nil
		})
	}
	weps := e.endpoints()
	if len(weps) != 1 {
		t.Fatalf("want 1 workload endpoint, have %d", len(weps))
	}
	spec := weps[0]["spec"].(map[string]any)
	if fmt.Sprint(spec["ipNetworks"]) != fmt.Sprintf("[%s %s]", addrs[false].Address, addrs[true].Address) ||
		spec["mac"] != created.Interface.MacAddress || fmt.Sprint(spec["profiles"]) != "["+name+"]" {
		t.Errorf("endpoint spec: %v", spec)
	}
	e.calicoctl("get", "profile", name)

	// docker stop, then docker network rm.
	w.ok(netSock, "NetworkDriver.RevokeExternalConnectivity", obj{"NetworkID": networkID, "EndpointID": endpointID}, nil)
	// Leave keeps the veth: Docker moves the container end back out after Leave, and DeleteEndpoint
	// removes the pair.
	w.ok(netSock, "NetworkDriver.Leave", obj{"NetworkID": networkID, "EndpointID": endpointID}, nil)
	if !hostLinkExists(hostSide) {
		t.Errorf("Leave deleted the veth before Docker could move the container end out")
	}
	w.ok(netSock, "NetworkDriver.DeleteEndpoint", obj{"NetworkID": networkID, "EndpointID": endpointID}, nil)
	if hostLinkExists(hostSide) || strings.Contains(sandbox.ip("link"), ifname) {
		t.Errorf("the veth survives DeleteEndpoint")
	}
	for _, v6 := range []bool{false, true} {
		w.ok(ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": pools[v6].PoolID,
			"Address": netip.MustParsePrefix(addrs[v6].Address).Addr().String()}, nil)
	}
	e.assertNoLeaks(0, 0)
	for _, v6 := range []bool{false, true} {
		w.ok(ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": pools[v6].PoolID,
			"Address": netip.MustParsePrefix(pools[v6].Data["com.docker.network.gateway"]).Addr().String()}, nil)
		w.ok(ipamSock, "IpamDriver.ReleasePool", obj{"PoolID": pools[v6].PoolID}, nil)
	}
	w.ok(netSock, "NetworkDriver.DeleteNetwork", obj{"NetworkID": networkID}, nil)
	if _, err := e.plugin.Calicoctl("get", "profile", name); err == nil {
		t.Errorf("profile %s survives its network", name)
	}
	if keys := e.etcdKeys("/calico/libnetwork/"); len(keys) != 0 {
		t.Errorf("network records left: %v", keys)
	}

	// Docker's forced clean-up (after a crash, a daemon restart) repeats calls for what is gone.
	w.ok(netSock, "NetworkDriver.Leave", obj{"NetworkID": networkID, "EndpointID": endpointID}, nil)
	w.ok(netSock, "NetworkDriver.DeleteEndpoint", obj{"NetworkID": networkID, "EndpointID": endpointID}, nil)
	w.ok(netSock, "NetworkDriver.DeleteNetwork", obj{"NetworkID": networkID}, nil)
	w.ok(ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": pools[false].PoolID,
		"Address": netip.MustParsePrefix(addrs[false].Address).Addr().String()}, nil)
}

// Malformed and hostile requests get a clear Err and the plugin keeps serving; requests for things that are
// gone succeed, as Docker's clean-up needs.
func TestProtocolHostileRequests(t *testing.T) {
	fake := startFakeDocker(t)
	e := start(t, map[string]string{"DOCKER_HOST": fake.host})
	w := wire{t: t, p: e.plugin}
	networkID, endpointID := dockerID(t), dockerID(t)
	huge := strings.Repeat("v", 512<<10)
	twoMiB := append(append([]byte(`{"NetworkID":"`), bytes.Repeat([]byte("a"), 2<<20)...), `"}`...)
	v4Data := []obj{{"AddressSpace": "CalicoGlobalAddressSpace", "Pool": "0.0.0.0/0", "Gateway": "0.0.0.0/0"}}
	endpoint := func(networkID, endpointID string) obj {
		return obj{"NetworkID": networkID, "EndpointID": endpointID, "Interface": obj{"Address": "192.168.0.9/32"}}
	}
	for _, tc := range []struct {
		name   string
		sock   harness.Socket
		method string
		req    any
		status int
		want   string
	}{
		{"bad JSON", netSock, "NetworkDriver.CreateNetwork", []byte(`{"NetworkID":`), 400, "malformed CreateNetwork request"},
		{"not an object", ipamSock, "IpamDriver.RequestAddress", []byte(`["CalicoPoolIPv4"]`), 400, "malformed RequestAddress request"},
		{"number for an ID", netSock, "NetworkDriver.Join", []byte(`{"NetworkID":42}`), 400, "malformed Join request"},
		{"string for Interface", netSock, "NetworkDriver.CreateEndpoint", []byte(`{"Interface":"cali0"}`), 400, "malformed CreateEndpoint request"},
		{"string for V6", ipamSock, "IpamDriver.RequestPool", []byte(`{"V6":"yes"}`), 400, "malformed RequestPool request"},
		{"list for Options", ipamSock, "IpamDriver.RequestAddress", []byte(`{"PoolID":"CalicoPoolIPv4","Options":["x"]}`), 400, "malformed RequestAddress request"},
		{"string for generic options", netSock, "NetworkDriver.CreateNetwork",
			obj{"NetworkID": networkID, "Options": obj{"com.docker.network.generic": "x"}, "IPv4Data": v4Data}, 500,
			"option com.docker.network.generic (must be a JSON object of driver options)"},
		{"2 MiB network request", netSock, "NetworkDriver.CreateEndpoint", twoMiB, 413, "CreateEndpoint request body exceeds 1048576 bytes"},
		{"2 MiB IPAM request", ipamSock, "IpamDriver.RequestPool", twoMiB, 413, "RequestPool request body exceeds 1048576 bytes"},
		{"unknown network", netSock, "NetworkDriver.CreateEndpoint", endpoint(networkID, endpointID), 500,
			"network " + networkID[:12] + " is not a Calico network known to this host"},
		{"unknown endpoint", netSock, "NetworkDriver.Join",
			obj{"NetworkID": networkID, "EndpointID": endpointID, "SandboxKey": "/var/run/docker/netns/0123456789ab"}, 500,
			"endpoint " + endpointID[:12] + " does not exist"},
		{"unknown pool", ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": "no-such-pool"}, 500, `IP pool "no-such-pool" not found`},
		{"pool ID with ..", ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": "../ippools/default-ipv4-ippool"}, 500,
			`IP pool "../ippools/default-ipv4-ippool" not found`},
		{"network ID with /", netSock, "NetworkDriver.CreateNetwork",
			obj{"NetworkID": "../../resources/v3", "IPv4Data": v4Data}, 500, `malformed NetworkID "../../resources/v3"`},
		{"endpoint ID with ..", netSock, "NetworkDriver.CreateEndpoint", endpoint(networkID, ".."), 500, `malformed EndpointID ".."`},
		{"Join with / in the endpoint ID", netSock, "NetworkDriver.Join", obj{"NetworkID": networkID, "EndpointID": "0123456789ab/../x"}, 500,
			`malformed EndpointID "0123456789ab/../x"`},
		{"Leave with .. in the network ID", netSock, "NetworkDriver.Leave", obj{"NetworkID": "..", "EndpointID": endpointID}, 500, `malformed NetworkID ".."`},
		{"DeleteEndpoint with / in the endpoint ID", netSock, "NetworkDriver.DeleteEndpoint", obj{"NetworkID": networkID, "EndpointID": "/etc"}, 500,
			`malformed EndpointID "/etc"`},
		{"DeleteNetwork with / in the network ID", netSock, "NetworkDriver.DeleteNetwork", obj{"NetworkID": networkID + "/x"}, 500, "malformed NetworkID"},
		{"EndpointOperInfo with .. in the endpoint ID", netSock, "NetworkDriver.EndpointOperInfo", obj{"NetworkID": networkID, "EndpointID": "../.."}, 500,
			"malformed EndpointID"},
		{"huge network ID", netSock, "NetworkDriver.DeleteNetwork", obj{"NetworkID": huge}, 500, "... (524288 bytes)"},
		{"huge driver option", netSock, "NetworkDriver.CreateNetwork",
			obj{"NetworkID": networkID, "Options": obj{"com.docker.network.generic": obj{"label": huge}}, "IPv4Data": v4Data}, 500,
			"-o label=vvvv"},
		{"thousands of driver options", netSock, "NetworkDriver.CreateNetwork",
			obj{"NetworkID": networkID, "Options": obj{"com.docker.network.generic": manyOptions(5000)}, "IPv4Data": v4Data}, 500,
			"and 4984 more"},
		{"huge container name", ipamSock, "IpamDriver.RequestAddress",
			obj{"PoolID": "CalicoPoolIPv4", "Options": obj{"com.docker.network.endpoint.name": huge}}, 500,
			`option "com.docker.network.endpoint.name" is 524320 bytes long; at most 1024 are supported`},
		{"huge MAC", netSock, "NetworkDriver.CreateEndpoint",
			obj{"NetworkID": networkID, "EndpointID": endpointID, "Interface": obj{"Address": "192.168.0.9/32", "MacAddress": huge}}, 500,
			"--mac-address \"vvvv"},
		{"address that is not one", ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": huge}, 500,
			"not an IP address"},
		{"unknown method", netSock, "NetworkDriver.Nonsense", obj{}, 404, "unknown method /NetworkDriver.Nonsense"},
		{"IPAM call on the network socket", netSock, "IpamDriver.RequestAddress", obj{}, 404, "unknown method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire{t: t, p: e.plugin}.refused(tc.sock, tc.method, tc.req, tc.status, tc.want)
		})
	}

	// What Docker's clean-up sends for things that are gone, or never were, succeeds.
	for _, tc := range []struct {
		sock   harness.Socket
		method string
		req    obj
	}{
		{ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": "0.0.0.0"}},
		{ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "CalicoPoolIPv6", "Address": "::"}},
		{ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": "10.99.0.1"}},
		{ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": "192.168.200.1"}},
		{ipamSock, "IpamDriver.ReleasePool", obj{"PoolID": "no-such-pool"}},
		{netSock, "NetworkDriver.Leave", obj{"NetworkID": networkID, "EndpointID": endpointID}},
		{netSock, "NetworkDriver.DeleteEndpoint", obj{"NetworkID": networkID, "EndpointID": endpointID}},
		{netSock, "NetworkDriver.DeleteNetwork", obj{"NetworkID": networkID}},
		{netSock, "NetworkDriver.EndpointOperInfo", obj{"NetworkID": networkID, "EndpointID": endpointID}},
		{netSock, "NetworkDriver.RevokeExternalConnectivity", obj{"NetworkID": networkID, "EndpointID": endpointID}},
	} {
		w.ok(tc.sock, tc.method, tc.req, nil)
	}

	// A normal allocation still works, and nothing was recorded along the way.
	var addr libnetwork.RequestAddressResponse
	w.ok(ipamSock, "IpamDriver.RequestAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": "", "Options": nil}, &addr)
	w.ok(ipamSock, "IpamDriver.ReleaseAddress", obj{"PoolID": "CalicoPoolIPv4", "Address": netip.MustParsePrefix(addr.Address).Addr().String()}, nil)
	if e.plugin.Exited() {
		t.Fatal("the plugin exited")
	}
	e.assertNoLeaks(0, 0)
	if keys := e.etcdKeys("/calico/libnetwork/"); len(keys) != 0 {
		t.Errorf("refused requests left network records: %v", keys)
	}
}

// manyOptions is a map of n driver options.
func manyOptions(n int) obj {
	o := obj{}
	for i := range n {
		o[fmt.Sprintf("opt%05d", i)] = "x"
	}
	return o
}
