package daemon

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	if err := notify("", "READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
	for name, addr := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": "@calico-libnetwork-test-" + t.Name(),
	} {
		t.Run(name, func(t *testing.T) {
			listen := addr
			if listen[0] == '@' {
				listen = "\x00" + listen[1:]
			}
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: listen, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := notify(addr, "READY=1"); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil || string(buf[:n]) != "READY=1" {
				t.Fatalf("systemd got %q, %v; want READY=1", buf[:n], err)
			}
		})
	}
	if err := notify(filepath.Join(t.TempDir(), "absent"), "READY=1"); err == nil {
		t.Fatal("no error for a NOTIFY_SOCKET nobody listens on")
	}
}
