package e2e

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// TestManagedPlugin packages the daemon as `make plugin` does (static binaries, packaging/image-rootfs.sh,
// the Dockerfile, packaging/plugin.sh), enables it as a managed (v2) plugin and uses it by its plugin
// reference for both drivers: two containers get Calico addresses and reach each other. Then everything
// it made is removed again.
//
// The plugin runs its own embedded etcd, in a data directory of the test's (the plugin's settable "data"
// mount): an image must work on its own, and the harness's plugins keep their datastores to themselves.
// Its socket is Docker's per-plugin /run/docker/plugins/<plugin ID>/calico.sock, so it never meets the
// harness's calico.sock; tests run one at a time, so no two dataplanes program the host at once.
func TestManagedPlugin(t *testing.T) {
	requireEngine(t)
	prefix := harness.UniqueName(t, "e2emp")
	legacySocket := filepath.Join("/run/docker/plugins", "calico.sock")
	_, legacyErr := os.Lstat(legacySocket)
	ref, dataDir := installManagedPlugin(t, prefix, "e2e-managed")
	// Docker names the network and IPAM drivers after the full plugin reference.
	harness.CleanupDocker(t, prefix)
	network := prefix + "-net"
	harness.Docker(t, "network", "create", "-d", ref, "--ipam-driver", ref, network)
	if got := harness.Docker(t, "network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", network); got != ref+" "+ref {
		t.Fatalf("network drivers = %q, want %q twice", got, ref)
	}
	_, err := harness.DockerErr("network", "create", "-d", ref, prefix+"-noipam")
	if want := "--ipam-driver with this plugin's name"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a network without the plugin's IPAM: %v; want an error saying %q", err, want)
	}

	// The plugin programs the host's dataplane: a daemon started beside it, as by a forgotten systemd
	// unit, refuses to, naming the plugin's process.
	if out := mustRefuseSecondDaemon(t, os.Environ()); !strings.Contains(out, ": /usr/bin/calico-libnetwork)") {
		t.Errorf("the refusal does not name the plugin's process (/usr/bin/calico-libnetwork, pid on the host):\n%s", out)
	}

	pool := netip.MustParsePrefix("192.168.0.0/16") // the default pool
	addrs := map[string]string{}
	for _, c := range []string{prefix + "-a", prefix + "-b"} {
		harness.Docker(t, "run", "-d", "--name", c, "--net", network, harness.TestImage, "sleep", "3600")
		ip := harness.Docker(t, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, network), c)
		if a, err := netip.ParseAddr(ip); err != nil || !pool.Contains(a) {
			t.Fatalf("%s got address %q, want one from the Calico pool %s", c, ip, pool)
		}
		addrs[c] = ip
	}
	for from, to := range map[string]string{prefix + "-a": addrs[prefix+"-b"], prefix + "-b": addrs[prefix+"-a"]} {
		if out, err := harness.DockerErr("exec", from, "ping", "-c", "1", "-W", "2", to); err != nil {
			t.Fatalf("%s cannot ping %s: %v\n%s", from, to, err, out)
		}
	}

	// A second network on a running container: the plugin reads the routes already in its namespace, whose
	// file Docker created after the plugin started, through CALICO_LIBNETWORK_HOST_ROOT.
	second := prefix + "-net2"
	harness.Docker(t, "network", "create", "-d", ref, "--ipam-driver", ref, second)
	harness.Docker(t, "network", "connect", second, prefix+"-a")
	if out, err := harness.DockerErr("exec", prefix+"-a", "ping", "-c", "1", "-W", "2", addrs[prefix+"-b"]); err != nil {
		t.Fatalf("after joining a second network, %s-a cannot ping %s: %v\n%s", prefix, addrs[prefix+"-b"], err, out)
	}
	harness.Docker(t, "network", "disconnect", second, prefix+"-a")
	harness.Docker(t, "network", "rm", second)

	// The plugin's datastore, reached on the host through the endpoint its embedded etcd recorded: the
	// endpoints, and the profile named after the network, whose name the plugin learnt from Docker's API
	// through the mounted socket although the network's driver is not called "calico".
	calicoctl := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bins.Calicoctl, args...)
		cmd.Env = append(os.Environ(), "CALICO_DATA_DIR="+dataDir)
		return cmd
	}
	endpoints := func() int {
		var list struct{ Items []json.RawMessage }
		out := mustRun(t, calicoctl("get", "workloadendpoints", "-n", "libnetwork", "-o", "json"))
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("decoding workload endpoints: %v\n%s", err, out)
		}
		return len(list.Items)
	}
	if n := endpoints(); n != 2 {
		t.Errorf("%d workload endpoints in the plugin's datastore, want 2", n)
	}
	linktest.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if out, err := calicoctl("get", "profile", network).CombinedOutput(); err != nil {
			return fmt.Errorf("profile %s: %v: %s", network, err, out)
		}
		return nil
	})

	if _, err := os.Lstat(legacySocket); legacyErr != nil && err == nil {
		t.Errorf("the managed plugin created %s; its socket belongs under /run/docker/plugins/<plugin ID>/", legacySocket)
	}

	// Tear down in Docker's order and check that nothing is left.
	harness.Docker(t, "rm", "-f", prefix+"-a", prefix+"-b")
	harness.Docker(t, "network", "rm", network)
	if n := endpoints(); n != 0 {
		t.Errorf("%d workload endpoints left after the containers went", n)
	}
	id := harness.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", ref)
	harness.Docker(t, "plugin", "disable", ref)
	harness.Docker(t, "plugin", "rm", ref)
	if out, _ := harness.DockerErr("plugin", "ls", "-q", "--no-trunc"); strings.Contains(out, id) {
		t.Errorf("plugin %s still listed after rm", id)
	}
	if _, err := os.Stat(filepath.Join("/run/docker/plugins", id)); err == nil {
		t.Errorf("socket directory /run/docker/plugins/%s left after the plugin was removed", id)
	}
}

// installManagedPlugin packages the daemon as `make plugin` does (static binaries, packaging/image-rootfs.sh,
// the Dockerfile, packaging/plugin.sh) under the reference calico-test/<prefix>-plugin:latest, gives it a
// data directory of the test's (its own embedded etcd) and node name, and enables it. Cleanup removes the
// plugin and its image. It returns the plugin reference and the data directory.
func installManagedPlugin(t *testing.T, prefix, node string) (ref, dataDir string) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	image := harness.TestPluginPrefix + prefix + ":latest"
	ref = harness.TestPluginPrefix + prefix + "-plugin:latest"

	// The image's binaries must be static whatever HARNESS_RACE asked of the harness's.
	binDir := filepath.Join(work, "bin")
	for _, cmd := range []string{"calico-libnetwork", "calicoctl"} {
		build := exec.Command("go", "build", "-o", filepath.Join(binDir, cmd), "./cmd/"+cmd)
		build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		mustRun(t, build)
	}
	mustRun(t, exec.Command("bash", filepath.Join(root, "packaging", "image-rootfs.sh"), binDir, filepath.Join(work, "image", "rootfs")))
	t.Cleanup(func() { cleanupDocker(t, "image", "rm", "-f", image) })
	harness.Docker(t, "build", "-q", "-f", filepath.Join(root, "Dockerfile"), "-t", image, filepath.Join(work, "image"))
	checkImageTools(t, image)

	pack := exec.Command("bash", filepath.Join(root, "packaging", "plugin.sh"), image, ref, filepath.Join(work, "plugin"))
	pack.Env = append(os.Environ(), "DOCKER="+harness.DockerBin)
	t.Cleanup(func() {
		// Disabling first makes sure the daemon stopped; rm -f alone would also do it.
		if _, err := harness.DockerErr("plugin", "inspect", ref); err == nil {
			cleanupDocker(t, "plugin", "disable", "-f", ref)
			cleanupDocker(t, "plugin", "rm", "-f", ref)
		}
	})
	mustRun(t, pack)

	dataDir = filepath.Join(work, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	harness.Docker(t, "plugin", "set", ref, "data.source="+dataDir, "NODENAME="+node, "CALICO_DEBUG=true")
	harness.Docker(t, "plugin", "enable", ref)
	return ref, dataDir
}

// checkImageTools checks that image holds the iptables tools the daemon runs for its jump in Docker's
// iptables chains, and no nftables tools or library: the daemon programs nftables through netlink.
func checkImageTools(t *testing.T, image string) {
	t.Helper()
	cid := harness.Docker(t, "create", image)
	defer cleanupDocker(t, "rm", "-f", cid)
	export := exec.Command(harness.DockerBin, "export", cid)
	var stderr strings.Builder
	export.Stderr = &stderr
	out, err := export.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := export.Start(); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	tr := tar.NewReader(out)
	h, err := tr.Next()
	for ; err == nil; h, err = tr.Next() {
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		files[name] = true
		if base := path.Base(name); base == "nft" || strings.HasPrefix(base, "libnftables.") {
			t.Errorf("image %s holds %s: the daemon needs no nftables tools", image, name)
		}
	}
	if err != io.EOF {
		_ = export.Process.Kill()
	}
	if werr := export.Wait(); err != io.EOF || werr != nil {
		t.Fatalf("docker export of %s: %v, %v: %s", image, err, werr, stderr.String())
	}
	for _, tool := range []string{"iptables", "iptables-restore", "ip6tables", "ip6tables-restore"} {
		if !files["usr/sbin/"+tool] {
			t.Errorf("image %s lacks usr/sbin/%s, which the daemon runs", image, tool)
		}
	}
}

// mustRun runs cmd and returns its trimmed stdout, failing the test with its output on error.
func mustRun(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// cleanupDocker runs one cleanup step, logging its error: cleanup goes on regardless.
func cleanupDocker(t *testing.T, args ...string) {
	t.Helper()
	if _, err := harness.DockerErr(args...); err != nil {
		t.Log("cleanup:", err)
	}
}
