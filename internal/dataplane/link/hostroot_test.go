package link

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
