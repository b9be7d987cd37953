package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

const (
	pluginReadyTimeout = 30 * time.Second
	pluginStopTimeout  = 10 * time.Second
	networkSocket      = "calico.sock"
	ipamSocket         = "calico-ipam.sock"
)

// Binaries are the paths of the built daemon and CLI.
type Binaries struct {
	Plugin    string // calico-libnetwork
	Calicoctl string // calicoctl
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]Binaries{}
)

// BuildBinaries builds ./cmd/calico-libnetwork and ./cmd/calicoctl into dir, once per dir and test process;
// with HARNESS_RACE=1 they are built with -race.
func BuildBinaries(dir string) (Binaries, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[dir]; ok {
		return b, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	b := Binaries{
		Plugin:    filepath.Join(dir, "calico-libnetwork"),
		Calicoctl: filepath.Join(dir, "calicoctl"),
	}
	for _, target := range []struct{ pkg, out string }{
		{"./cmd/calico-libnetwork", b.Plugin},
		{"./cmd/calicoctl", b.Calicoctl},
	} {
		if err := goBuild(root, target.pkg, target.out); err != nil {
			return Binaries{}, err
		}
	}
	buildCache[dir] = b
	return b, nil
}

// goBuild builds pkg (relative to root) to out, through a temporary file so a reader never sees half a binary.
func goBuild(root, pkg, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	args := []string{"build", "-o", tmp, "-ldflags", "-X main.version=e2e"}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("HARNESS_RACE") == "1" {
		args = append(args, "-race")
		env = append(os.Environ(), "CGO_ENABLED=1")
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir, cmd.Env = root, env
	if output, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, output)
	}
	return os.Rename(tmp, out)
}

// Plugin is a running calico-libnetwork daemon started by StartPlugin.
type Plugin struct {
	t         testing.TB
	bins      Binaries
	env       []string
	dataDir   string
	pluginDir string
	logs      syncbuf.Buffer
	command   func() *exec.Cmd // the process that runs the daemon, before env and output are attached

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartPlugin runs the daemon with env added to this process's environment, in a fresh temporary
// CALICO_DATA_DIR unless env sets one, and waits until both plugin sockets answer.
// It registers a cleanup that stops the daemon and logs its output if the test failed.
func StartPlugin(t testing.TB, bins Binaries, env map[string]string) *Plugin {
	t.Helper()
	return StartPluginVia(t, bins, env, func() *exec.Cmd { return exec.Command(bins.Plugin) })
}

// StartPluginVia is StartPlugin with the daemon run by the process command returns (`make run-plugin` in
// namespaces of a test's, say) instead of bins.Plugin; that process is given the environment, is signalled
// as the daemon would be (SIGTERM to stop, SIGKILL when the test process dies), and must pass SIGTERM on and
// end with the daemon. bins.Calicoctl still serves Calicoctl.
func StartPluginVia(t testing.TB, bins Binaries, env map[string]string, command func() *exec.Cmd) *Plugin {
	t.Helper()
	merged := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			merged[k] = v
		}
	}
	merged["CALICO_DATA_DIR"] = t.TempDir()
	for k, v := range env {
		merged[k] = v
	}
	p := &Plugin{
		t:         t,
		bins:      bins,
		command:   command,
		dataDir:   merged["CALICO_DATA_DIR"],
		pluginDir: merged["CALICO_LIBNETWORK_PLUGIN_DIR"],
	}
	if p.pluginDir == "" {
		p.pluginDir = DefaultPluginDir
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.env = append(p.env, k+"="+merged[k])
	}

	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("calico-libnetwork output:\n%s", p.Logs())
		}
	})
	if err := p.start(); err != nil {
		t.Fatalf("StartPlugin: %v\n--- daemon output ---\n%s", err, p.Logs())
	}
	return p
}

// start launches the daemon and waits until it serves both sockets.
func (p *Plugin) start() error {
	if err := os.MkdirAll(p.pluginDir, 0o755); err != nil {
		return err
	}
	for _, s := range p.sockets() {
		if pingPlugin(s.path, s.endpoint) == nil {
			return fmt.Errorf("%s already answers: another plugin is running", s.path)
		}
	}
	cmd := p.command()
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	cmd.WaitDelay = 5 * time.Second
	// Kill the daemon if the test process dies (e.g. on a go test timeout).
	if err := StartTied(cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(&p.logs, "--- harness: calico-libnetwork (pid %d) exited: %v\n", cmd.Process.Pid, err)
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	deadline := time.Now().Add(pluginReadyTimeout)
	for {
		var err error
		for _, s := range p.sockets() {
			if err = pingPlugin(s.path, s.endpoint); err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return errors.New("daemon exited before its sockets answered")
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("sockets not answering after %v: %v", pluginReadyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type pluginSocket struct{ path, endpoint string }

// sockets lists the two plugin sockets and the call that shows each is up.
func (p *Plugin) sockets() []pluginSocket {
	return []pluginSocket{
		{filepath.Join(p.pluginDir, networkSocket), "/NetworkDriver.GetCapabilities"},
		{filepath.Join(p.pluginDir, ipamSocket), "/IpamDriver.GetCapabilities"},
	}
}

// pingPlugin POSTs endpoint on the plugin socket at path and expects 200 OK.
func pingPlugin(path, endpoint string) error {
	c := unixClient(path, 2*time.Second)
	resp, err := c.Post("http://plugin"+endpoint, "application/vnd.docker.plugins.v1.2+json", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s on %s: %s", endpoint, path, resp.Status)
	}
	return nil
}

// Stop sends SIGTERM and waits for the daemon to exit, sending SIGKILL after 10 s. It is a no-op if stopped.
func (p *Plugin) Stop() {
	p.signalAndWait(syscall.SIGTERM, pluginStopTimeout)
}

// Kill sends SIGKILL and waits for the daemon to exit.
func (p *Plugin) Kill() {
	p.signalAndWait(syscall.SIGKILL, pluginStopTimeout)
}

// signalAndWait sends sig, waits up to timeout, then SIGKILLs.
func (p *Plugin) signalAndWait(sig syscall.Signal, timeout time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		p.t.Logf("calico-libnetwork did not exit %v after %v, sending SIGKILL", timeout, sig)
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the daemon (SIGTERM) and starts it again with the same environment and data.
func (p *Plugin) Restart() {
	p.t.Helper()
	p.Stop()
	fmt.Fprintf(&p.logs, "--- harness: restarting calico-libnetwork\n")
	if err := p.start(); err != nil {
		p.t.Fatalf("Restart: %v\n--- daemon output ---\n%s", err, p.Logs())
	}
}

// RestartWith restarts the daemon as Restart does, with the variables in vars set (or changed) in its
// environment.
func (p *Plugin) RestartWith(vars map[string]string) {
	p.t.Helper()
	var env []string
	for _, kv := range p.env {
		k, _, _ := strings.Cut(kv, "=")
		if _, changed := vars[k]; !changed {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	p.env = env
	p.Restart()
}

// Exited reports whether the daemon process has exited.
func (p *Plugin) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Logs returns everything the daemon wrote to stdout and stderr so far, across restarts.
func (p *Plugin) Logs() string { return p.logs.String() }

// Env returns the daemon's environment (KEY=value), for other processes that must find its datastore.
func (p *Plugin) Env() []string { return append([]string(nil), p.env...) }

// DataDir returns the daemon's CALICO_DATA_DIR.
func (p *Plugin) DataDir() string { return p.dataDir }

// PluginDir returns the folder holding the daemon's sockets.
func (p *Plugin) PluginDir() string { return p.pluginDir }

// Calicoctl runs the built calicoctl with the daemon's environment and returns its stdout;
// on failure the error carries stderr.
func (p *Plugin) Calicoctl(args ...string) (string, error) {
	return p.CalicoctlStdin("", args...)
}

// CalicoctlStdin is Calicoctl with stdin (for `-f -`).
func (p *Plugin) CalicoctlStdin(stdin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(p.bins.Calicoctl, args...)
	cmd.Env = p.env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("calicoctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Pdeathsig fires when the OS thread that started the child exits, not the
// process; children are therefore started from one thread that never exits.
var (
	starterOnce sync.Once
	starter     = make(chan func())
)

// startOnLockedThread runs cmd.Start on a dedicated, never-exiting OS thread.
func startOnLockedThread(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		go func() {
			runtime.LockOSThread()
			for f := range starter {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	starter <- func() { errc <- cmd.Start() }
	return <-errc
}
