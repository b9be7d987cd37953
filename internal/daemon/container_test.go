package daemon

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

func TestLinksReadSandboxesUnderHostRoot(t *testing.T) {
	if got := hostRoot(""); got != "" {
		t.Errorf("hostRoot(\"\") = %q, want sandboxes opened as they are", got)
	}
	dir := t.TempDir()
	_, err := link.Ops{HostRoot: hostRoot(dir)}.SandboxRoutes("/var/run/docker/netns/0123456789ab")
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
	got, err := link.Ops{HostRoot: hostRoot(config.HostRootParent)}.SandboxRoutes(key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("through the parent's root: %v, directly: %v", got, want)
	}
}
