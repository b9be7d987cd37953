package harness

import (
	"errors"
	"fmt"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "module github.com/projectcalico/calico-libnetwork") {
		t.Fatalf("RepoRoot %s: go.mod is not this module's", root)
	}
}

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	re := regexp.MustCompile(`^e2e-[0-9a-f]{6}$`)
	for i := 0; i < 100; i++ {
		n := UniqueName(t, "e2e-")
		if !re.MatchString(n) {
			t.Fatalf("UniqueName = %q, want e2e- plus 6 hex digits", n)
		}
		if seen[n] {
			t.Fatalf("UniqueName repeated %q", n)
		}
		seen[n] = true
	}
}

func TestEventuallySucceeds(t *testing.T) {
	calls := 0
	linktest.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("f called %d times, want 3", calls)
	}
}

// recordingTB captures Fatalf instead of stopping the test.
type recordingTB struct {
	testing.TB
	fatal string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestEventuallyTimesOut(t *testing.T) {
	rec := &recordingTB{TB: t}
	start := time.Now()
	linktest.Eventually(rec, 50*time.Millisecond, 10*time.Millisecond, func() error {
		return errors.New("still broken")
	})
	if !strings.Contains(rec.fatal, "still broken") {
		t.Fatalf("Eventually failure = %q, want the last error in it", rec.fatal)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Eventually gave up after %v, want about 50ms", d)
	}
}

func TestWithPrefix(t *testing.T) {
	got := withPrefix("e2e-a\nother\n e2e-b \n\ne2e", "e2e-")
	if strings.Join(got, ",") != "e2e-a,e2e-b" {
		t.Fatalf("withPrefix = %q", got)
	}
}

func TestDockerRunAndCleanup(t *testing.T) {
	RequireRoot(t)
	RequireDocker(t)
	EnsureTestImage(t)

	Docker(t, "run", "--rm", TestImage, "true")
	if out := Docker(t, "run", "--rm", TestImage, "sh", "-c", "echo hello; echo noise >&2"); out != "hello" {
		t.Fatalf("docker run output = %q, want %q", out, "hello")
	}
	if _, err := DockerErr("run", "--rm", TestImage, "false"); err == nil {
		t.Fatal("DockerErr: no error from a container exiting 1")
	}

	prefix := UniqueName(t, "hst-") + "-"
	net, ctr := prefix+"net", prefix+"ctr"
	t.Run("create", func(t *testing.T) {
		CleanupDocker(t, prefix)
		Docker(t, "network", "create", "--driver", "bridge", net)
		Docker(t, "create", "--name", ctr, "--network", net, TestImage, "sleep", "60")
	})
	if out := Docker(t, "ps", "-a", "--filter", "name="+ctr, "--format", "{{.Names}}"); out != "" {
		t.Errorf("container %s still there after cleanup", ctr)
	}
	if out := Docker(t, "network", "ls", "--filter", "name="+net, "--format", "{{.Name}}"); out != "" {
		t.Errorf("network %s still there after cleanup", net)
	}
}

func TestPingDockerWithoutDaemon(t *testing.T) {
	// unixClient on a socket path nobody listens on must fail fast, not hang.
	c := unixClient(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if _, err := c.Get("http://docker/_ping"); err == nil {
		t.Fatal("GET on a missing socket succeeded")
	}
	if err := pingPlugin(filepath.Join(t.TempDir(), "none.sock"), "/NetworkDriver.GetCapabilities"); err == nil {
		t.Fatal("pingPlugin on a missing socket succeeded")
	}
}

func TestBuildBinaries(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, cmd := range []string{"calico-libnetwork", "calicoctl"} {
		if m, _ := filepath.Glob(filepath.Join(root, "cmd", cmd, "*.go")); len(m) == 0 {
			if _, err := BuildBinaries(dir); err == nil {
				t.Fatalf("BuildBinaries succeeded without cmd/%s", cmd)
			}
			t.Skipf("cmd/%s has no Go files yet", cmd)
		}
	}
	if testing.Short() {
		t.Skip("skipping the daemon build in -short mode")
	}
	b, err := BuildBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.Plugin, b.Calicoctl} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s: not an executable (%v)", p, err)
		}
	}
	start := time.Now()
	if again, err := BuildBinaries(dir); err != nil || again != b || time.Since(start) > time.Second {
		t.Fatalf("second BuildBinaries: %v, %v, took %v: want the cached result", again, err, time.Since(start))
	}
}
