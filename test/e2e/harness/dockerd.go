package harness

import (
	"bytes"
	"fmt"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// DefaultDockerdPidFile is where dockerd writes its pid unless started with --pidfile.
	DefaultDockerdPidFile = "/var/run/docker.pid"

	dockerdStopTimeout  = 60 * time.Second
	dockerdReadyTimeout = 60 * time.Second
)

// DockerdPidFile is the pid file of the dockerd under test, which RestartDockerd restarts:
// $HARNESS_DOCKERD_PIDFILE, else DefaultDockerdPidFile.
var DockerdPidFile = envOr("HARNESS_DOCKERD_PIDFILE", DefaultDockerdPidFile)

// RestartDockerd restarts the dockerd under test (the pid in DockerdPidFile) with the command line,
// environment and working folder it was started with (read from /proc), detached, logging to DockerdLog.
func RestartDockerd(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	raw, err := os.ReadFile(DockerdPidFile)
	if err != nil {
		t.Fatalf("RestartDockerd: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("RestartDockerd: bad pid in %s: %q", DockerdPidFile, raw)
	}
	proc := fmt.Sprintf("/proc/%d", pid)
	argv := splitNul(mustRead(t, proc+"/cmdline"))
	if len(argv) == 0 {
		t.Fatalf("RestartDockerd: pid %d from %s is not running", pid, DockerdPidFile)
	}
	env := splitNul(mustRead(t, proc+"/environ"))
	dir, _ := os.Readlink(proc + "/cwd")
	exe, err := os.Readlink(proc + "/exe")
	if err != nil || strings.HasSuffix(exe, " (deleted)") {
		if exe, err = exec.LookPath(argv[0]); err != nil {
			t.Fatalf("RestartDockerd: cannot find the dockerd binary %q: %v", argv[0], err)
		}
	}

	t.Logf("restarting dockerd (pid %d): %s", pid, strings.Join(argv, " "))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("RestartDockerd: SIGTERM %d: %v", pid, err)
	}
	if !waitExit(pid, dockerdStopTimeout) {
		t.Logf("dockerd (pid %d) still running after %v, sending SIGKILL", pid, dockerdStopTimeout)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitExit(pid, 10*time.Second)
	}

	logf, err := os.OpenFile(DockerdLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("RestartDockerd: %v", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s harness.RestartDockerd: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	cmd := &exec.Cmd{Path: exe, Args: argv, Env: env, Dir: dir, Stdout: logf, Stderr: logf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	closeInheritedOnExec()
	if err := cmd.Start(); err != nil {
		t.Fatalf("RestartDockerd: start %s: %v", exe, err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it exits while the tests run

	linktest.Eventually(t, dockerdReadyTimeout, 250*time.Millisecond, func() error {
		_, err := DockerErr("info")
		return err
	})
}

// mustRead returns the file's content or fails the test.
// closeInheritedOnExec keeps descriptors this process inherited away from the daemons it starts: run as
// `flock LOCK go test ...`, the tests inherit flock's open lock, and a restarted dockerd, which outlives
// them, would otherwise hold the lock for good.
func closeInheritedOnExec() {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("RestartDockerd: %v", err)
	}
	return b
}

// splitNul splits a NUL-separated /proc list.
func splitNul(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(b, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}

// waitExit waits until pid is gone or a zombie, reporting whether it exited in time.
func waitExit(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the parenthesised command name: "pid (comm) S ...".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
