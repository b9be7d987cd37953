package libnetwork

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testNID = "6f5b0d3e1c9a4b7f8e2d1c0b9a8f7e6d5c4b3a29180716253443526170819203"
	testEID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	testBox = "/var/run/docker/netns/0123456789ab"
)

// ids fills the research notes' placeholders in a request body.
func ids(s string) string {
	return strings.NewReplacer("<nid>", testNID, "<eid>", testEID, "<12hex>", "0123456789ab").Replace(s)
}

// decodeErr returns the Err field of an error reply.
func decodeErr(t *testing.T, body string) string {
	t.Helper()
	var e struct{ Err *string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Err == nil {
		t.Fatalf("error reply %q is not {\"Err\": ...} (%v)", body, err)
	}
	return *e.Err
}

func TestActivate(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Handler
		want string
	}{
		{"network", NewNetworkHandler(fakeNetwork{&recorder{}}, nil, nil), `{"Implements":["NetworkDriver"]}`},
		{"ipam", NewIpamHandler(fakeIpam{&recorder{}}, nil, nil), `{"Implements":["IpamDriver"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.h)
			status, ctype, body := s.do(t, "POST", "/Plugin.Activate", "")
			if status != http.StatusOK || body != tc.want {
				t.Errorf("Activate = %d %s, want 200 %s", status, body, tc.want)
			}
			if ctype != "application/vnd.docker.plugins.v1.1+json" {
				t.Errorf("Content-Type = %q", ctype)
			}
		})
	}
}

func TestGetCapabilities(t *testing.T) {
	netSrv := startServer(t, NewNetworkHandler(fakeNetwork{&recorder{}}, nil, nil))
	ipamSrv := startServer(t, NewIpamHandler(fakeIpam{&recorder{}}, nil, nil))
	const (
		wantNet  = `{"Scope":"global","ConnectivityScope":"global"}`
		wantIpam = `{"RequiresMACAddress":false,"RequiresRequestReplay":true}`
	)
	for _, tc := range []struct {
		s            *testServer
		method, path string
		body, want   string
	}{
		{netSrv, "POST", "/NetworkDriver.GetCapabilities", "", wantNet},
		{netSrv, "POST", "/NetworkDriver.GetCapabilities", "{}", wantNet},
		{netSrv, "GET", "/NetworkDriver.GetCapabilities", "", wantNet},
		{ipamSrv, "POST", "/IpamDriver.GetCapabilities", "", wantIpam},
		{ipamSrv, "GET", "/IpamDriver.GetCapabilities", "", wantIpam},
		{ipamSrv, "POST", "/IpamDriver.GetDefaultAddressSpaces", "",
			`{"LocalDefaultAddressSpace":"CalicoLocalAddressSpace","GlobalDefaultAddressSpace":"CalicoGlobalAddressSpace"}`},
	} {
		status, _, body := tc.s.do(t, tc.method, tc.path, tc.body)
		if status != http.StatusOK || body != tc.want {
			t.Errorf("%s %s body %q = %d %s, want 200 %s", tc.method, tc.path, tc.body, status, body, tc.want)
		}
	}
}

// TestHealthCheckLikeNetcat replays the README's
// `echo -e "GET /NetworkDriver.GetCapabilities HTTP/1.0\r\n\r\n" | nc -U sock`.
func TestHealthCheckLikeNetcat(t *testing.T) {
	s := startServer(t, NewNetworkHandler(fakeNetwork{&recorder{}}, nil, nil))
	conn, err := net.Dial("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /NetworkDriver.GetCapabilities HTTP/1.0\r\n\r\n\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"Scope":"global"`) {
		t.Errorf("health check = %d %s", resp.StatusCode, body)
	}
}

// TestRequestDecoding sends the bodies from the research notes (section 10,
// Docker v28+) and checks what the driver receives and what Docker gets back.
func TestRequestDecoding(t *testing.T) {
	nrec, irec := &recorder{}, &recorder{}
	netSrv := startServer(t, NewNetworkHandler(fullNetwork{fakeNetwork{nrec}}, nil, nil))
	ipamSrv := startServer(t, NewIpamHandler(fakeIpam{irec}, nil, nil))
	sandboxOpts := map[string]any{
		"com.docker.network.endpoint.exposedports": []any{},
		"com.docker.network.portmap":               []any{},
	}
	calicoV4 := []IPAMData{{AddressSpace: "CalicoGlobalAddressSpace", Pool: "0.0.0.0/0", Gateway: "0.0.0.0/0"}}

	for _, tc := range []struct {
		path     string
		body     string
		wantCall string
		wantReq  any
		wantResp string
	}{
		{
			path:     "/NetworkDriver.CreateNetwork",
			body:     `{"NetworkID":"<nid>","Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"CalicoGlobalAddressSpace","Pool":"0.0.0.0/0","Gateway":"0.0.0.0/0"}],"IPv6Data":[]}`,
			wantCall: "CreateNetwork",
			wantReq: &CreateNetworkRequest{
				NetworkID: testNID,
				Options: map[string]any{
					"com.docker.network.enable_ipv4": true,
					"com.docker.network.enable_ipv6": false,
					"com.docker.network.generic":     map[string]any{},
				},
				IPv4Data: calicoV4,
				IPv6Data: []IPAMData{},
			},
			wantResp: `{}`,
		},
		{
			path:     "/NetworkDriver.CreateEndpoint",
			body:     `{"NetworkID":"<nid>","EndpointID":"<eid>","Interface":{"Address":"10.65.0.2/32","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`,
			wantCall: "CreateEndpoint",
			wantReq: &CreateEndpointRequest{
				NetworkID: testNID, EndpointID: testEID,
				Interface: &EndpointInterface{Address: "10.65.0.2/32"},
				Options:   sandboxOpts,
			},
			wantResp: `{"Interface":{}}`,
		},
		{
			path:     "/NetworkDriver.Join",
			body:     `{"NetworkID":"<nid>","EndpointID":"<eid>","SandboxKey":"/var/run/docker/netns/<12hex>","Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`,
			wantCall: "Join",
			wantReq:  &JoinRequest{NetworkID: testNID, EndpointID: testEID, SandboxKey: testBox, Options: sandboxOpts},
			wantResp: `{"InterfaceName":{"SrcName":"tmpa1b2c3d4e5f","DstPrefix":"cali"},"Gateway":"169.254.1.1","StaticRoutes":[{"Destination":"169.254.1.1/32","RouteType":1}],"DisableGatewayService":false}`,
		},
		{
			path:     "/NetworkDriver.EndpointOperInfo",
			body:     `{"NetworkID":"<nid>","EndpointID":"<eid>"}`,
			wantCall: "EndpointInfo",
			wantReq:  &EndpointInfoRequest{NetworkID: testNID, EndpointID: testEID},
			wantResp: `{"Value":{}}`,
		},
		{
			path:     "/NetworkDriver.Leave",
			body:     `{"NetworkID":"<nid>","EndpointID":"<eid>"}`,
			wantCall: "Leave",
			wantReq:  &LeaveRequest{NetworkID: testNID, EndpointID: testEID},
			wantResp: `{}`,
		},
		{
			path:     "/NetworkDriver.DeleteEndpoint",
			body:     `{"NetworkID":"<nid>","EndpointID":"<eid>"}`,
			wantCall: "DeleteEndpoint",
			wantReq:  &DeleteEndpointRequest{NetworkID: testNID, EndpointID: testEID},
			wantResp: `{}`,
		},
		{
			path:     "/NetworkDriver.DeleteNetwork",
			body:     `{"NetworkID":"<nid>"}`,
			wantCall: "DeleteNetwork",
			wantReq:  &DeleteNetworkRequest{NetworkID: testNID},
			wantResp: `{}`,
		},
		{
			path:     "/NetworkDriver.AllocateNetwork",
			body:     `{"NetworkID":"<nid>","Options":{"a":"b"},"IPv4Data":[{"AddressSpace":"CalicoGlobalAddressSpace","Pool":"0.0.0.0/0","Gateway":"0.0.0.0/0"}],"IPv6Data":null}`,
			wantCall: "AllocateNetwork",
			wantReq:  &AllocateNetworkRequest{NetworkID: testNID, Options: map[string]string{"a": "b"}, IPv4Data: calicoV4},
			wantResp: `{"Options":{"k":"v"}}`,
		},
		{
			path:     "/NetworkDriver.FreeNetwork",
			body:     `{"NetworkID":"<nid>"}`,
			wantCall: "FreeNetwork",
			wantReq:  &FreeNetworkRequest{NetworkID: testNID},
			wantResp: `{}`,
		},
		{
			path:     "/NetworkDriver.GwAllocCheck",
			body:     `{"Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}}}`,
			wantCall: "GwAllocCheck",
			wantReq: &GwAllocCheckRequest{Options: map[string]any{
				"com.docker.network.enable_ipv4": true,
				"com.docker.network.enable_ipv6": false,
				"com.docker.network.generic":     map[string]any{},
			}},
			wantResp: `{"SkipIPv4":true,"SkipIPv6":false}`,
		},
		{
			path:     "/IpamDriver.RequestPool",
			body:     `{"AddressSpace":"CalicoGlobalAddressSpace","Pool":"","SubPool":"","Options":null,"V6":false}`,
			wantCall: "RequestPool",
			wantReq:  &RequestPoolRequest{AddressSpace: "CalicoGlobalAddressSpace"},
			wantResp: `{"PoolID":"CalicoPoolIPv4","Pool":"0.0.0.0/0","Data":{"com.docker.network.gateway":"0.0.0.0/0"}}`,
		},
		{
			path:     "/IpamDriver.RequestPool",
			body:     `{"AddressSpace":"CalicoGlobalAddressSpace","Pool":"fd00::/64","SubPool":"fd00::/80","Options":{"k":"v"},"V6":true}`,
			wantCall: "RequestPool",
			wantReq: &RequestPoolRequest{AddressSpace: "CalicoGlobalAddressSpace", Pool: "fd00::/64", SubPool: "fd00::/80",
				Options: map[string]string{"k": "v"}, V6: true},
			wantResp: `{"PoolID":"CalicoPoolIPv4","Pool":"0.0.0.0/0","Data":{"com.docker.network.gateway":"0.0.0.0/0"}}`,
		},
		{
			path:     "/IpamDriver.RequestAddress",
			body:     `{"PoolID":"CalicoPoolIPv4","Address":"","Options":null}`,
			wantCall: "RequestAddress",
			wantReq:  &RequestAddressRequest{PoolID: "CalicoPoolIPv4"},
			wantResp: `{"Address":"10.65.0.2/32","Data":null}`,
		},
		{
			path:     "/IpamDriver.RequestAddress",
			body:     `{"PoolID":"CalicoPoolIPv4","Address":"","Options":{"com.docker.network.endpoint.name":"a"}}`,
			wantCall: "RequestAddress",
			wantReq: &RequestAddressRequest{PoolID: "CalicoPoolIPv4",
				Options: map[string]string{"com.docker.network.endpoint.name": "a"}},
			wantResp: `{"Address":"10.65.0.2/32","Data":null}`,
		},
		{
			path:     "/IpamDriver.ReleaseAddress",
			body:     `{"PoolID":"CalicoPoolIPv4","Address":"0.0.0.0"}`,
			wantCall: "ReleaseAddress",
			wantReq:  &ReleaseAddressRequest{PoolID: "CalicoPoolIPv4", Address: "0.0.0.0"},
			wantResp: `{}`,
		},
		{
			path:     "/IpamDriver.ReleasePool",
			body:     `{"PoolID":"CalicoPoolIPv4"}`,
			wantCall: "ReleasePool",
			wantReq:  &ReleasePoolRequest{PoolID: "CalicoPoolIPv4"},
			wantResp: `{}`,
		},
	} {
		s, rec := netSrv, nrec
		if strings.HasPrefix(tc.path, "/IpamDriver.") {
			s, rec = ipamSrv, irec
		}
		status, _, body := s.do(t, "POST", tc.path, ids(tc.body))
		if status != http.StatusOK || body != tc.wantResp {
			t.Errorf("%s = %d %s, want 200 %s", tc.path, status, body, tc.wantResp)
		}
		got := rec.last()
		if got.method != tc.wantCall || !reflect.DeepEqual(got.req, tc.wantReq) {
			t.Errorf("%s: driver got %s %#v, want %s %#v", tc.path, got.method, got.req, tc.wantCall, tc.wantReq)
		}
	}
}

func TestOptionalMethodsAnsweredByServer(t *testing.T) {
	rec := &recorder{}
	s := startServer(t, NewNetworkHandler(fakeNetwork{rec}, nil, nil))
	for _, tc := range []struct{ path, body, want string }{
		{"/NetworkDriver.AllocateNetwork", `{"NetworkID":"n","Options":{},"IPv4Data":[],"IPv6Data":[]}`, `{"Options":{}}`},
		{"/NetworkDriver.FreeNetwork", `{"NetworkID":"n"}`, `{}`},
		{"/NetworkDriver.GwAllocCheck", `{"Options":{}}`, `{"SkipIPv4":false,"SkipIPv6":false}`},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.1","BindAddress":"0.0.0.0","Self":true}}`, `{}`},
		{"/NetworkDriver.DiscoverDelete", `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.1"}}`, `{}`},
		{"/NetworkDriver.ProgramExternalConnectivity", ids(`{"NetworkID":"<nid>","EndpointID":"<eid>","Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`), `{}`},
		{"/NetworkDriver.RevokeExternalConnectivity", ids(`{"NetworkID":"<nid>","EndpointID":"<eid>"}`), `{}`},
	} {
		if status, _, body := s.do(t, "POST", tc.path, tc.body); status != http.StatusOK || body != tc.want {
			t.Errorf("%s = %d %s, want 200 %s", tc.path, status, body, tc.want)
		}
	}
	if n := rec.count(); n != 0 {
		t.Errorf("driver saw %d calls for methods it does not implement", n)
	}
	// They are still validated, like every other method.
	status, _, body := s.do(t, "POST", "/NetworkDriver.DiscoverNew", `{"DiscoveryType":"node"}`)
	if status != http.StatusBadRequest || !strings.HasPrefix(decodeErr(t, body), "malformed DiscoverNew request: ") {
		t.Errorf("bad DiscoverNew = %d %s, want 400 malformed", status, body)
	}
}

func TestErrorMapping(t *testing.T) {
	nrec, irec := &recorder{}, &recorder{}
	netSrv := startServer(t, NewNetworkHandler(fakeNetwork{nrec}, nil, nil))
	ipamSrv := startServer(t, NewIpamHandler(fakeIpam{irec}, nil, nil))

	t.Run("driver error", func(t *testing.T) {
		nrec.failWith(errors.New("pool exhausted"))
		irec.failWith(errors.New("no such pool"))
		defer nrec.failWith(nil)
		defer irec.failWith(nil)
		for _, tc := range []struct {
			s          *testServer
			path, want string
		}{
			{netSrv, "/NetworkDriver.CreateNetwork", "pool exhausted"},
			{netSrv, "/NetworkDriver.GetCapabilities", "pool exhausted"},
			{ipamSrv, "/IpamDriver.RequestAddress", "no such pool"},
			{ipamSrv, "/IpamDriver.ReleasePool", "no such pool"},
		} {
			status, _, body := tc.s.do(t, "POST", tc.path, `{}`)
			if status != http.StatusInternalServerError || body != `{"Err":"`+tc.want+`"}` {
				t.Errorf("%s = %d %s, want 500 Err %q", tc.path, status, body, tc.want)
			}
		}
	})

	before := nrec.count() + irec.count()
	for _, tc := range []struct {
		name       string
		s          *testServer
		method     string
		path, body string
		wantStatus int
		wantErr    string // prefix
	}{
		{"bad json", netSrv, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":`, 400, "malformed CreateNetwork request: "},
		{"trailing garbage", netSrv, "POST", "/NetworkDriver.Leave", `{} {}`, 400, "malformed Leave request: "},
		{"wrong type", netSrv, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID": 5}`, 400, "malformed CreateNetwork request: "},
		{"wrong nested type", netSrv, "POST", "/NetworkDriver.CreateEndpoint", `{"Interface":"10.0.0.1"}`, 400, "malformed CreateEndpoint request: "},
		{"not an object", netSrv, "POST", "/NetworkDriver.Join", `["a"]`, 400, "malformed Join request: "},
		{"ipam wrong type", ipamSrv, "POST", "/IpamDriver.RequestPool", `{"V6":"yes"}`, 400, "malformed RequestPool request: "},
		{"ipam map of non-strings", ipamSrv, "POST", "/IpamDriver.RequestAddress", `{"Options":{"a":1}}`, 400, "malformed RequestAddress request: "},
		{"too large", netSrv, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "CreateNetwork request body exceeds"},
		{"unknown method", netSrv, "POST", "/NetworkDriver.Bogus", `{}`, 404, "unknown method /NetworkDriver.Bogus"},
		{"other subsystem", netSrv, "POST", "/IpamDriver.RequestPool", `{}`, 404, "unknown method /IpamDriver.RequestPool"},
		{"root", ipamSrv, "GET", "/", ``, 404, "unknown method /"},
		{"GET on a call with payload", netSrv, "GET", "/NetworkDriver.CreateNetwork", ``, 405, "CreateNetwork does not accept HTTP GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := tc.s.do(t, tc.method, tc.path, tc.body)
			if status != tc.wantStatus || !strings.HasPrefix(decodeErr(t, body), tc.wantErr) {
				t.Errorf("%s %s = %d %s, want %d Err %q...", tc.method, tc.path, status, body, tc.wantStatus, tc.wantErr)
			}
		})
	}
	if n := nrec.count() + irec.count() - before; n != 0 {
		t.Errorf("driver saw %d calls for requests the server should reject", n)
	}

	// Docker's retry after a plugin restart resends a call with the body its first attempt consumed.
	t.Run("empty body", func(t *testing.T) {
		before := irec.count()
		status, _, body := ipamSrv.do(t, "POST", "/IpamDriver.RequestAddress", "")
		if status != http.StatusBadRequest || !strings.HasPrefix(decodeErr(t, body), "malformed RequestAddress request: empty body: Docker resends") {
			t.Errorf("empty RequestAddress = %d %s", status, body)
		}
		if irec.count() != before {
			t.Error("the driver saw a request without arguments")
		}
		if status, _, body := netSrv.do(t, "POST", "/NetworkDriver.ProgramExternalConnectivity", ""); status != http.StatusOK || body != `{}` {
			t.Errorf("empty ProgramExternalConnectivity, which needs no arguments = %d %s", status, body)
		}
	})
}

func TestPanicRecovery(t *testing.T) {
	rec := &recorder{}
	s := startServer(t, NewNetworkHandler(fakeNetwork{rec}, nil, nil))
	rec.panicOnce("boom")
	status, _, body := s.do(t, "POST", "/NetworkDriver.Join", `{"NetworkID":"n","EndpointID":"e"}`)
	if status != http.StatusInternalServerError || body != `{"Err":"internal error in Join: boom"}` {
		t.Errorf("panicking Join = %d %s", status, body)
	}
	if status, _, body := s.do(t, "POST", "/NetworkDriver.Leave", `{"NetworkID":"n","EndpointID":"e"}`); status != http.StatusOK {
		t.Errorf("Leave after panic = %d %s", status, body)
	}
}

func TestRequestContextCancelledOnDisconnect(t *testing.T) {
	rec := &recorder{}
	s := startServer(t, NewNetworkHandler(fakeNetwork{rec}, nil, nil))
	entered, ctxErr := make(chan struct{}), make(chan error, 1)
	rec.onCall(func(ctx context.Context) {
		close(entered)
		select {
		case <-ctx.Done():
			ctxErr <- ctx.Err()
		case <-time.After(5 * time.Second):
			ctxErr <- errors.New("request context not cancelled")
		}
	})
	reqCtx, cancel := context.WithCancel(context.Background())
	go func() { _, _, _, _ = s.send(reqCtx, "POST", "/NetworkDriver.Join", `{}`) }()
	<-entered
	cancel()
	if err := <-ctxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("driver context after client hung up: %v, want context.Canceled", err)
	}
}

func TestLogging(t *testing.T) {
	run := func(level slog.Level, fail bool) []string {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		rec := &recorder{}
		if fail {
			rec.failWith(errors.New("nope"))
		}
		h := NewIpamHandler(fakeIpam{rec}, log, nil)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/IpamDriver.ReleasePool", strings.NewReader(`{"PoolID":"p1"}`)))
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}

	lines := run(slog.LevelDebug, false)
	if len(lines) != 2 ||
		!strings.Contains(lines[0], "method=IpamDriver.ReleasePool") || !strings.Contains(lines[0], `PoolID`) ||
		!strings.Contains(lines[1], "status=200") || !strings.Contains(lines[1], "body={}") {
		t.Errorf("debug log = %q, want one request and one response line", lines)
	}
	if lines := run(slog.LevelInfo, false); len(lines) != 1 || lines[0] != "" {
		t.Errorf("info log for a good request = %q, want nothing", lines)
	}
	lines = run(slog.LevelInfo, true)
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
		!strings.Contains(lines[0], "method=IpamDriver.ReleasePool") || !strings.Contains(lines[0], "error=nope") {
		t.Errorf("info log for a failed request = %q, want one WARN line with method and error", lines)
	}
}

func TestObserver(t *testing.T) {
	type observation struct {
		subsystem, method string
		ok                bool
	}
	var seen []observation
	observe := func(subsystem, method string, elapsed time.Duration, ok bool) {
		if elapsed <= 0 {
			t.Errorf("%s.%s observed with elapsed %v", subsystem, method, elapsed)
		}
		seen = append(seen, observation{subsystem, method, ok})
	}
	rec := &recorder{}
	netH := NewNetworkHandler(fakeNetwork{rec}, nil, observe)
	ipamH := NewIpamHandler(fakeIpam{rec}, nil, observe)
	serve := func(h http.Handler, method, path, body string) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, strings.NewReader(body)))
	}

	serve(netH, "POST", "/Plugin.Activate", "")
	serve(netH, "POST", "/NetworkDriver.Leave", ids(`{"NetworkID":"<nid>","EndpointID":"<eid>"}`))
	serve(netH, "POST", "/NetworkDriver.Join", `{"NetworkID": 7}`) // malformed
	serve(netH, "GET", "/NetworkDriver.Leave", "")                 // wrong HTTP method
	serve(netH, "POST", "/NetworkDriver.NoSuchMethod", "")         // unknown: not observed
	rec.failWith(errors.New("etcd down"))
	serve(ipamH, "POST", "/IpamDriver.RequestAddress", `{"PoolID":"p"}`)

	want := []observation{
		{"NetworkDriver", "Activate", true},
		{"NetworkDriver", "Leave", true},
		{"NetworkDriver", "Join", false},
		{"NetworkDriver", "Leave", false},
		{"IpamDriver", "RequestAddress", false},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("observed %+v, want %+v", seen, want)
	}
}
