package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

// The plugin serves Docker only once its dataplane has programmed the datastore's state. While etcd
// cannot be reached the sockets do not exist, systemd hears only why (STATUS=), and the log says why;
// once etcd answers and the agent has synced, the sockets appear, and only then READY=1.
func TestReadyOnlyAfterSync(t *testing.T) {
	host := linktest.Host(t)
	etcd := datastoretest.Start(t)
	// etcd's address as the daemon knows it refuses connections until the test forwards it to etcd.
	addr := freeAddr(t)
	client := etcd.Client
	client.Endpoints = []string{"https://" + addr}
	store, err := datastore.Connect(client)
	linktest.Must(t, err)
	t.Cleanup(func() { store.Close() })

	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), nil))
	agent := dataplane.New(dataplane.Config{Node: handoverNode, Netns: host}, store, log)
	linktest.Must(t, agent.Start())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { agent.Run(ctx); close(ran) }()

	dir := t.TempDir()
	systemd := listenUnixgram(t, filepath.Join(dir, "notify"))
	cfg := &config.Config{NodeName: handoverNode, PluginDir: filepath.Join(dir, "plugins"), NotifySocket: systemd.LocalAddr().String()}
	sockets := map[string]http.Handler{NetworkSocket: http.NotFoundHandler(), IpamSocket: http.NotFoundHandler()}
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, sockets, agent, store, "test", log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		<-ran
	})

	// etcd unreachable: systemd is told why, and so is the log; no socket exists.
	msg := readNotify(t, systemd, syncReportInterval+30*time.Second)
	if !strings.HasPrefix(msg, "STATUS=not ready: the datastore has not yet listed") {
		t.Errorf("systemd was first told %q, want the reason the plugin is not ready", msg)
	}
	if !strings.Contains(logs.String(), "not ready") || !strings.Contains(logs.String(), "datastore=") {
		t.Errorf("the log does not say why the plugin is not ready, nor what the datastore answers:\n%s", logs)
	}
	for name := range sockets {
		if _, err := os.Stat(filepath.Join(cfg.PluginDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s exists before the dataplane synced (%v)", name, err)
		}
	}

	// etcd reachable: the agent syncs, then the sockets accept calls, then systemd hears READY=1.
	forward(t, addr, strings.TrimPrefix(etcd.Client.Endpoints[0], "https://"))
	msg = readNotify(t, systemd, time.Minute)
	for strings.HasPrefix(msg, "STATUS=") {
		msg = readNotify(t, systemd, time.Minute)
	}
	if msg != "READY=1" {
		t.Fatalf("systemd was told %q, want READY=1", msg)
	}
	if agent.SyncStatus() != nil {
		t.Errorf("READY=1 before the dataplane synced: %v", agent.SyncStatus())
	}
	for name := range sockets {
		c, err := net.Dial("unix", filepath.Join(cfg.PluginDir, name))
		if err != nil {
			t.Errorf("socket %s does not accept calls at READY=1: %v", name, err)
			continue
		}
		c.Close()
	}
}

// With the dataplane off (CALICO_DATAPLANE=none) the plugin is ready as soon as the datastore is.
func TestReadyWithoutDataplane(t *testing.T) {
	dir := t.TempDir()
	systemd := listenUnixgram(t, filepath.Join(dir, "notify"))
	cfg := &config.Config{PluginDir: filepath.Join(dir, "plugins"), NotifySocket: systemd.LocalAddr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, cfg, map[string]http.Handler{NetworkSocket: http.NotFoundHandler()}, nil, nil, "test",
			slog.New(slog.NewTextHandler(t.Output(), nil)))
	}()
	if msg := readNotify(t, systemd, 10*time.Second); msg != "READY=1" {
		t.Errorf("systemd was told %q, want READY=1", msg)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	linktest.Must(t, err)
	defer l.Close()
	return l.Addr().String()
}

// forward listens on addr and pipes every connection to target until the test ends.
func forward(t *testing.T, addr, target string) {
	l, err := net.Listen("tcp", addr)
	linktest.Must(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

func listenUnixgram(t *testing.T, path string) *net.UnixConn {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	linktest.Must(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readNotify returns the next message sent to the notify socket.
func readNotify(t *testing.T, conn *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := conn.Read(buf)
	linktest.Must(t, err)
	return string(buf[:n])
}
