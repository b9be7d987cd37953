package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// claimHelperEnv makes the test binary a claim helper instead: it claims the dataplane of its network
// namespace, prints "claimed" (or the error) and holds the claim until its stdin closes.
const claimHelperEnv = "CALICO_TEST_CLAIM_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(claimHelperEnv) != "" {
		c, err := Claim()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("claimed")
		_, _ = io.Copy(io.Discard, os.Stdin)
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func claimIn(t *testing.T, ns string) (c io.Closer, err error) {
	t.Helper()
	linktest.MustDo(t, ns, func() { c, err = Claim() })
	return c, err
}

func TestClaimIsOnePerNetworkNamespace(t *testing.T) {
	linktest.RequireRoot(t)
	hostA, hostB := linktest.NewNS(t, "claim-a"), linktest.NewNS(t, "claim-b")
	first, err := claimIn(t, hostA)
	linktest.Must(t, err)
	other, err := claimIn(t, hostB)
	linktest.Must(t, err)
	defer other.Close()

	_, err = claimIn(t, hostA)
	if err == nil {
		t.Fatal("a second claim in the same namespace succeeded")
	}
	t.Logf("second claim: %v", err)
	for _, want := range []string{fmt.Sprintf("another calico-libnetwork (pid %d: %s", os.Getpid(), os.Args[0]),
		"already programs this host's dataplane", "CALICO_DATAPLANE=none"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if held := (*ClaimHeldError)(nil); !errors.As(err, &held) {
		t.Errorf("error %T is not a *ClaimHeldError", err)
	}

	// Nothing but the holder removes the claim: not a flush of the whole ruleset, not a deletion by name.
	for _, cmd := range []string{"flush ruleset", "delete table inet " + ClaimTable} {
		_, _ = linktest.Exec(hostA, "nft", cmd)
	}
	if out, err := linktest.Exec(hostA, "nft", "list", "tables"); err != nil || !strings.Contains(out, "table inet "+ClaimTable) {
		t.Errorf("the claim's table did not survive nft flush ruleset and delete table (%v):\n%s", err, out)
	}

	linktest.Must(t, first.Close())
	again, err := claimIn(t, hostA)
	linktest.Must(t, err)
	again.Close()
}

// An unprivileged user in the host's network namespace can neither take the claim nor, therefore, keep
// the daemon from starting.
func TestClaimNeedsCapNetAdmin(t *testing.T) {
	ns := linktest.NewNS(t, "claim-user")
	helper := startClaimHelper(t, ns, &syscall.Credential{Uid: 65534, Gid: 65534}) // nobody
	if want := "needs CAP_NET_ADMIN"; !strings.HasPrefix(helper.result, "error:") || !strings.Contains(helper.result, want) {
		t.Fatalf("a claim by user nobody: %q, want an error saying %q", helper.result, want)
	}
	c, err := claimIn(t, ns)
	if err != nil {
		t.Fatalf("the daemon's claim after user nobody tried: %v", err)
	}
	c.Close()
}

// The kernel frees the claim however its holder ends.
func TestClaimFreedWhenHolderKilled(t *testing.T) {
	ns := linktest.NewNS(t, "claim-kill")
	helper := startClaimHelper(t, ns, nil)
	if helper.result != "claimed" {
		t.Fatalf("helper: %q, want claimed", helper.result)
	}
	_, err := claimIn(t, ns)
	if want := fmt.Sprintf("(pid %d: ", helper.cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a claim while the helper holds it: %v; want a refusal naming it (%s)", err, want)
	}
	linktest.Must(t, helper.cmd.Process.Kill()) // SIGKILL
	_ = helper.cmd.Wait()
	c, err := claimIn(t, ns)
	if err != nil {
		t.Fatalf("a claim after its holder was killed: %v", err)
	}
	c.Close()
}

func TestCommentOf(t *testing.T) {
	for _, c := range []struct {
		udata []byte
		want  string
	}{
		{[]byte("\x00\x0cpid 1: /bin\x00"), "pid 1: /bin"},
		{[]byte("\x01\x02ab\x00\x03pid\x00"), "pid"}, // another entry first
		{[]byte("\x00\x09pid"), ""},                  // cut short
		{[]byte("\x00"), ""},
		{nil, ""},
	} {
		if got := commentOf(c.udata); got != c.want {
			t.Errorf("commentOf(%q) = %q, want %q", c.udata, got, c.want)
		}
	}
}

type claimHelper struct {
	cmd    *exec.Cmd
	result string // its first line of output
}

// startClaimHelper runs this test binary as a claim helper in ns, as cred's user if given, and waits for
// its result; the helper ends with the test.
func startClaimHelper(t *testing.T, ns string, cred *syscall.Credential) *claimHelper {
	t.Helper()
	linktest.RequireRoot(t)
	exe, err := os.Executable()
	linktest.Must(t, err)
	if cred != nil {
		exe = copyForAll(t, exe) // go test's build directory is root's alone
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), claimHelperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	stdin, err := cmd.StdinPipe()
	linktest.Must(t, err)
	stdout, err := cmd.StdoutPipe()
	linktest.Must(t, err)
	cmd.Stderr = os.Stderr
	// Started from a thread in ns, the helper runs there.
	linktest.MustDo(t, ns, func() { linktest.Must(t, cmd.Start()) })
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		return &claimHelper{cmd: cmd, result: s}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the claim helper said nothing within 10 s")
		return nil
	}
}

// copyForAll copies an executable where every user may run it.
func copyForAll(t *testing.T, exe string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "claim-helper")
	linktest.Must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	linktest.Must(t, os.Chmod(dir, 0o755))
	data, err := os.ReadFile(exe)
	linktest.Must(t, err)
	dst := filepath.Join(dir, "helper")
	linktest.Must(t, os.WriteFile(dst, data, 0o755))
	return dst
}
