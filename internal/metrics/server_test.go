package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestStart(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := freeAddr(t)
	if err := Start(ctx, addr, New().Handler(sources(t), log), log); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]struct {
		code int
		body string
	}{
		"/metrics": {http.StatusOK, "calico_libnetwork_local_endpoints 0"},
		"/healthz": {http.StatusOK, `"status":"ok"`},
		"/other":   {http.StatusNotFound, ""},
	} {
		code, body, err := get("http://" + addr + path)
		if err != nil || code != want.code || !strings.Contains(body, want.body) {
			t.Errorf("GET %s = %d %q %v, want %d with %q", path, code, body, err, want.code, want.body)
		}
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("loopback address warned about: %s", logs.String())
	}

	// A busy address stops start-up, naming the variable.
	if err := Start(ctx, addr, http.NotFoundHandler(), log); err == nil || !strings.Contains(err.Error(), "CALICO_METRICS_ADDR") {
		t.Errorf("second server on %s: %v", addr, err)
	}

	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, err := get("http://" + addr + "/healthz"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server still answering 5s after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Metrics name the node and its pools: an address other hosts can reach is served, with a warning.
func TestStartWarnsOffLoopback(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(ctx, ":"+port, http.NotFoundHandler(), log); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "127.0.0.1:9091") {
		t.Errorf("no warning for an address reachable from other hosts: %s", out)
	}
	if _, _, err := get(fmt.Sprintf("http://127.0.0.1:%s/", port)); err != nil {
		t.Errorf("not served: %v", err)
	}
}
