package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// Metrics and health on a unix socket that only root (and its group) can reach, as a user of the plugin sees
// them: Docker's calls counted per method, this node's endpoints and pool usage, and a healthy datastore and
// dataplane.
func TestMetricsAndHealth(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	e := start(t, map[string]string{"CALICO_METRICS_ADDR": "unix:" + sock})
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("metrics socket %s: %v, %v; want mode 0660", sock, fi, err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get("http://metrics" + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// Healthy once the dataplane has synced with the datastore, moments after start.
	linktest.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		if code, body := get("/healthz"); code != http.StatusOK || !strings.Contains(body, `"datastore":"ok"`) {
			return fmt.Errorf("/healthz: %d %s", code, body)
		}
		return nil
	})
	net1 := e.network("net")
	e.run("c", "--net", net1)
	_, body := get("/metrics")
	for _, want := range []string{
		`calico_libnetwork_requests_total\{method="CreateEndpoint",result="ok",subsystem="NetworkDriver"\} 1\b`,
		`calico_libnetwork_requests_total\{method="RequestAddress",result="ok",subsystem="IpamDriver"\} [1-9]`,
		`calico_libnetwork_request_duration_seconds_count\{method="Join",subsystem="NetworkDriver"\} 1\b`,
		`calico_libnetwork_local_endpoints 1\b`,
		`calico_libnetwork_ipam_pool_addresses_in_use\{cidr="192\.168\.0\.0/16",pool="default-ipv4-ippool"\} 1\b`,
		`calico_libnetwork_dataplane_convergence_seconds_count [1-9]`,
	} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
