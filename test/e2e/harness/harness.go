// Package harness holds helpers for the end-to-end tests under test/e2e:
// skipping without root or dockerd, building the binaries, running the plugin
// daemon, and driving the host's Docker through the client that matches it.
//
// The e2e packages share the host's dockerd and plugin socket folder, so run
// them one package at a time (go test -p 1 ./test/e2e/...), as scripts/test.sh does.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// TestImage is the local busybox image built by scripts/test-image.sh.
	TestImage = "calico-test/busybox:latest"
	// DockerdLog is where dockerd output goes when the tests start it.
	DockerdLog = "/var/log/calico-test-dockerd.log"
	// DefaultPluginDir is the folder Docker discovers plugin sockets in.
	DefaultPluginDir = "/run/docker/plugins"

	// DefaultDockerBin is the Docker client that matches Debian's dockerd (API 1.41).
	DefaultDockerBin = "/usr/bin/docker"
	// DefaultDockerSocket is where the host's dockerd listens unless DOCKER_HOST says otherwise.
	DefaultDockerSocket = "/var/run/docker.sock"
)

// The engine under test. They default to Debian's docker.io on the host; the environment points them
// at another engine (scripts/test-e2e.sh does, for ENGINE=current).
var (
	// DockerBin is the Docker client the tests run: $HARNESS_DOCKER, else DefaultDockerBin. It must speak
	// an API version the daemon accepts (Debian's 20.10 daemon: 1.12 to 1.41; the current engine
	// scripts/test-e2e.sh builds: 1.40 to 1.56). The client also honours DOCKER_HOST.
	DockerBin = envOr("HARNESS_DOCKER", DefaultDockerBin)
	// DockerSocket is where the dockerd under test listens: the path of a unix:// DOCKER_HOST, else
	// DefaultDockerSocket.
	DockerSocket = dockerSocket(os.Getenv("DOCKER_HOST"))
)

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// dockerSocket returns the socket path of a unix:// DOCKER_HOST value, or DefaultDockerSocket for
// anything else (unset, tcp://).
func dockerSocket(host string) string {
	if path, ok := strings.CutPrefix(host, "unix://"); ok && path != "" {
		return path
	}
	return DefaultDockerSocket
}

// dockerCmdTimeout bounds one docker CLI call so a hung daemon fails the test
// instead of eating the whole go test timeout.
const dockerCmdTimeout = 3 * time.Minute

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (run the suite as root: make test)")
	}
}

// RequireDocker skips the test unless a dockerd answers on DockerSocket (or a tcp:// DOCKER_HOST) and
// DockerBin exists.
func RequireDocker(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(DockerBin); err != nil {
		t.Skipf("skipping: %s not found (install docker.io: scripts/install-deps.sh)", DockerBin)
	}
	if err := pingDocker(); err != nil {
		t.Skipf("skipping: no dockerd answering on %s (start one: scripts/start-dockerd.sh): %v", DockerSocket, err)
	}
}

// pingDocker asks dockerd's API for /_ping.
func pingDocker() error {
	c, base := dockerAPI(5 * time.Second)
	resp, err := c.Get(base + "/_ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_ping: %s", resp.Status)
	}
	return nil
}

// dockerAPI returns an HTTP client and base URL for the dockerd under test: DOCKER_HOST when it is
// tcp://host:port, else DockerSocket.
func dockerAPI(timeout time.Duration) (*http.Client, string) {
	if hostport, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "tcp://"); ok && hostport != "" {
		return &http.Client{Timeout: timeout}, "http://" + hostport
	}
	return unixClient(DockerSocket, timeout), "http://docker"
}

// unixClient returns an HTTP client that talks to the unix socket at path.
func unixClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		},
	}
}

// RepoRoot returns the repository root: the nearest folder above the working directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// EnsureTestImage builds TestImage with scripts/test-image.sh unless it exists.
func EnsureTestImage(t testing.TB) {
	t.Helper()
	if _, err := DockerErr("image", "inspect", TestImage); err == nil {
		return
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("EnsureTestImage: %v", err)
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "test-image.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/test-image.sh: %v\n%s", err, out)
	}
}

// Docker runs DockerBin with args and returns its trimmed stdout; it fails the test on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := DockerErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// DockerErr runs DockerBin with args and returns its trimmed stdout; on failure the error carries stderr.
func DockerErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, DockerBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	if err != nil {
		return out, fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// CleanupDocker registers a cleanup removing containers, then networks, whose names start with prefix.
// Call it after StartPlugin so it runs while the plugin still answers.
func CleanupDocker(t testing.TB, prefix string) {
	t.Helper()
	t.Cleanup(func() { RemoveDockerObjects(t, prefix) })
}

// RemoveDockerObjects removes containers and networks named prefix*, logging failures. A calico network
// goes only while a plugin answers (Docker asks the driver to delete it), and not at all while Docker's
// count of its endpoints is wrong: a long-standing libnetwork bug (moby/moby#42119), seen here after 100
// parallel removals, that makes it "have active endpoints" until dockerd restarts and recounts.
func RemoveDockerObjects(t testing.TB, prefix string) {
	t.Helper()
	if prefix == "" {
		t.Fatal("RemoveDockerObjects: empty prefix would remove everything")
	}
	if out, err := DockerErr("ps", "-a", "--format", "{{.Names}}"); err != nil {
		t.Logf("cleanup: %v", err)
	} else if names := withPrefix(out, prefix); len(names) > 0 {
		if _, err := DockerErr(append([]string{"rm", "-f", "-v"}, names...)...); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	if out, err := DockerErr("network", "ls", "--format", "{{.Name}}"); err != nil {
		t.Logf("cleanup: %v", err)
	} else {
		for _, n := range withPrefix(out, prefix) {
			if _, err := DockerErr("network", "rm", n); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
}

// TestPluginPrefix starts the names of the managed plugins (and their images) the tests install.
const TestPluginPrefix = "calico-test/"

// RemoveLeftoverPlugins removes, from the dockerd under test, the test plugins an interrupted earlier run
// may have left: an enabled one is a second calico-libnetwork on the host, next to which the daemon under
// test refuses to start. It returns the plugins removed; it does nothing when no dockerd answers.
func RemoveLeftoverPlugins() (removed []string, err error) {
	if pingDocker() != nil {
		return nil, nil
	}
	plugins, err := DockerErr("plugin", "ls", "--format", "{{.Name}}")
	if err != nil {
		return nil, err
	}
	for _, ref := range withPrefix(plugins, TestPluginPrefix) {
		if _, err := DockerErr("plugin", "rm", "-f", ref); err != nil {
			return removed, err
		}
		removed = append(removed, ref)
	}
	return removed, nil
}

// withPrefix returns the lines of out that start with prefix.
func withPrefix(out, prefix string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			names = append(names, line)
		}
	}
	return names
}

// UniqueName returns prefix followed by 6 random hex digits, short enough for interface and network names.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("UniqueName: %v", err)
	}
	return prefix + hex.EncodeToString(b)
}
