package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// `calico-libnetwork --uninstall`, and `make uninstall` that runs it, as an operator runs them, in a host
// namespace of their own: they refuse while a container interface of the plugin's exists, and forced
// (--force, FORCE=1) remove the plugin's table and veth but not a Calico CNI's pod veth of the same name
// shape.
func TestUninstallCommand(t *testing.T) {
	root, err := harness.RepoRoot()
	linktest.Must(t, err)
	t.Run("binary", func(t *testing.T) {
		uninstallScenario(t, func(ns string, force bool) *exec.Cmd {
			args := []string{"netns", "exec", ns, bins.Plugin, "--uninstall"}
			if force {
				args = append(args, "--force")
			}
			return exec.Command("ip", args...)
		})
	})
	t.Run("make", func(t *testing.T) {
		// make uninstall reads the host's settings and asks systemd about the host's daemon: only where
		// neither can send it elsewhere.
		if _, err := os.Stat("/etc/default/calico-libnetwork"); err == nil {
			t.Skip("/etc/default/calico-libnetwork exists: make uninstall would use this host's settings")
		}
		if exec.Command("systemctl", "is-active", "--quiet", "calico-libnetwork.service").Run() == nil {
			t.Skip("calico-libnetwork.service runs on this host: make uninstall refuses")
		}
		prefix := t.TempDir() // where it removes the installed files from
		uninstallScenario(t, func(ns string, force bool) *exec.Cmd {
			args := []string{"netns", "exec", ns, "make", "--no-print-directory", "-C", root, "uninstall",
				"PREFIX=" + prefix, "SYSTEMDDIR=" + prefix}
			if force {
				args = append(args, "FORCE=1")
			}
			return exec.Command("ip", args...)
		})
	})
}

// uninstallScenario leaves in a new namespace a veth and the table of the plugin's and a CNI's veth, then
// runs uninstall (made by command, in that namespace) without and with force.
func uninstallScenario(t *testing.T, command func(ns string, force bool) *exec.Cmd) {
	ns := linktest.NewNS(t, "uninstall")
	ours, cniPod := api.LibnetworkInterface(strings.Repeat("a", 64)), api.LibnetworkInterface(strings.Repeat("b", 64))
	linktest.MustDo(t, ns, func() {
		_, err := link.CreateVeth(link.Veth{HostName: ours, PeerName: "tmp-ours"}, nil)
		linktest.Must(t, err)
	})
	for _, args := range [][]string{{"ip", "link", "add", cniPod, "type", "veth", "peer", "name", "tmp-cni"},
		{"nft", "add", "table", "inet", "calico"}} {
		if out, err := linktest.Exec(ns, args...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	uninstall := func(force bool) (string, error) {
		cmd := command(ns, force)
		cmd.Env = append(os.Environ(), "CALICO_DATA_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := uninstall(false); err == nil || !strings.Contains(out, "1 container interface(s) here ["+ours+"]") {
		t.Errorf("uninstall with a container interface left: %v\n%s", err, out)
	}
	if out, err := linktest.Exec(ns, "ip", "link", "show", ours); err != nil {
		t.Errorf("a refused uninstall removed the plugin's veth %s: %s", ours, out)
	}
	if out, err := uninstall(true); err != nil {
		t.Fatalf("forced uninstall: %v\n%s", err, out)
	}
	if out, err := linktest.Exec(ns, "ip", "link", "show", ours); err == nil {
		t.Errorf("the plugin's veth %s is left:\n%s", ours, out)
	}
	if out, err := linktest.Exec(ns, "ip", "link", "show", cniPod); err != nil {
		t.Errorf("the CNI's veth %s went: %s", cniPod, out)
	}
	if out, _ := linktest.Exec(ns, "nft", "list", "tables"); strings.Contains(out, "table inet calico\n") {
		t.Errorf("table inet calico is left:\n%s", out)
	}
}

// make install and make uninstall into a staging root: what install put there goes, the settings stay.
func TestMakeInstallUninstall(t *testing.T) {
	root, err := harness.RepoRoot()
	linktest.Must(t, err)
	dest := t.TempDir()
	files := []string{"usr/local/bin/calico-libnetwork", "usr/local/bin/calicoctl", "etc/systemd/system/calico-libnetwork.service"}
	settings := "etc/default/calico-libnetwork"
	runMake := func(target string) {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", target, "DESTDIR="+dest)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	runMake("install")
	for _, f := range append(files, settings) {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	runMake("uninstall")
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dest, f)); err == nil {
			t.Errorf("make uninstall left %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, settings)); err != nil {
		t.Errorf("make uninstall removed the settings: %v", err)
	}
}
