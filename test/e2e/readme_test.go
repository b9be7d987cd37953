package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
	"github.com/projectcalico/calico-libnetwork/test/e2e/readme"
)

const (
	// readmeBlockTimeout bounds one README block: each is a few docker and calicoctl commands.
	readmeBlockTimeout = time.Minute
	// readmeImage is the image the README's examples run, an alias of the test image here (no registry).
	readmeImage = "busybox:latest"
)

// readmeLeftovers lists the Docker objects the README's examples made, while they exist, so that a run
// killed before its cleanup has them removed by the next one.
var readmeLeftovers = filepath.Join(os.TempDir(), "calico-e2e-readme-objects")

// TestREADME runs README.md's examples as a reader would, each as the marker before it says (package
// readme): the quick start's `make run-plugin` is the daemon, and every block marked to run does, in
// order, through bash with the `docker` under test and the built `calicoctl` first on PATH and the
// README's busybox an alias of the test image. A README line that stops working fails here; blocks that
// cannot run on one test host are subtests skipped with their reason. What the examples made (containers,
// networks) is removed afterwards; their pools and policies go with the daemon's datastore.
func TestREADME(t *testing.T) {
	requireEngine(t)
	root := makeBuild(t)
	doc, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readme.Parse(string(doc))
	if err != nil {
		t.Fatalf("README.md:\n%v", err)
	}
	aliasImage(t, readmeImage)
	path := t.TempDir()
	for name, target := range map[string]string{"docker": harness.DockerBin, "calicoctl": bins.Calicoctl} {
		if err := os.Symlink(target, filepath.Join(path, name)); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()

	var (
		p      *harness.Plugin
		before dockerObjects
		failed bool
	)
	for _, b := range blocks {
		if b.Kind == readme.Daemon {
			t.Logf("README.md line %d (%s): the daemon: %s", b.Line, b.Heading, strings.TrimSpace(b.Text))
			p = startREADMEDaemon(t, root, b.Text)
			attach(t, p)
			removeREADMELeftovers(t)
			before = listDockerObjects(t)
			t.Cleanup(func() { removeNewDockerObjects(t, before) })
			continue
		}
		ok := t.Run(b.Heading, func(t *testing.T) {
			switch {
			case b.Kind == readme.Skip:
				t.Skipf("README.md line %d: not run here: %s", b.Line, b.Reason)
			case b.Kind == readme.MultiHost:
				t.Skipf("README.md line %d: needs several hosts: %s", b.Line, b.Reason)
			case failed:
				t.Skipf("README.md line %d: not run, an earlier block failed", b.Line)
			}
			t.Logf("README.md line %d: %s", b.Line, b.Kind)
			env := readmeEnv(p.Env(), path)
			switch b.Kind {
			case readme.Run:
				out, err := readmeShell(env, work, b.Text)
				t.Logf("bash -x:\n%s", out)
				if err != nil {
					t.Errorf("README.md line %d: %v", b.Line, err)
				}
			case readme.Apply:
				if out, err := p.CalicoctlStdin(b.Text, "apply", "-f", "-"); err != nil {
					t.Errorf("README.md line %d: %v\n%s", b.Line, err, out)
				}
			case readme.File:
				if err := os.WriteFile(filepath.Join(work, b.File), []byte(b.Text), 0o644); err != nil {
					t.Fatal(err)
				}
			case readme.Transcript:
				for _, c := range b.Commands() {
					out, err := readmeShell(env, work, c.Line)
					if err != nil {
						t.Errorf("README.md line %d: %s: %v\n%s", b.Line, c.Line, err, out)
					} else if line, missing := readme.Missing(c.Output, out); missing {
						t.Errorf("README.md line %d: %s prints no line %q (after the lines before it), but:\n%s", b.Line, c.Line, line, out)
					}
				}
			}
			writeREADMELeftovers(t, listDockerObjects(t).since(before))
		})
		failed = failed || !ok
	}
}

// makeBuild runs `make build` (make run-plugin's first step, here so that a daemon's start is not timed with
// a compile) and returns the repository root.
func makeBuild(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("make", "--no-print-directory", "build")
	build.Dir = root
	mustRun(t, build)
	return root
}

// startREADMEDaemon runs script in the repository root as the plugin daemon, with what the README's later
// examples need of it: an IPv6 pool (for "Dual stack") and container labels copied to endpoints (for
// "Workload endpoint labelling"). It runs under PID 1 of a PID namespace of its own, so the daemon goes
// with it even when the test process is killed.
func startREADMEDaemon(t *testing.T, root, script string) *harness.Plugin {
	t.Helper()
	return harness.StartPluginVia(t, bins, map[string]string{
		"CALICO_IPV6POOL_CIDR":              "fd80:24e2:f998:72d8::/64",
		"CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true",
	}, func() *exec.Cmd {
		cmd := exec.Command("bash", "-c", asPID1+`as_pid1 bash -c "$1"`, "readme-daemon", script)
		cmd.Dir = root
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		return cmd
	})
}

// readmeEnv is the daemon's environment (which calicoctl finds its datastore by) with dir first on PATH.
func readmeEnv(daemon []string, dir string) []string {
	env := slices.DeleteFunc(slices.Clone(daemon), func(kv string) bool { return strings.HasPrefix(kv, "PATH=") })
	return append(env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// readmeShell runs script with bash, stopping at the first failing command, and returns what it printed
// (its commands traced).
func readmeShell(env []string, dir, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readmeBlockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-x", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// aliasImage makes name a tag of the test image for the test, unless the engine has an image of that name.
func aliasImage(t *testing.T, name string) {
	t.Helper()
	if _, err := harness.DockerErr("image", "inspect", name); err == nil {
		t.Logf("the README's examples run the engine's own %s", name)
		return
	}
	harness.Docker(t, "tag", harness.TestImage, name)
	t.Cleanup(func() {
		if _, err := harness.DockerErr("rmi", name); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// dockerObjects are the IDs of the engine's containers and networks.
type dockerObjects struct{ containers, networks []string }

func listDockerObjects(t *testing.T) dockerObjects {
	t.Helper()
	list := func(args ...string) []string {
		return strings.Fields(harness.Docker(t, args...))
	}
	return dockerObjects{list("ps", "-aq", "--no-trunc"), list("network", "ls", "-q", "--no-trunc")}
}

// since returns the objects of o that were not in before.
func (o dockerObjects) since(before dockerObjects) dockerObjects {
	newer := func(now, then []string) []string {
		return slices.DeleteFunc(slices.Clone(now), func(id string) bool { return slices.Contains(then, id) })
	}
	return dockerObjects{newer(o.containers, before.containers), newer(o.networks, before.networks)}
}

// remove removes the containers, then the networks, logging failures.
func (o dockerObjects) remove(t *testing.T) {
	for _, c := range o.containers {
		if _, err := harness.DockerErr("rm", "-f", "-v", c); err != nil && !strings.Contains(err.Error(), "No such container") {
			t.Logf("cleanup: %v", err)
		}
	}
	for _, n := range o.networks {
		if _, err := harness.DockerErr("network", "rm", n); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Logf("cleanup: %v", err)
		}
	}
}

// removeNewDockerObjects removes what appeared since before, while the plugin still answers for its networks.
func removeNewDockerObjects(t *testing.T, before dockerObjects) {
	listDockerObjects(t).since(before).remove(t)
	if err := os.Remove(readmeLeftovers); err != nil && !os.IsNotExist(err) {
		t.Logf("cleanup: %v", err)
	}
}

// writeREADMELeftovers records o (one "container ID" or "network ID" a line) for removeREADMELeftovers.
func writeREADMELeftovers(t *testing.T, o dockerObjects) {
	t.Helper()
	var b strings.Builder
	for _, c := range o.containers {
		b.WriteString("container " + c + "\n")
	}
	for _, n := range o.networks {
		b.WriteString("network " + n + "\n")
	}
	if err := os.WriteFile(readmeLeftovers, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// removeREADMELeftovers removes what a killed earlier run of the examples recorded and left.
func removeREADMELeftovers(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(readmeLeftovers)
	if os.IsNotExist(err) {
		return
	} else if err != nil {
		t.Fatal(err)
	}
	var o dockerObjects
	for _, line := range strings.Split(string(data), "\n") {
		switch kind, id, _ := strings.Cut(line, " "); kind {
		case "container":
			o.containers = append(o.containers, id)
		case "network":
			o.networks = append(o.networks, id)
		}
	}
	t.Logf("removing what an earlier run of the README's examples left: %+v", o)
	o.remove(t)
}
