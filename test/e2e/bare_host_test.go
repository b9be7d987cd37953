package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// The README's quick start on a host without nftables' tools (issue 14: `make run-plugin` on a fresh Debian
// stopped at "nft: executable file not found"). `make run-plugin` runs, as a newcomer runs it but on a data
// directory of the test's, in a mount namespace where no `nft` exists; iptables stays, since Docker's
// iptables FORWARD chain needs the plugin's jump. Two containers on a calico network reach each other, the
// plugin's firewall is there (table inet calico, the FORWARD jump) and isolates another network's container,
// and the daemon never looked for a tool that is not there.
func TestBareHostRunPlugin(t *testing.T) {
	requireEngine(t)
	root := makeBuild(t)

	whiteouts := t.TempDir()
	// An overlay hides a lower layer's entry behind a character device 0:0 of its name in a layer above.
	if err := syscall.Mknod(filepath.Join(whiteouts, "nft"), syscall.S_IFCHR, 0); err != nil {
		t.Fatalf("making a whiteout: %v", err)
	}
	hidden := nftDirs()
	t.Logf("hiding nft in %v", hidden)
	p := harness.StartPluginVia(t, bins, map[string]string{
		// The namespace is private, so Docker's network namespace files, bind-mounted after it was made,
		// show there as plain files: the daemon opens them through the test's root, as a managed plugin
		// does through its shim's.
		"CALICO_LIBNETWORK_HOST_ROOT": fmt.Sprintf("/proc/%d/root", os.Getpid()),
	}, func() *exec.Cmd {
		cmd := exec.Command("bash", append([]string{"-c", bareHostScript, "bare-host", whiteouts}, hidden...)...)
		cmd.Dir = root
		// A new mount namespace (Go makes it private: nothing mounted there reaches the host) and a new PID
		// namespace, so that make and the daemon go when the script, its PID 1, is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Cloneflags: syscall.CLONE_NEWPID}
		return cmd
	})
	e := attach(t, p)

	netA, netB := e.network("a"), e.network("b")
	a1, a2, b1 := e.run("a1", "--net", netA), e.run("a2", "--net", netA), e.run("b1", "--net", netB)
	e.mustPing(a1, e.containerIP(a2, netA, false))
	e.mustPing(a2, e.containerIP(a1, netA, false))
	mustHost(t, "nft", "list", "table", "inet", "calico") // nft is a test dependency: the host has it
	// The jump in iptables' FORWARD exactly where Docker uses iptables (its default backend), none under
	// Docker's nftables backend.
	wantJump := harness.FirewallBackend(t) == "iptables"
	if out := mustHost(t, "iptables-save", "-t", "filter"); strings.Contains(out, "-A FORWARD -j CALICO-FORWARD") != wantJump {
		t.Errorf("FORWARD jump to CALICO-FORWARD present = %v, want %v (Docker's firewall backend %s):\n%s",
			!wantJump, wantJump, harness.FirewallBackend(t), out)
	}
	e.mustNotPing(a1, e.containerIP(b1, netB, false))
	if logs := p.Logs(); strings.Contains(logs, "executable file not found") {
		t.Errorf("the daemon looked for a tool the host does not have:\n%s", logs)
	}
}

// bareHostScript runs as PID 1 of the test's PID and mount namespaces, with arguments WHITEOUTS DIR...: it
// lays WHITEOUTS over each DIR, checks that nft is gone and iptables is not, then runs `make run-plugin`,
// passing SIGTERM on to make (which passes it on to the daemon) and ending when make ends.
const bareHostScript = asPID1 + `set -euo pipefail
whiteouts=$1
shift
for dir in "$@"; do
	mount -t overlay bare-host -o "lowerdir=$whiteouts:$dir" "$dir"
done
if nft=$(command -v nft); then
	echo "bare host: nft is still found, at $nft" >&2
	exit 1
fi
command -v iptables >/dev/null || { echo "bare host: iptables is gone too" >&2; exit 1; }
as_pid1 make --no-print-directory run-plugin
`

// asPID1 defines a bash function for a script that is PID 1 of a PID namespace, to which the kernel delivers
// only the signals it handles: `as_pid1 CMD...` runs CMD, passes SIGTERM on to it, and returns its exit
// status when it ends.
const asPID1 = `as_pid1() {
	"$@" &
	child=$!
	trap 'kill -TERM "$child"' TERM
	while wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null; do :; done
	return "$rc"
}
`

// nftDirs lists, symlinks resolved and each once, the directories on PATH and the usual system ones that
// hold an nft.
func nftDirs() []string {
	seen := map[string]bool{}
	var dirs []string
	for _, d := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin") {
		real, err := filepath.EvalSymlinks(d)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if _, err := os.Lstat(filepath.Join(real, "nft")); err == nil {
			dirs = append(dirs, real)
		}
	}
	return dirs
}
