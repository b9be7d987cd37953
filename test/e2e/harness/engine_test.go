package harness

import (
	"strings"
	"testing"
)

func TestCompareAPI(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.41", "1.44", -1},
		{"1.44", "1.44", 0},
		{"1.52", "1.48", 1},
		{"1.9", "1.10", -1}, // numeric, not lexical
		{"2.0", "1.99", 1},
		{"v1.48", "1.48", 0},
		{"junk", "1.0", -1},
	} {
		if got := compareAPI(tc.a, tc.b); got != tc.want {
			t.Errorf("compareAPI(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	// What the 28.x client prints against Debian's 20.10 daemon (trimmed).
	out := `{"Client":{"Version":"28.2.2","ApiVersion":"1.41","DefaultAPIVersion":"1.50"},` +
		`"Server":{"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12"}}`
	e, err := parseVersion(out)
	if err != nil {
		t.Fatal(err)
	}
	want := EngineInfo{ServerVersion: "20.10.24+dfsg1", ServerAPI: "1.41", MinServerAPI: "1.12", ClientVersion: "28.2.2", API: "1.41"}
	if e != want {
		t.Fatalf("parseVersion = %+v, want %+v", e, want)
	}
	if e.PerEndpointMAC() || e.Docker28() || e.Docker29() || !e.APIAtLeast("1.41") {
		t.Errorf("20.10 through API 1.41: wrong feature answers for %v", e)
	}

	e.ServerAPI, e.API = "1.52", "1.50" // a 28.x client against Docker 29
	if !e.PerEndpointMAC() || !e.Docker28() || !e.Docker29() || e.APIAtLeast("1.52") {
		t.Errorf("Docker 29 through API 1.50: wrong feature answers for %v", e)
	}
	if !strings.Contains(e.String(), "API 1.52") {
		t.Errorf("String() = %q", e.String())
	}

	if _, err := parseVersion(`{"Client":{"Version":"28.2.2","ApiVersion":"1.50"}}`); err == nil {
		t.Error("parseVersion accepted output without a server")
	}
	if _, err := parseVersion("Cannot connect"); err == nil {
		t.Error("parseVersion accepted non-JSON")
	}
}

func TestDockerSocketFromHost(t *testing.T) {
	for host, want := range map[string]string{
		"":                           DefaultDockerSocket,
		"unix:///run/other/dk.sock":  "/run/other/dk.sock",
		"unix://":                    DefaultDockerSocket,
		"tcp://127.0.0.1:2375":       DefaultDockerSocket,
		"/var/run/docker.sock.plain": DefaultDockerSocket,
	} {
		if got := dockerSocket(host); got != want {
			t.Errorf("dockerSocket(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestDockerdCommand(t *testing.T) {
	t.Setenv("HARNESS_DOCKERD", "")
	t.Setenv("HARNESS_DOCKERD_ARGS", "")
	if got := strings.Join(DockerdCommand("-H", "unix:///run/h1.sock"), " "); got != DefaultDockerd+" -H unix:///run/h1.sock" {
		t.Errorf("default DockerdCommand = %q", got)
	}
	t.Setenv("HARNESS_DOCKERD", "/cache/dockerd")
	t.Setenv("HARNESS_DOCKERD_ARGS", " --add-runtime newrunc=/cache/runc  --default-runtime newrunc ")
	got := DockerdCommand("--pidfile", "/run/h1.pid")
	want := []string{"/cache/dockerd", "--add-runtime", "newrunc=/cache/runc", "--default-runtime", "newrunc", "--pidfile", "/run/h1.pid"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("DockerdCommand = %q, want %q", got, want)
	}
}

// The engine under test answers, and the tests' client can talk to it.
func TestEngine(t *testing.T) {
	RequireRoot(t)
	RequireDocker(t)
	e := Engine(t)
	t.Logf("engine under test: %v", e)
	if compareAPI(e.API, e.ServerAPI) > 0 || compareAPI(e.API, e.MinServerAPI) < 0 {
		t.Errorf("negotiated API %s outside the daemon's %s..%s", e.API, e.MinServerAPI, e.ServerAPI)
	}
}

func TestParseFirewallBackend(t *testing.T) {
	for out, want := range map[string]string{
		`{"ServerVersion":"20.10.24+dfsg1"}`:                                                                       "iptables",
		`{"ServerVersion":"29.0.0","FirewallBackend":{"Driver":"iptables"}}`:                                       "iptables",
		`{"ServerVersion":"29.0.0","FirewallBackend":{"Driver":"nftables"}}`:                                       "nftables",
		`{"ServerVersion":"29.0.0","FirewallBackend":{"Driver":"nftables+firewalld","Info":[["ReloadedAt","x"]]}}`: "nftables",
	} {
		if got, err := parseFirewallBackend(out); err != nil || got != want {
			t.Errorf("parseFirewallBackend(%s) = %q, %v; want %q", out, got, err, want)
		}
	}
	for _, out := range []string{"Cannot connect", `{"ServerErrors":["no daemon"]}`} {
		if got, err := parseFirewallBackend(out); err == nil {
			t.Errorf("parseFirewallBackend(%s) = %q, want an error", out, got)
		}
	}
}
