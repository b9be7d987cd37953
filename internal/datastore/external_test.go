package datastore

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

const etcdBinary = "/usr/bin/etcd"

// etcdProcess is Debian's etcd run by a test: random free ports, a temporary data directory, killed at the
// end of the test.
type etcdProcess struct {
	dir, clientURL, peerURL string
	extra                   []string // e.g. TLS flags
	cmd                     *exec.Cmd
	done                    chan struct{}
	stderr                  *syncbuf.Buffer
}

func needEtcdBinary(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("external etcd tests need %s (apt-get install etcd-server): %v", etcdBinary, err)
	}
}

// newEtcdProcess prepares etcd with the given client scheme and extra flags (call start to run it).
func newEtcdProcess(t *testing.T, scheme string, extra []string) *etcdProcess {
	t.Helper()
	needEtcdBinary(t)
	// /dev/shm keeps etcd's fsyncs cheap; fall back to the usual temp dir.
	dir, err := os.MkdirTemp("/dev/shm", "etcd-test-")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	p := &etcdProcess{
		dir:       dir,
		clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t)),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		extra:     extra,
	}
	t.Cleanup(p.kill)
	return p
}

func (p *etcdProcess) start(t *testing.T, ready func() error) {
	t.Helper()
	args := append([]string{
		"--name", "test",
		"--data-dir", p.dir,
		"--listen-client-urls", p.clientURL,
		"--advertise-client-urls", p.clientURL,
		"--listen-peer-urls", p.peerURL,
		"--initial-advertise-peer-urls", p.peerURL,
		"--initial-cluster", "test=" + p.peerURL,
		"--logger", "zap",
		"--log-level", "error",
	}, p.extra...)
	p.cmd = exec.Command(etcdBinary, args...)
	p.stderr = &syncbuf.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	// Never outlive the test binary.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", etcdBinary, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)

	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("etcd exited: %s", p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("etcd not ready after 20s: %v\n%s", err, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops etcd the hard way (SIGKILL), as a crash would, and waits for it to exit.
func (p *etcdProcess) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// externalServer adapts an etcdProcess to the suite.
type externalServer struct {
	p *etcdProcess
	s *Store
}

func (e *externalServer) ClientConfig() ClientConfig {
	return ClientConfig{Endpoints: []string{e.p.clientURL}}
}

func (e *externalServer) Restart(t *testing.T) {
	t.Helper()
	e.p.kill()
	e.p.start(t, func() error { return e.s.Ping(ctxT(t)) })
}

func TestExternalSuite(t *testing.T) {
	t.Parallel() // the suites use separate servers; overlapping them keeps the package quick
	p := newEtcdProcess(t, "http", nil)
	s, err := Connect(ClientConfig{Endpoints: []string{p.clientURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p.start(t, func() error { return s.Ping(ctxT(t)) })
	runSuite(t, s, &externalServer{p: p, s: s})
}
