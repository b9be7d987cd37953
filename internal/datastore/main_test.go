package datastore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"
)

// The embedded etcd and store shared by the tests of this package (started once in TestMain).
var (
	embeddedDir string
	embedded    *Embedded
	store       *Store
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp(shmOrTemp(), "datastore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	embeddedDir = dir
	embedded, err = StartEmbedded(dir, quietLog())
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting embedded etcd:", err)
		return 1
	}
	store, err = Connect(embedded.ClientConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "connecting to embedded etcd:", err)
		return 1
	}
	code := m.Run()
	store.Close()
	embedded.Close()
	return code
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLog sends log lines to the test's output (shown with -v or on failure).
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proxy is a TCP relay in front of etcd: Cut breaks every connection through it and refuses new ones
// (the client sees etcd vanish while etcd itself keeps running), Restore lets connections through again,
// possibly to a new address. It gives a client a stable endpoint while the server behind it restarts.
// TLS passes through it untouched (both are on 127.0.0.1, the name in the embedded etcd's certificate).
type proxy struct {
	ln     net.Listener
	scheme string
	mu     sync.Mutex
	target string
	cut    bool
	conns  map[net.Conn]struct{}
}

// newProxy relays to the etcd that cfg reaches and returns cfg pointed at the relay instead.
func newProxy(t *testing.T, cfg ClientConfig) (*proxy, ClientConfig) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, scheme: u.Scheme, target: u.Host, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	cfg.Endpoints = []string{p.scheme + "://" + p.ln.Addr().String()}
	return p, cfg
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut, target := p.cut, p.target
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut drops all connections and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again, to target (host:port).
func (p *proxy) Restore(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.target = target
}

func listenOn(hostport string) (net.Listener, error) { return net.Listen("tcp", hostport) }

// shmOrTemp is where test etcd data goes: /dev/shm when there is one (etcd's fsyncs are then cheap).
func shmOrTemp() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}
