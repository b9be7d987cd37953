package datastore

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// testCA is a certificate authority made up for one test, its certificate written to file.
type testCA struct {
	ca   *authority
	file string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	ca, err := newAuthority(name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCA{ca: ca, file: filepath.Join(dir, name+".pem")}
	writeTestFile(t, tc.file, ca.certPEM())
	return tc
}

// issue writes a certificate and key signed by the CA, returning the two file names.
func (tc *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	cert, key, err := tc.ca.issue(name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), []x509.ExtKeyUsage{usage}, ips...)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writeTestFile(t, certFile, cert)
	writeTestFile(t, keyFile, key)
	return certFile, keyFile
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel() // the suites use separate servers; overlapping them keeps the package quick
	needEtcdBinary(t)
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	serverCert, serverKey := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	clientCert, clientKey := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	otherCA := newTestCA(t, dir, "other-ca")
	strangerCert, strangerKey := otherCA.issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth)

	p := newEtcdProcess(t, "https", []string{
		"--cert-file", serverCert, "--key-file", serverKey,
		"--client-cert-auth", "--trusted-ca-file", ca.file,
	})
	good, err := Connect(ClientConfig{Endpoints: []string{p.clientURL}, CACertFile: ca.file, CertFile: clientCert, Key: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	p.start(t, func() error { return good.Ping(ctxT(t)) })

	t.Run("RightCAAndClientCert", func(t *testing.T) {
		ctx := ctxT(t)
		if err := good.WaitReady(ctx, testLog(t)); err != nil {
			t.Fatal(err)
		}
		prof := newProfile("tls-net")
		if err := good.Create(ctx, prof); err != nil {
			t.Fatal(err)
		}
		got, err := Get[*api.Profile](ctx, good, "", "tls-net")
		if err != nil || got.UID != prof.UID {
			t.Fatalf("get over TLS: %v %v", got, err)
		}
		got.Spec.LabelsToApply["x"] = "y"
		if err := good.Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := good.DeleteResource(ctx, api.KindOf(got), "", "tls-net", got.ResourceVersion); err != nil {
			t.Fatal(err)
		}
	})

	// Certificate problems cannot be fixed by retrying: WaitReady must say so at once.
	fails := []struct {
		name string
		cfg  ClientConfig
	}{
		{"WrongCA", ClientConfig{CACertFile: otherCA.file, CertFile: clientCert, Key: clientKey}},
		{"ClientCertFromWrongCA", ClientConfig{CACertFile: ca.file, CertFile: strangerCert, Key: strangerKey}},
		{"NoClientCert", ClientConfig{CACertFile: ca.file}},
		{"NameNotInServerCert", ClientConfig{Endpoints: []string{strings.Replace(p.clientURL, "127.0.0.1", "localhost", 1)},
			CACertFile: ca.file, CertFile: clientCert, Key: clientKey}},
	}
	for _, f := range fails {
		t.Run(f.name, func(t *testing.T) {
			if f.cfg.Endpoints == nil {
				f.cfg.Endpoints = []string{p.clientURL}
			}
			expectCertificateRefusal(t, f.cfg)
		})
	}

	t.Run("PlainHTTPClientAgainstHTTPS", func(t *testing.T) {
		// Not a certificate problem: WaitReady keeps waiting until its context ends.
		s, err := Connect(ClientConfig{Endpoints: []string{strings.Replace(p.clientURL, "https://", "http://", 1)}, RequestTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		if err := s.WaitReady(ctx, quietLog()); err == nil || !strings.Contains(err.Error(), "gave up waiting") {
			t.Errorf("WaitReady: %v", err)
		}
	})
}

// expectCertificateRefusal checks that WaitReady with cfg gives up at once with an error naming the
// certificate problem and the endpoint.
func expectCertificateRefusal(t *testing.T, cfg ClientConfig) {
	t.Helper()
	s, err := Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err = s.WaitReady(ctx, testLog(t))
	took := time.Since(start)
	if err == nil {
		t.Fatal("WaitReady succeeded with bad TLS settings")
	}
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
	if took > 15*time.Second {
		t.Errorf("WaitReady took %s to give up on a TLS failure", took)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error does not mention the certificate: %v", err)
	}
	if !strings.Contains(err.Error(), cfg.Endpoints[0]) {
		t.Errorf("error does not name the endpoint: %v", err)
	}
}

func TestConnectTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	cert, key := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name     string
		cfg      ClientConfig
		mentions []string
	}{
		{"missing client cert file", ClientConfig{CACertFile: ca.file, CertFile: missing, Key: key}, []string{"ETCD_CERT_FILE", missing}},
		{"missing key file", ClientConfig{CACertFile: ca.file, CertFile: cert, Key: missing}, []string{"ETCD_KEY_FILE", missing}},
		{"key does not match", ClientConfig{CertFile: cert, Key: ca.file}, []string{"ETCD_CERT_FILE"}},
		{"cert without key", ClientConfig{CertFile: cert}, []string{"ETCD_CERT_FILE", "ETCD_KEY_FILE"}},
		{"key without cert", ClientConfig{Key: key}, []string{"ETCD_CERT_FILE", "ETCD_KEY_FILE"}},
		{"missing CA file", ClientConfig{CACertFile: missing}, []string{"ETCD_CA_CERT_FILE", missing}},
		{"CA file not PEM", ClientConfig{CACertFile: notPEM}, []string{"ETCD_CA_CERT_FILE", notPEM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Endpoints = []string{"https://127.0.0.1:1"}
			s, err := Connect(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Connect accepted a broken TLS configuration")
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	// The good combination loads; with nothing listening WaitReady keeps waiting (no TLS verdict yet).
	s, err := Connect(ClientConfig{Endpoints: []string{"https://127.0.0.1:" + strconv.Itoa(freePort(t))}, CACertFile: ca.file,
		CertFile: cert, Key: key, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, quietLog()); err == nil || !strings.Contains(err.Error(), "gave up waiting") {
		t.Errorf("WaitReady against nothing: %v", err)
	}
}

func TestUnreachableEtcd(t *testing.T) {
	// Nothing listens: requests fail within the request timeout and name the endpoint; WaitReady retries
	// until its context ends.
	url := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	s, err := Connect(ClientConfig{Endpoints: []string{url}, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = s.Get(context.Background(), "/calico/x")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("get against nothing: %v after %s", err, time.Since(start))
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "/calico/x") {
		t.Errorf("error %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = s.WaitReady(ctx, quietLog())
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") || !strings.Contains(err.Error(), url) {
		t.Errorf("WaitReady: %v", err)
	}
}
