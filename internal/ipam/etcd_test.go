package ipam

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// etcdBinary is Debian's etcd (package etcd-server), used to test against a separate etcd process that
// can be killed and restarted.
const etcdBinary = "/usr/bin/etcd"

type externalEtcd struct {
	dir, clientURL, peerURL string
	cmd                     *exec.Cmd
}

// startExternalEtcd runs etcd in its own process for the rest of the test, or skips the test if the
// binary is missing.
func startExternalEtcd(tb testing.TB) *externalEtcd {
	tb.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		tb.Skipf("external etcd: %s is not installed (apt-get install etcd-server)", etcdBinary)
	}
	e := &externalEtcd{dir: tb.TempDir(), clientURL: freeURL(tb), peerURL: freeURL(tb)}
	e.start(tb)
	tb.Cleanup(e.kill)
	return e
}

func freeURL(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// start launches etcd on the same data directory and ports, and waits until it answers.
func (e *externalEtcd) start(tb testing.TB) {
	tb.Helper()
	logFile, err := os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	e.cmd = exec.Command(etcdBinary, "--name", "default", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.clientURL, "--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "default="+e.peerURL)
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	if err := e.cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", etcdBinary, err)
	}
	s := e.connect(tb)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for s.Ping(ctx) != nil {
		if ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
			tb.Fatalf("etcd did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops etcd abruptly (SIGKILL), as a crash would.
func (e *externalEtcd) kill() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
		e.cmd = nil
	}
}

// connect returns a client of this etcd; the caller closes it.
func (e *externalEtcd) connect(tb testing.TB) *datastore.Store {
	tb.Helper()
	s, err := datastore.Connect(datastore.ClientConfig{Endpoints: []string{e.clientURL}, RequestTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
