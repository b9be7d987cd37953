package e2e

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker/dockertest"
	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// tlsEngine is a second dockerd of the engine under test that serves its API on 127.0.0.1 over TLS and
// admits only client certificates signed by its CA (--tlsverify), as a remote engine is protected. The
// tests drive it through its unix socket; the plugin reaches it over TCP with DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. It shares the host's network namespace and plugin directory
// with the engine under test but has no firewall of its own, and a bridge of its own: a dockerd with
// --bridge=none deletes docker0, which the engine under test uses.
type tlsEngine struct {
	t      *testing.T
	socket string // unix:// address, for the tests' docker client
	tcp    string // tcp:// address, for the plugin
	pki    datastore.PKIFiles
	logs   syncbuf.Buffer
}

func startTLSEngine(t *testing.T) *tlsEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "calico-docker-tls-")
	if err != nil {
		t.Fatal(err)
	}
	pki, err := datastore.LoadOrCreatePKI(filepath.Join(dir, "pki"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := &tlsEngine{t: t, socket: "unix://" + filepath.Join(dir, "docker.sock"), tcp: "tcp://" + addr, pki: pki}
	cfg := filepath.Join(dir, "daemon.json") // not the host's /etc/docker/daemon.json
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName("docker0"); err == nil {
		t.Cleanup(func() { // last: the engine under test keeps its bridge
			if _, err := net.InterfaceByName("docker0"); err != nil {
				t.Errorf("docker0 is gone after the TLS dockerd: %v", err)
			}
		})
	}
	const bridge = "e2etls0"
	for _, args := range [][]string{{"link", "add", bridge, "type", "bridge"}, {"addr", "add", "198.51.100.1/24", "dev", bridge}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() }) // after the dockerd stops
	argv := harness.DockerdCommand("--config-file", cfg, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", e.socket, "-H", e.tcp, "--tlsverify", "--tlscacert", pki.CACert, "--tlscert", pki.ServerCert,
		"--tlskey", pki.ServerKey, "--bridge="+bridge, "--iptables=false", "--ip-masq=false")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &e.logs, &e.logs
	if err := harness.StartTied(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("TLS dockerd output:\n%s", e.logs.String())
		}
		// A dockerd that had to be killed may leave its mounts; they are in this folder alone.
		out, _ := exec.Command("findmnt", "-rn", "-o", "TARGET").Output()
		mounts := strings.Fields(string(out))
		slices.Reverse(mounts)
		for _, m := range mounts {
			if strings.HasPrefix(m, dir+"/") {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing the TLS dockerd's folder: %v", err)
		}
	})
	linktest.Eventually(t, 60*time.Second, 250*time.Millisecond, func() error {
		select {
		case <-done:
			t.Fatalf("TLS dockerd exited:\n%s", e.logs.String())
		default:
		}
		_, err := e.dockerErr("info")
		return err
	})
	if out, err := exec.Command("sh", "-c", fmt.Sprintf("%s save %s | %s -H %s load", harness.DockerBin, harness.TestImage,
		harness.DockerBin, e.socket)).CombinedOutput(); err != nil {
		t.Fatalf("loading the test image into the TLS dockerd: %v\n%s", err, out)
	}
	return e
}

func (e *tlsEngine) dockerErr(args ...string) (string, error) {
	return harness.DockerErr(append([]string{"-H", e.socket}, args...)...)
}

func (e *tlsEngine) docker(args ...string) string {
	e.t.Helper()
	out, err := e.dockerErr(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// startPlugin runs the plugin against this engine's TLS port with the client certificate and key given,
// and removes what the test made on the engine before the plugin stops.
func (e *tlsEngine) startPlugin(t *testing.T, clientCert, clientKey string, vars map[string]string) *env {
	t.Helper()
	vars["NODENAME"] = "e2e-node"
	vars["DOCKER_HOST"] = e.tcp
	vars["DOCKER_TLS_VERIFY"] = "1"
	vars["DOCKER_CERT_PATH"] = dockertest.CertDir(t, e.pki.CACert, clientCert, clientKey)
	p := harness.StartPlugin(t, bins, vars)
	t.Cleanup(func() {
		if ids := strings.Fields(e.docker("ps", "-aq")); len(ids) > 0 {
			e.docker(append([]string{"rm", "-f"}, ids...)...)
		}
		if ids := strings.Fields(e.docker("network", "ls", "-q", "--filter", "driver=calico")); len(ids) > 0 {
			e.docker(append([]string{"network", "rm"}, ids...)...)
		}
	})
	return &env{t: t, plugin: p, prefix: harness.UniqueName(t, "e2e")}
}

// The plugin reaches a remote engine over TCP with TLS client certificates (DOCKER_HOST, DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH) and speaks its API version, whichever engine runs: it learns network names and
// container labels through it. With a client certificate the engine refuses, it says so once, and the
// network and IPAM drivers keep serving the engine's calls.
func TestDockerAPIOverTLS(t *testing.T) {
	requireEngine(t)
	engine := startTLSEngine(t)
	api := engine.docker("version", "--format", "{{.Server.APIVersion}}")

	t.Run("right certificate", func(t *testing.T) {
		e := engine.startPlugin(t, engine.pki.ClientCert, engine.pki.ClientKey,
			map[string]string{"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true"})
		nw := e.name("net")
		engine.docker("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam", nw)
		engine.docker("run", "-d", "--name", e.name("a"), "--net", nw, "--label", "org.projectcalico.label.role=db",
			"--label", "other=ignored", harness.TestImage, "sleep", "3600")
		// The endpoint's profile is the network's name; its labels are the container's.
		linktest.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
			weps := e.endpoints()
			if len(weps) != 1 {
				return fmt.Errorf("%d endpoints", len(weps))
			}
			labels, _ := weps[0]["metadata"].(map[string]any)["labels"].(map[string]any)
			profiles, _ := weps[0]["spec"].(map[string]any)["profiles"].([]any)
			if labels["role"] != "db" || labels["other"] != nil || len(profiles) != 1 || profiles[0] != nw {
				return fmt.Errorf("endpoint labels %v, profiles %v", labels, profiles)
			}
			return nil
		})
		logs := e.plugin.Logs()
		if !strings.Contains(logs, `msg="Docker API answers" docker_host=`+engine.tcp+" api_version="+api) {
			t.Errorf("no line saying the engine answers with API %s:\n%s", api, logs)
		}
		if strings.Contains(logs, "Docker API unusable") {
			t.Errorf("the engine was found unusable:\n%s", logs)
		}
	})

	t.Run("wrong certificate", func(t *testing.T) {
		other, err := datastore.LoadOrCreatePKI(filepath.Join(t.TempDir(), "other"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		// Without the network's name the plugin cannot name the endpoint's profile, so profiles are off here.
		e := engine.startPlugin(t, other.ClientCert, other.ClientKey, map[string]string{
			"CALICO_LIBNETWORK_LABEL_ENDPOINTS":    "true",
			"CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT": "2s",
			"CALICO_LIBNETWORK_CREATE_PROFILES":    "false",
		})
		nw := e.name("net")
		engine.docker("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam", nw)
		for _, c := range []string{"a", "b"} {
			engine.docker("run", "-d", "--name", e.name(c), "--net", nw, "--label", "org.projectcalico.label.role=db",
				harness.TestImage, "sleep", "3600")
			if ip := engine.docker("inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, nw), e.name(c)); ip == "" {
				t.Errorf("container %s has no address on %s", c, nw)
			}
		}
		// Past the label poll timeout and several of the background watcher's reconnections.
		linktest.Eventually(t, 20*time.Second, 500*time.Millisecond, func() error {
			if n := strings.Count(e.plugin.Logs(), "could not copy container labels"); n != 2 {
				return fmt.Errorf("%d endpoints told their labels were not copied", n)
			}
			return nil
		})
		time.Sleep(5 * time.Second)
		weps := e.endpoints()
		if len(weps) != 2 {
			t.Errorf("%d endpoints, want 2", len(weps))
		}
		for _, w := range weps {
			if labels, _ := w["metadata"].(map[string]any)["labels"].(map[string]any); labels["role"] != nil {
				t.Errorf("labels copied without the Docker API: %v", labels)
			}
		}
		logs := e.plugin.Logs()
		var refused []string
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "Docker API unusable") {
				refused = append(refused, line)
			}
		}
		if len(refused) != 1 || !strings.Contains(refused[0], "docker_host="+engine.tcp) || !strings.Contains(refused[0], "certificate") {
			t.Errorf("want one line telling that the engine refused the certificate, got %d:\n%s", len(refused), logs)
		}
		if strings.Contains(logs, "Docker API answers") {
			t.Errorf("the engine answered a refused certificate:\n%s", logs)
		}
	})
}
