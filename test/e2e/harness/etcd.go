package harness

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

const (
	etcdBin          = "/usr/bin/etcd"
	etcdReadyTimeout = 20 * time.Second
)

// Etcd is a single-member etcd server of a test's own, on free loopback ports with a temporary data
// folder, that the test can take down and bring back (same data, same ports) under a running plugin.
type Etcd struct {
	t                  testing.TB
	dir, scheme        string
	clientURL, peerURL string
	tlsArgs            []string
	health             *http.Client
	logs               syncbuf.Buffer

	cmd  *exec.Cmd
	done chan struct{}
}

// StartEtcd starts a server and waits until it is healthy; it skips the test if there is no etcd binary and
// stops the server when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return startEtcd(t, newEtcd(t, "http"))
}

// StartEtcdTLS is StartEtcd for a server that speaks TLS to clients with pki's server certificate and
// admits only clients with a certificate signed by pki's CA.
func StartEtcdTLS(t testing.TB, pki datastore.PKIFiles) *Etcd {
	t.Helper()
	e := newEtcd(t, "https")
	e.tlsArgs = []string{"--cert-file", pki.ServerCert, "--key-file", pki.ServerKey,
		"--client-cert-auth", "--trusted-ca-file", pki.CACert}
	cert, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(pki.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	e.health.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
	return startEtcd(t, e)
}

func newEtcd(t testing.TB, scheme string) *Etcd {
	t.Helper()
	if _, err := exec.LookPath(etcdBin); err != nil {
		t.Skipf("skipping: %s not found (install etcd-server: scripts/install-deps.sh)", etcdBin)
	}
	return &Etcd{t: t, dir: t.TempDir(), scheme: scheme, clientURL: scheme + "://" + freeLoopbackPort(t), peerURL: "http://" + freeLoopbackPort(t),
		health: &http.Client{Timeout: time.Second}}
}

func startEtcd(t testing.TB, e *Etcd) *Etcd {
	t.Helper()
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("etcd output:\n%s", e.logs.String())
		}
	})
	// The ports were free when picked, but another process may bind one before etcd does: pick again.
	for attempt := 1; ; attempt++ {
		err := e.start()
		if err == nil {
			return e
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		e.clientURL, e.peerURL = e.scheme+"://"+freeLoopbackPort(t), "http://"+freeLoopbackPort(t)
		if err := os.RemoveAll(e.dir); err != nil {
			t.Fatal(err)
		}
	}
}

// errPortTaken: etcd found one of its ports in use at start.
var errPortTaken = errors.New("etcd's port was taken")

// Endpoint is the client URL, for ETCD_ENDPOINTS.
func (e *Etcd) Endpoint() string { return e.clientURL }

// Start (re)starts the server on its data and ports and waits until it answers.
func (e *Etcd) Start() {
	e.t.Helper()
	if err := e.start(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *Etcd) start() error {
	cmd := exec.Command(etcdBin, "--name", "e2e", "--data-dir", e.dir,
		"--listen-client-urls", e.clientURL, "--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "e2e="+e.peerURL)
	cmd.Args = append(cmd.Args, e.tlsArgs...)
	cmd.Stdout, cmd.Stderr = &e.logs, &e.logs
	if err := StartTied(cmd); err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	e.cmd, e.done = cmd, done
	deadline := time.Now().Add(etcdReadyTimeout)
	for {
		err := e.healthy()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			e.cmd = nil
			if strings.Contains(e.logs.String(), "address already in use") {
				return fmt.Errorf("%w:\n%s", errPortTaken, e.logs.String())
			}
			return fmt.Errorf("etcd exited at start:\n%s", e.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not healthy after %v: %v", etcdReadyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *Etcd) healthy() error {
	resp, err := e.health.Get(e.clientURL + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// Stop kills the server (SIGKILL, as in a crash) and waits for it to exit; it is a no-op when stopped.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	<-e.done
	e.cmd = nil
}

// freeLoopbackPort returns 127.0.0.1:PORT for a port that was free a moment ago.
func freeLoopbackPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
