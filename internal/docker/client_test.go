package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker/dockertest"
	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

// ipamV6NoSubnet is the IPAM of a dual-stack calico-ipam network made without --subnet as Docker 20.10
// reports it: the IPv6 gateway with its prefix length, which Docker's API types refuse as an address.
const ipamV6NoSubnet = `"IPAM":{"Driver":"calico-ipam","Options":{},"Config":[{"Subnet":"0.0.0.0/0","Gateway":"0.0.0.0"},` +
	`{"Subnet":"::/0","Gateway":"::/0"}]}`

// engine answers the calls the plugin makes as an engine of one API version does: Docker's client first
// asks /_ping for the version, then puts it before every path. Real engines are the e2e tests' (test/e2e
// TestDockerAPIOverTLS); this one lets a test count log lines and break the connection at will.
type engine struct {
	version string
	mu      sync.Mutex
	paths   []string
}

func (e *engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.paths = append(e.paths, r.URL.Path)
	e.mu.Unlock()
	if r.URL.Path == "/_ping" {
		w.Header().Set("Api-Version", e.version)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch strings.TrimPrefix(r.URL.Path, "/v"+e.version) {
	case "/networks":
		_, _ = w.Write([]byte(`[{"Id":"n1","Name":"web","Driver":"calico",` + ipamV6NoSubnet + `,"Containers":{}}]`))
	case "/networks/n1":
		_, _ = w.Write([]byte(`{"Id":"n1","Name":"web","Driver":"calico",` + ipamV6NoSubnet + `,"Containers":{"c1":{"EndpointID":"e1",` +
			`"IPv4Address":"10.65.0.7/32","IPv6Address":"fd80::7/128"}}}`))
	case "/containers/c1/json":
		_, _ = w.Write([]byte(`{"Id":"c1","Config":{"Labels":{"org.projectcalico.label.role":"db"}}}`))
	case "/events":
		_ = json.NewEncoder(w).Encode(map[string]any{"Type": "network", "Action": "create",
			"Actor": map[string]any{"ID": "n2", "Attributes": map[string]string{"name": "db", "type": "calico"}}})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"no such object"}`))
	}
}

// newClient is a Client and what it logs.
func newClient(t *testing.T, cfg Config) (*Client, *syncbuf.Buffer) {
	t.Helper()
	l := &syncbuf.Buffer{}
	c, err := New(cfg, slog.New(slog.NewTextHandler(l, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, l
}

func newPKI(t *testing.T, name string) datastore.PKIFiles {
	t.Helper()
	pki, err := datastore.LoadOrCreatePKI(filepath.Join(t.TempDir(), name), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return pki
}

// tlsEngine serves e over TLS on 127.0.0.1, admitting only client certificates signed by pki's CA, as
// dockerd --tlsverify does.
func tlsEngine(t *testing.T, e *engine, pki datastore.PKIFiles) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cas := x509.NewCertPool()
	cas.AppendCertsFromPEM(caPEM)
	srv := httptest.NewUnstartedServer(e)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cas}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "tcp://" + srv.Listener.Addr().String()
}

// Over TLS with the right certificates, the client takes the engine's API version (an old engine's and a
// current one's), reads networks (one with Docker 20.10's "::/0" gateway), endpoints, labels and events,
// and logs that the engine answers once.
func TestTLSAndVersionNegotiation(t *testing.T) {
	pki := newPKI(t, "pki")
	for _, version := range []string{"1.41", "1.56"} {
		t.Run(version, func(t *testing.T) {
			e := &engine{version: version}
			host := tlsEngine(t, e, pki)
			c, logs := newClient(t, Config{Host: host, CertPath: dockertest.CertDir(t, pki.CACert, pki.ClientCert, pki.ClientKey)})
			ctx := context.Background()

			n, err := c.Network(ctx, "n1")
			if err != nil {
				t.Fatal(err)
			}
			want := NetworkEndpoint{EndpointID: "e1", IPv4Address: netip.MustParsePrefix("10.65.0.7/32"),
				IPv6Address: netip.MustParsePrefix("fd80::7/128")}
			if n.Name != "web" || n.Driver != "calico" || n.Containers["c1"] != want {
				t.Errorf("network %+v", n)
			}
			list, err := c.Networks(ctx)
			if err != nil || len(list) != 1 || list[0].ID != "n1" || list[0].Name != "web" {
				t.Errorf("networks %+v, %v", list, err)
			}
			labels, err := c.ContainerLabels(ctx, "c1")
			if err != nil || labels["org.projectcalico.label.role"] != "db" {
				t.Errorf("labels %v, %v", labels, err)
			}
			if _, err := c.Network(ctx, "gone"); !errors.Is(err, ErrNotFound) {
				t.Errorf("unknown network: %v, want ErrNotFound", err)
			}
			got := make(chan NetworkEvent, 1)
			wctx, cancel := context.WithCancel(ctx)
			go func() { _ = c.WatchNetworks(wctx, func(ev NetworkEvent) { got <- ev; cancel() }) }()
			select {
			case ev := <-got:
				if ev != (NetworkEvent{Action: "create", ID: "n2", Name: "db", Driver: "calico"}) {
					t.Errorf("event %+v", ev)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no network event")
			}

			e.mu.Lock()
			paths := strings.Join(e.paths, " ")
			e.mu.Unlock()
			if !strings.Contains(paths, "/v"+version+"/networks/n1") {
				t.Errorf("API version %s not used: %s", version, paths)
			}
			if n := strings.Count(logs.String(), "Docker API answers"); n != 1 || strings.Count(logs.String(), "api_version="+version) != 1 {
				t.Errorf("want one line saying the engine answers with API %s:\n%s", version, logs)
			}
		})
	}
}

// A client certificate the engine does not accept: every call fails with a short error, and why is
// logged once, however often the background loops retry.
func TestWrongCertificateLoggedOnce(t *testing.T) {
	pki, other := newPKI(t, "pki"), newPKI(t, "other")
	host := tlsEngine(t, &engine{version: "1.41"}, pki)
	c, logs := newClient(t, Config{Host: host, CertPath: dockertest.CertDir(t, pki.CACert, other.ClientCert, other.ClientKey)})
	ctx := context.Background()
	for range 5 {
		if _, err := c.Networks(ctx); err == nil || !strings.Contains(err.Error(), "is unusable") {
			t.Errorf("Networks: %v", err)
		}
		if _, err := c.Network(ctx, "n1"); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Network: %v", err)
		}
		if _, err := c.ContainerLabels(ctx, "c1"); err == nil {
			t.Error("ContainerLabels answered")
		}
	}
	if err := c.WatchNetworks(ctx, func(NetworkEvent) {}); err == nil {
		t.Error("WatchNetworks answered")
	}
	if strings.Count(logs.String(), "Docker API unusable") != 1 || strings.Count(logs.String(), "certificate") != 1 || strings.Count(logs.String(), "Docker API answers") != 0 {
		t.Errorf("want one line telling the certificate was refused:\n%s", logs)
	}
}

// A certificate directory without the files is a configuration error, at start.
func TestMissingCertificates(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Config{Host: "tcp://127.0.0.1:2376", CertPath: dir}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "DOCKER_CERT_PATH="+dir) || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("got %v, want an error naming DOCKER_CERT_PATH and the missing file", err)
	}
}

// An engine that is not there yet, then answers, then goes: one line for each change.
func TestEngineComesAndGoes(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	c, logs := newClient(t, Config{Host: "unix://" + sock})
	ctx := context.Background()
	for range 3 {
		if _, err := c.Networks(ctx); err == nil {
			t.Fatal("answered without an engine")
		}
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &engine{version: "1.41"}}
	go func() { _ = srv.Serve(l) }()
	for range 3 {
		if _, err := c.Networks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv.Close()
	for range 3 {
		if _, err := c.Networks(ctx); err == nil {
			t.Fatal("answered after the engine went")
		}
	}
	if strings.Count(logs.String(), "Docker API unusable") != 2 || strings.Count(logs.String(), "Docker API answers") != 1 {
		t.Errorf("want unusable, answers, unusable:\n%s", logs)
	}
}
