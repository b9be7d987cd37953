package harness

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the daemon and the CLI: started
// through a symlink named calico-libnetwork or calicoctl, it acts as a fake of
// that program, so the Plugin helpers are tested without the real binaries.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "calico-libnetwork":
		fakePlugin()
	case "calicoctl":
		fakeCalicoctl()
	}
	os.Exit(m.Run())
}

// fakePlugin answers the two GetCapabilities calls until SIGTERM.
func fakePlugin() {
	if os.Getenv("FAKE_PLUGIN_EXIT") != "" {
		fmt.Fprintln(os.Stderr, "fake plugin: exiting at once")
		os.Exit(1)
	}
	dir := os.Getenv("CALICO_LIBNETWORK_PLUGIN_DIR")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /NetworkDriver.GetCapabilities", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"Scope":"local"}`)
	})
	mux.HandleFunc("POST /IpamDriver.GetCapabilities", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"RequiresMACAddress":false}`)
	})
	for _, name := range []string{networkSocket, ipamSocket} {
		path := filepath.Join(dir, name)
		os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake plugin:", err)
			os.Exit(1)
		}
		go http.Serve(l, mux)
	}
	fmt.Printf("fake plugin up, data dir %s\n", os.Getenv("CALICO_DATA_DIR"))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("fake plugin: got SIGTERM")
	os.Exit(0)
}

// fakeCalicoctl prints its data dir and arguments; "fail" as first argument makes it fail.
func fakeCalicoctl() {
	if len(os.Args) > 1 && os.Args[1] == "fail" {
		fmt.Fprintln(os.Stderr, "fake calicoctl: asked to fail")
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", os.Getenv("CALICO_DATA_DIR"), strings.Join(os.Args[1:], " "))
	os.Exit(0)
}

// fakeBinaries links the test binary under the daemon's and CLI's names.
func fakeBinaries(t *testing.T) Binaries {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := Binaries{Plugin: filepath.Join(dir, "calico-libnetwork"), Calicoctl: filepath.Join(dir, "calicoctl")}
	for _, p := range []string{b.Plugin, b.Calicoctl} {
		if err := os.Symlink(self, p); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestPluginLifecycleWithFake(t *testing.T) {
	bins := fakeBinaries(t)
	pluginDir := t.TempDir()
	p := StartPlugin(t, bins, map[string]string{"CALICO_LIBNETWORK_PLUGIN_DIR": pluginDir})

	if p.PluginDir() != pluginDir || p.DataDir() == "" {
		t.Fatalf("PluginDir %q DataDir %q", p.PluginDir(), p.DataDir())
	}
	if !strings.Contains(strings.Join(p.Env(), "\n"), "CALICO_DATA_DIR="+p.DataDir()) {
		t.Fatal("Env() lacks CALICO_DATA_DIR")
	}
	out, err := p.Calicoctl("get", "ippools")
	if err != nil || out != p.DataDir()+" get ippools\n" {
		t.Fatalf("Calicoctl = %q, %v", out, err)
	}
	if _, err := p.Calicoctl("fail"); err == nil || !strings.Contains(err.Error(), "asked to fail") {
		t.Fatalf("Calicoctl(fail) error = %v, want stderr in it", err)
	}

	// A second daemon on the same sockets is refused.
	rec := &recordingTB{TB: t}
	StartPlugin(rec, bins, map[string]string{"CALICO_LIBNETWORK_PLUGIN_DIR": pluginDir})
	if !strings.Contains(rec.fatal, "already answers") {
		t.Fatalf("second StartPlugin: %q, want 'already answers'", rec.fatal)
	}

	p.Restart()
	if strings.Count(p.Logs(), "fake plugin up, data dir "+p.DataDir()) != 2 {
		t.Fatalf("after Restart, logs:\n%s", p.Logs())
	}
	if !strings.Contains(p.Logs(), "got SIGTERM") {
		t.Fatalf("Restart did not SIGTERM the daemon; logs:\n%s", p.Logs())
	}

	p.Kill()
	if !p.Exited() {
		t.Fatal("Exited() false after Kill")
	}
	if err := pingPlugin(filepath.Join(pluginDir, networkSocket), "/NetworkDriver.GetCapabilities"); err == nil {
		t.Fatal("socket still answers after Kill")
	}
	p.Stop() // no-op once exited
}

func TestPluginDaemonExitsEarly(t *testing.T) {
	bins := fakeBinaries(t)
	rec := &recordingTB{TB: t}
	start := time.Now()
	StartPlugin(rec, bins, map[string]string{
		"CALICO_LIBNETWORK_PLUGIN_DIR": t.TempDir(),
		"FAKE_PLUGIN_EXIT":             "1",
	})
	if !strings.Contains(rec.fatal, "exited before") || !strings.Contains(rec.fatal, "exiting at once") {
		t.Fatalf("StartPlugin failure = %q, want the exit and the daemon's output", rec.fatal)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("StartPlugin took %v to notice", time.Since(start))
	}
}
