package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// The systemd unit passes systemd's own checks, and the daemon it starts (Type=notify) reports ready only
// once both plugin sockets accept connections: docker.service, ordered after it, then finds the plugin.
func TestSystemdUnit(t *testing.T) {
	harness.RequireRoot(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "packaging/systemd/calico-libnetwork.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("Type=notify")) || !bytes.Contains(unit, []byte("Before=docker.service")) {
		t.Errorf("the unit must be Type=notify and start Before=docker.service:\n%s", unit)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: the unit's syntax is not checked")
	} else {
		installed := filepath.Join(t.TempDir(), "calico-libnetwork.service")
		unit := bytes.ReplaceAll(unit, []byte("/usr/local/bin/calico-libnetwork"), []byte(bins.Plugin))
		if err := os.WriteFile(installed, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(analyze, "verify", installed).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(bins.Plugin, "--version").Output(); err != nil || strings.TrimSpace(string(out)) == "" {
		t.Errorf("calico-libnetwork --version: %q, %v", out, err)
	}

	dir := t.TempDir()
	notify := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pluginDir := filepath.Join(dir, "plugins")
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) != "READY=1" {
			err = fmt.Errorf("systemd was sent %q, want READY=1", buf[:n])
		}
		// Both sockets must already accept connections when systemd hears the daemon is ready.
		for _, name := range []string{"calico.sock", "calico-ipam.sock"} {
			if err != nil {
				break
			}
			var c net.Conn
			if c, err = net.Dial("unix", filepath.Join(pluginDir, name)); err == nil {
				c.Close()
			}
		}
		ready <- err
	}()
	harness.StartPlugin(t, bins, map[string]string{
		"NOTIFY_SOCKET": notify, "CALICO_LIBNETWORK_PLUGIN_DIR": pluginDir, "CALICO_DATAPLANE": "none",
	})
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("readiness notification: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the daemon never told systemd it was ready")
	}
}
