package libnetwork

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a handler served through Serve on a real unix socket.
type testServer struct {
	sock   string
	client *http.Client
	cancel context.CancelFunc
	// stop cancels the server and returns Serve's result; callable twice.
	stop func() error
}

// startServer serves h on a socket in a not-yet-existing directory, so that
// every test also exercises directory creation.
func startServer(t *testing.T, h http.Handler) *testServer {
	t.Helper()
	return startServerAt(t, filepath.Join(t.TempDir(), "plugins", "test.sock"), h)
}

func startServerAt(t *testing.T, sock string, h http.Handler) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, h) }()
	s := &testServer{sock: sock, client: unixClient(sock), cancel: cancel}
	s.stop = sync.OnceValue(func() error {
		cancel()
		s.client.CloseIdleConnections()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Serve did not return after cancel")
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Wait for a listener, not just a file: the file may be a stale socket
	// that Serve is about to replace.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s", sock)
		}
	}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// send makes one request and returns status, Content-Type and body. It does
// not touch t, so it may run outside the test goroutine.
func (s *testServer) send(ctx context.Context, method, path, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://plugin"+path, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(out), err
}

// do is send for the test goroutine.
func (s *testServer) do(t *testing.T, method, path, body string) (int, string, string) {
	t.Helper()
	status, ctype, out, err := s.send(context.Background(), method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, ctype, out
}

func TestServeSocketLifecycle(t *testing.T) {
	s := startServer(t, NewNetworkHandler(fakeNetwork{&recorder{}}, nil, nil))
	if status, _, body := s.do(t, "POST", "/Plugin.Activate", ""); status != http.StatusOK {
		t.Fatalf("Activate: %d %s", status, body)
	}
	fi, err := os.Lstat(s.sock)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o660 {
		t.Errorf("socket mode = %#o, want 0660", got)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("Serve returned %v after cancel, want nil", err)
	}
	if _, err := os.Lstat(s.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still present after shutdown (Lstat err %v)", err)
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "stale.sock")
	// A listener that is closed without unlinking leaves what a crashed
	// plugin leaves: a socket file nobody accepts on.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	s := startServerAt(t, sock, NewIpamHandler(fakeIpam{&recorder{}}, nil, nil))
	if status, _, body := s.do(t, "POST", "/Plugin.Activate", ""); status != http.StatusOK || body != `{"Implements":["IpamDriver"]}` {
		t.Fatalf("Activate on replaced socket: %d %s", status, body)
	}
}

func TestListenRefusesLiveSocketAndNonSocket(t *testing.T) {
	dir := t.TempDir()

	live := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := Listen(live); err == nil {
		l2.Close()
		t.Fatal("Listen took over a socket another listener serves")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen(live socket) error = %v, want 'in use'", err)
	}

	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Serve(context.Background(), file, http.NotFoundHandler()); err == nil {
		t.Fatal("Serve replaced a regular file")
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "keep me" {
		t.Errorf("regular file was touched: %q, %v", data, err)
	}
}

func TestServeFinishesInFlightCallsOnShutdown(t *testing.T) {
	rec := &recorder{}
	s := startServer(t, NewNetworkHandler(fakeNetwork{rec}, nil, nil))
	entered, release := make(chan struct{}), make(chan struct{})
	ctxErr := make(chan error, 1)
	rec.onCall(func(ctx context.Context) {
		close(entered)
		<-release
		ctxErr <- ctx.Err()
	})
	type result struct {
		status int
		body   string
	}
	got := make(chan result, 1)
	go func() {
		status, _, body, err := s.send(context.Background(), "POST", "/NetworkDriver.Leave", `{"NetworkID":"n","EndpointID":"e"}`)
		if err != nil {
			body = err.Error()
		}
		got <- result{status, body}
	}()
	<-entered
	s.cancel()
	// The listener closes (and the socket goes) as soon as shutdown starts.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Lstat(s.sock); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket not removed when shutdown started")
		}
	}
	close(release)
	if r := <-got; r.status != http.StatusOK || r.body != `{}` {
		t.Errorf("in-flight Leave = %d %s, want 200 {}", r.status, r.body)
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("request context cancelled by server shutdown: %v", err)
	}
}
