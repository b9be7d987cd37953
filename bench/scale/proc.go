package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// Inside the phase's own network namespace every port is free.
const (
	etcdClient  = "127.0.0.1:2379"
	etcdPeer    = "127.0.0.1:2380"
	metricsAddr = "127.0.0.1:9091"
	// dockerSocket is where the Docker stand-in answers, in the phase's folder.
	dockerSocket = "docker.sock"
)

// process is a child the phase runs (etcd, the daemon), with its output in a file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(name, logFile string, env []string, args ...string) (*process, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	p := &process{name: name, cmd: exec.Command(args[0], args[1:]...), log: logFile, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = f, f, env
	if err := harness.StartTied(p.cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to 10 s, then kills.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startEtcd runs Debian's etcd with its data in dir (on tmpfs, so that disk syncs cost nothing, as on a
// production etcd's fast disks), and room for far more than a run writes.
func startEtcd(binary, dir string) (*process, error) {
	return start("etcd", filepath.Join(dir, "etcd.log"), os.Environ(), binary,
		"--name", "scale", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+etcdClient, "--advertise-client-urls", "http://"+etcdClient,
		"--listen-peer-urls", "http://"+etcdPeer, "--initial-advertise-peer-urls", "http://"+etcdPeer,
		"--initial-cluster", "scale=http://"+etcdPeer, "--quota-backend-bytes", strconv.Itoa(8<<30),
		"--log-level", "warn")
}

// daemonEnv configures calico-libnetwork as a host of the simulated cluster, its dataplane on this
// namespace, its Docker the stand-in (dockerSocket).
func daemonEnv(dir string, c *cluster) []string {
	return append(os.Environ(),
		"ETCD_ENDPOINTS=http://"+etcdClient,
		"NODENAME="+localNode,
		"IP="+c.nodeAddr(c.remote).String(),
		"NO_DEFAULT_POOLS=true",
		"CALICO_LIBNETWORK_PLUGIN_DIR="+filepath.Join(dir, "plugins"),
		"CALICO_DATA_DIR="+filepath.Join(dir, "calico"),
		"DOCKER_HOST=unix://"+filepath.Join(dir, dockerSocket),
		"CALICO_METRICS_ADDR="+metricsAddr,
	)
}

// waitHealthy polls the daemon's /healthz until it answers 200 (etcd answers and the dataplane has
// synced), the daemon exits, or ctx ends.
func waitHealthy(ctx context.Context, d daemonUnderTest) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get("http://" + metricsAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if d.exited() {
			return fmt.Errorf("the daemon exited before it synced; see %s", d.logFile())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the daemon did not sync: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// usage is what /proc says of a process: memory in MB (10^6 bytes) and CPU seconds, its own and its waited-for
// children's (the nft and iptables commands it ran).
type usage struct {
	RSS, HWM      float64 // MiB
	CPU, ChildCPU float64 // seconds
	Threads       int
}

func readUsage(pid int) (usage, error) {
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(status)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			u.RSS = v * 1024 / 1e6
		case "VmHWM:":
			u.HWM = v * 1024 / 1e6
		case "Threads:":
			u.Threads = int(v)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// After "pid (comm) ": state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	ticks := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v / 100 } // USER_HZ
	u.CPU, u.ChildCPU = ticks(14)+ticks(15), ticks(16)+ticks(17)
	return u, nil
}

// logEvent returns the time of the first line of the daemon's log with message msg.
func logEvent(file, msg string) (time.Time, bool) {
	f, err := os.Open(file)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		return t, err == nil
	}
	return time.Time{}, false
}
