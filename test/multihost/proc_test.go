package multihost

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// proc is a daemon the lab runs (etcd member, dockerd, namespace anchor, Felix), killed if the test process
// dies.
type proc struct {
	name string
	args []string
	logs syncbuf.Buffer
	// respawn starts the process again a second after it exits, until stop, as calico/node's runit does
	// for Felix (which exits to take some changes, a new pool's encapsulation say).
	respawn bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited and will not be respawned
	stopping bool
}

// start runs the process (again, after stop).
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, err := p.spawn()
	if err != nil {
		return err
	}
	p.cmd, p.done, p.stopping = cmd, make(chan struct{}), false
	go p.watch(cmd, p.done)
	return nil
}

func (p *proc) spawn() (*exec.Cmd, error) {
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	if err := harness.StartTied(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", p.name, err)
	}
	return cmd, nil
}

// watch waits for cmd, respawning it if it should, and closes done when it is over.
func (p *proc) watch(cmd *exec.Cmd, done chan struct{}) {
	defer close(done)
	for {
		err := cmd.Wait()
		fmt.Fprintf(&p.logs, "--- %s (pid %d) exited: %v\n", p.name, cmd.Process.Pid, err)
		if !p.respawn {
			return
		}
		time.Sleep(time.Second)
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		if cmd, err = p.spawn(); err == nil {
			p.cmd = cmd
		}
		p.mu.Unlock()
		if err != nil {
			fmt.Fprintln(&p.logs, "---", err)
			return
		}
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to timeout, then SIGKILLs. It is a no-op when not running.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	p.mu.Lock()
	p.stopping = true // no respawn from here on, so cmd is the last one
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || !p.running() {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// run executes a short command and returns its combined output.
func run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// killMatching SIGKILLs every process whose command line contains marker, and their descendants: what a
// dead dockerd leaves behind (containerd, shims, container processes). The marker is a folder unique to
// one test run, so nothing else matches.
func killMatching(marker string) {
	children := map[int][]int{}
	var roots []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil &&
			bytes.Contains(cmdline, []byte(marker)) {
			roots = append(roots, pid)
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// "pid (comm) state ppid ...": the parent follows the state after the last ')'.
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
					ppid, _ := strconv.Atoi(f[1])
					children[ppid] = append(children[ppid], pid)
				}
			}
		}
	}
	var kill func(int)
	kill = func(pid int) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for _, c := range children[pid] {
			kill(c)
		}
	}
	for _, pid := range roots {
		kill(pid)
	}
}

// A respawning proc comes back after each exit and stays down once stopped.
func TestProcRespawn(t *testing.T) {
	p := &proc{name: "sleeper", args: []string{"sleep", "0.2"}, respawn: true}
	must(t, p.start())
	exits := func() int { return strings.Count(p.logs.String(), "exited") }
	must(t, waitFor(10*time.Second, func() error {
		if n := exits(); n < 2 {
			return fmt.Errorf("exited %d times, want it respawned", n)
		}
		return nil
	}))
	p.stop(syscall.SIGTERM, 5*time.Second)
	n := exits()
	time.Sleep(1500 * time.Millisecond)
	if p.running() || exits() != n {
		t.Errorf("running %v, %d exits after stop, %d before:\n%s", p.running(), exits(), n, p.logs.String())
	}
}
