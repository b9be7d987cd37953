package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// DefaultDockerd is Debian's dockerd, which tests that start dockerds of their own run unless
// HARNESS_DOCKERD names another.
const DefaultDockerd = "/usr/sbin/dockerd"

// EngineInfo is what the Docker engine under test and its client report about themselves.
type EngineInfo struct {
	ServerVersion string // e.g. "20.10.24+dfsg1"
	ServerAPI     string // the highest API version the daemon speaks, e.g. "1.41"
	MinServerAPI  string // the lowest API version the daemon accepts
	ClientVersion string // DockerBin's version
	API           string // the API version DockerBin negotiated with the daemon: what the tests get
}

func (e EngineInfo) String() string {
	return fmt.Sprintf("dockerd %s (API %s, min %s) through %s %s (API %s)",
		e.ServerVersion, e.ServerAPI, e.MinServerAPI, DockerBin, e.ClientVersion, e.API)
}

// APIAtLeast reports whether the negotiated API version is v ("1.44") or newer.
func (e EngineInfo) APIAtLeast(v string) bool { return compareAPI(e.API, v) >= 0 }

// ServerAPIAtLeast reports whether the daemon speaks API v or newer, whatever the client negotiated.
// Daemon behaviour that no request asks for (what it sends a driver, how it names interfaces) goes by
// this.
func (e EngineInfo) ServerAPIAtLeast(v string) bool { return compareAPI(e.ServerAPI, v) >= 0 }

// PerEndpointMAC reports whether --mac-address applies to the network it is given with (API 1.44,
// Docker 25). Before, a daemon took it for the container's primary network only, and a 28.x client
// refuses `docker run --mac-address` on a user network unless the negotiated API is 1.44.
func (e EngineInfo) PerEndpointMAC() bool { return e.APIAtLeast("1.44") }

// Docker28 reports whether the daemon is Docker 28 or newer (API 1.48): it sends CreateNetwork the
// option com.docker.network.enable_ipv4, names a container's interfaces by the lowest free index per
// prefix (older daemons count up and never reuse one), and gateway priority is user settable.
func (e EngineInfo) Docker28() bool { return e.ServerAPIAtLeast("1.48") }

// Docker29 reports whether the daemon is Docker 29 or newer (API 1.52): among other things it accepts
// --ip in any pool the network was allocated, not only in a --subnet.
func (e EngineInfo) Docker29() bool { return e.ServerAPIAtLeast("1.52") }

var (
	engineMu   sync.Mutex
	engineInfo *EngineInfo
)

// Engine asks DockerBin once per test process what the engine under test is; it fails the test if
// the daemon does not answer.
func Engine(t testing.TB) EngineInfo {
	t.Helper()
	engineMu.Lock()
	defer engineMu.Unlock()
	if engineInfo != nil {
		return *engineInfo
	}
	out, err := DockerErr("version", "--format", "{{json .}}")
	if err != nil {
		t.Fatalf("Engine: %v", err)
	}
	info, err := parseVersion(out)
	if err != nil {
		t.Fatalf("Engine: %v", err)
	}
	engineInfo = &info
	return info
}

var (
	backendMu sync.Mutex
	backend   string
)

// FirewallBackend asks DockerBin once per test process which firewall backend the engine under test
// programs: "iptables" or "nftables" (--firewall-backend, Docker 29). It fails the test if the daemon
// does not answer.
func FirewallBackend(t testing.TB) string {
	t.Helper()
	backendMu.Lock()
	defer backendMu.Unlock()
	if backend != "" {
		return backend
	}
	out, err := DockerErr("info", "--format", "{{json .}}")
	if err != nil {
		t.Fatalf("FirewallBackend: %v", err)
	}
	if backend, err = parseFirewallBackend(out); err != nil {
		t.Fatalf("FirewallBackend: %v", err)
	}
	return backend
}

// parseFirewallBackend reads the backend from the JSON of `docker info --format '{{json .}}'`: its
// FirewallBackend (API 1.49+) without what follows a "+" ("iptables+firewalld"); engines and clients
// older than that field know only iptables.
func parseFirewallBackend(out string) (string, error) {
	var v struct {
		ServerVersion   string
		FirewallBackend *struct{ Driver string }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ServerVersion == "" {
		return "", fmt.Errorf("docker info: not a daemon's info (%v): %q", err, out)
	}
	if v.FirewallBackend == nil || v.FirewallBackend.Driver == "" {
		return "iptables", nil
	}
	driver, _, _ := strings.Cut(v.FirewallBackend.Driver, "+")
	return driver, nil
}

// parseVersion reads the JSON of `docker version --format '{{json .}}'`.
func parseVersion(out string) (EngineInfo, error) {
	var v struct {
		Client struct {
			Version    string
			APIVersion string `json:"ApiVersion"`
		}
		Server *struct {
			Version       string
			APIVersion    string `json:"ApiVersion"`
			MinAPIVersion string
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return EngineInfo{}, fmt.Errorf("docker version: %v: %q", err, out)
	}
	if v.Server == nil || v.Server.APIVersion == "" || v.Client.APIVersion == "" {
		return EngineInfo{}, fmt.Errorf("docker version: no server or API versions in %q", out)
	}
	return EngineInfo{
		ServerVersion: v.Server.Version,
		ServerAPI:     v.Server.APIVersion,
		MinServerAPI:  v.Server.MinAPIVersion,
		ClientVersion: v.Client.Version,
		API:           v.Client.APIVersion,
	}, nil
}

// compareAPI compares two "major.minor" API versions like strings.Compare; anything unparsable
// counts as 0.0.
func compareAPI(a, b string) int {
	am, an := splitAPI(a)
	bm, bn := splitAPI(b)
	switch {
	case am != bm:
		return cmpInt(am, bm)
	default:
		return cmpInt(an, bn)
	}
}

func splitAPI(v string) (int, int) {
	major, minor, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".")
	m, err1 := strconv.Atoi(major)
	n, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return m, n
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DockerdCommand returns the command line for an extra dockerd of the engine under test, for tests
// that run dockerds of their own (several hosts on one machine): $HARNESS_DOCKERD (else
// DefaultDockerd), then the words of $HARNESS_DOCKERD_ARGS (what that engine always needs, such as
// "--add-runtime newrunc=/path/runc --default-runtime newrunc"), then args. The caller still gives
// each dockerd its own --data-root, --exec-root, -H and --pidfile.
func DockerdCommand(args ...string) []string {
	argv := []string{envOr("HARNESS_DOCKERD", DefaultDockerd)}
	argv = append(argv, strings.Fields(os.Getenv("HARNESS_DOCKERD_ARGS"))...)
	return append(argv, args...)
}
