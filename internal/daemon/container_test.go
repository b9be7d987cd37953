package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

func TestLinksReadSandboxesUnderHostRoot(t *testing.T) {
	if _, ok := links("").(link.Ops); !ok {
		t.Errorf("links(\"\") = %T, want plain link.Ops", links(""))
	}
	dir := t.TempDir()
	_, err := links(dir).SandboxRoutes("/var/run/docker/netns/0123456789ab")
	if want := filepath.Join(dir, "/var/run/docker/netns/0123456789ab"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v does not name %s", err, want)
	}

	// A named namespace reached, like Docker's sandbox keys, through /var/run (an absolute link to /run on
	// Debian), once directly and once through the parent's root (the go command's, standing in for a
	// managed plugin's shim).
	ns := linktest.NewNS(t, "hostroot")
	key := filepath.Join("/var/run/netns", ns)
	want, err := link.SandboxRoutes(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := links(config.HostRootParent).SandboxRoutes(key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("through the parent's root: %v, directly: %v", got, want)
	}
}

func TestResolveUnderFollowsLinksInsideRoot(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"run/docker/netns", "opt/a"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"var":        "opt/a/../..", // relative, climbing back to the top
		"opt/a/run":  "/run",        // absolute: must stay under root
		"loop":       "/loop",
		"opt/a/self": ".",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"/run/docker/netns/0123456789ab", "/run/docker/netns/0123456789ab"},
		{"/opt/a/run/docker/netns/x", "/run/docker/netns/x"},
		{"/var/opt/a/self/self/run/docker", "/run/docker"},
		{"/../../run", "/run"},
		{"/missing/file", "/missing/file"},
	} {
		got, err := resolveUnder(root, tc.name)
		if want := filepath.Join(root, tc.want); err != nil || got != want {
			t.Errorf("resolveUnder(%s) = %q, %v; want %q", tc.name, got, err, want)
		}
	}
	if _, err := resolveUnder(root, "/loop/x"); err == nil || !strings.Contains(err.Error(), "too many symbolic links") {
		t.Errorf("a symlink loop gave %v", err)
	}
}
