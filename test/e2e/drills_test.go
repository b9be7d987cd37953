package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// Reliability drills: many containers at once, the plugin killed under load. TestEtcdOutage and
// TestDockerdRestart cover the other failures.

// parallelRuns is how many containers TestParallelRuns starts at once.
const parallelRuns = 100

// 100 `docker run` at once on one network: all start, with distinct addresses, one endpoint and one
// allocation each; once they are removed no address, endpoint or host interface is left.
func TestParallelRuns(t *testing.T) {
	e := start(t, nil)
	net := e.network("net")
	names := make([]string, parallelRuns)
	errs := make([]error, parallelRuns)
	began := time.Now()
	var wg sync.WaitGroup
	for i := range names {
		names[i] = e.name(fmt.Sprintf("p%03d", i))
		wg.Go(func() {
			_, errs[i] = harness.DockerErr("run", "-d", "--name", names[i], "--net", net, harness.TestImage, "sleep", "3600")
		})
	}
	wg.Wait()
	t.Logf("%d parallel docker run took %v", parallelRuns, time.Since(began).Round(100*time.Millisecond))
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	ips := e.runningIPs(net)
	if len(ips) != parallelRuns {
		t.Fatalf("%d containers running with an address on %s, want %d: %v", len(ips), net, parallelRuns, ips)
	}
	seen := map[netip.Addr]string{}
	for name, ip := range ips {
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both have %s", name, other, ip)
		}
		seen[ip] = name
	}
	e.assertNoLeaks(parallelRuns, parallelRuns)
	e.mustPing(names[0], ips[names[parallelRuns-1]].String())

	began = time.Now()
	e.docker(append([]string{"rm", "-f"}, names...)...)
	t.Logf("removing them took %v", time.Since(began).Round(100*time.Millisecond))
	linktest.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
		if n := len(e.endpoints()); n != 0 {
			return fmt.Errorf("%d endpoints left", n)
		}
		if links := workloadLinks(t); len(links) != 0 {
			return fmt.Errorf("host interfaces left: %v", links)
		}
		return nil
	})
	e.assertNoLeaks(0, 0)
}

// kill -9 of the plugin while containers are being created and removed. Docker retries the calls that
// found no plugin, so docker run and rm succeed, except that the one command whose call the kill cut off
// may fail: Docker resends that call without its body, which the plugin refuses by name. Traffic between
// running containers does not notice, and once the leak collectors have had their grace period
// (shortened here) the datastore holds exactly the running containers' addresses and endpoints, whatever
// the kill interrupted.
func TestPluginKillDuringChurn(t *testing.T) {
	e := start(t, map[string]string{"CALICO_IPAM_GC_GRACE": "5s"})
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	e.mustPing(a, e.containerIP(b, net, false))
	ping := e.watchPing(a, e.containerIP(b, net, false))

	churn := e.startChurn(net)
	churn.waitRounds(t, 3)
	e.plugin.Kill()
	killed := time.Now()
	time.Sleep(time.Second) // Docker's calls meanwhile find no plugin and are retried
	e.plugin.Restart()
	t.Logf("plugin back %v after kill -9", time.Since(killed).Round(100*time.Millisecond))
	churn.waitRounds(t, churn.rounds()+3)
	last, failed := churn.stop(t)
	for i, err := range failed {
		if i > 0 || !strings.Contains(err.Error(), "empty body: Docker resends") {
			t.Errorf("during the churn: %v", err)
		}
	}

	ping.check(t, maxLostPings)
	began := time.Now()
	e.eventuallyOnlyRunning(net, 30*time.Second, a, b, last)
	t.Logf("datastore matched the running containers %v after the churn stopped", time.Since(began).Round(100*time.Millisecond))
}

// churn runs containers on a network one after another, each replacing the previous one, until stopped.
type churn struct {
	e     *env
	stopc chan struct{}
	done  chan struct{}

	mu     sync.Mutex
	n      int    // rounds completed
	last   string // the container left running
	failed []error
}

func (e *env) startChurn(net string) *churn {
	c := &churn{e: e, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for i := 0; ; i++ {
			select {
			case <-c.stopc:
				return
			default:
			}
			name := e.name(fmt.Sprintf("churn%d", i))
			_, err := harness.DockerErr("run", "-d", "--name", name, "--net", net, harness.TestImage, "sleep", "3600")
			c.mu.Lock()
			prev := c.last
			if err == nil {
				c.last = name
			}
			c.mu.Unlock()
			if err == nil && prev != "" {
				_, err = harness.DockerErr("rm", "-f", prev)
			}
			c.mu.Lock()
			c.n++
			if err != nil {
				c.failed = append(c.failed, err)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *churn) rounds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitRounds waits until the churn has completed n rounds.
func (c *churn) waitRounds(t *testing.T, n int) {
	t.Helper()
	linktest.Eventually(t, 2*time.Minute, 100*time.Millisecond, func() error {
		if got := c.rounds(); got < n {
			return fmt.Errorf("container churn at round %d of %d", got, n)
		}
		return nil
	})
}

// stop ends the churn and returns the container left running and the docker commands that failed.
func (c *churn) stop(t *testing.T) (last string, failed []error) {
	t.Helper()
	close(c.stopc)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("container churn: %d rounds", c.n)
	return c.last, c.failed
}

// maxLostPings is how many of the pings sent every 200 ms across a drill may go unanswered in all (so at
// most 0.6 s without an answer): losing none is expected (no drill touches a running container's interfaces or routes), this
// allows for an overloaded machine, not for an outage.
const maxLostPings = 3

// pingWatch is a ping every 200 ms from one container to an address, running across a drill.
type pingWatch struct {
	e    *env
	from string
	cmd  *exec.Cmd
	out  bytes.Buffer
}

func (e *env) watchPing(from, to string) *pingWatch {
	e.t.Helper()
	p := &pingWatch{e: e, from: from}
	p.cmd = exec.Command(harness.DockerBin, "exec", from, "ping", "-i", "0.2", "-W", "1", to)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("starting ping in %s: %v", from, err)
	}
	e.t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	time.Sleep(time.Second) // ping is under way before the drill starts
	return p
}

var (
	pingReplyRE = regexp.MustCompile(`(?m)seq=(\d+) `)
	pingSentRE  = regexp.MustCompile(`(\d+) packets transmitted`)
)

// check stops the ping (SIGINT, so it prints its statistics) and fails the test if more than maxLost
// pings went unanswered. The last ping sent may still be on its way and is not counted.
func (p *pingWatch) check(t *testing.T, maxLost int) {
	t.Helper()
	if out, err := p.e.exec(p.from, "killall", "-INT", "ping"); err != nil {
		t.Fatalf("stopping ping in %s: %v %s", p.from, err, out)
	}
	_ = p.cmd.Wait()
	out := p.out.String()
	m := pingSentRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping printed no statistics:\n%s", out)
	}
	sent, _ := strconv.Atoi(m[1])
	answered := map[int]bool{}
	for _, r := range pingReplyRE.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(r[1])
		answered[seq] = true
	}
	lost, run, longest := 0, 0, 0
	for seq := range sent - 1 {
		if answered[seq] {
			run = 0
			continue
		}
		lost++
		run++
		longest = max(longest, run)
	}
	t.Logf("ping every 200 ms across the drill: %d sent, %d lost, at most %d in a row", sent, lost, longest)
	if sent < 10 || lost > maxLost {
		t.Errorf("ping across the drill: %d sent, %d lost (at most %d allowed):\n%s", sent, lost, maxLost, out)
	}
}

// runningIPs returns the IPv4 address on network of every running container of this test attached to it.
func (e *env) runningIPs(network string) map[string]netip.Addr {
	e.t.Helper()
	// The prefix is random, so matching it anywhere in the name (Docker's filter) finds only this test's.
	names := strings.Fields(e.docker("ps", "--filter", "name="+e.prefix, "--format", "{{.Names}}"))
	ips := map[string]netip.Addr{}
	if len(names) == 0 {
		return ips
	}
	out := e.docker(append([]string{"inspect", "-f",
		fmt.Sprintf(`{{.Name}} {{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, network)}, names...)...)
	for _, line := range strings.Split(out, "\n") {
		name, ip, _ := strings.Cut(strings.TrimSpace(line), " ")
		if addr, err := netip.ParseAddr(ip); err == nil {
			ips[strings.TrimPrefix(name, "/")] = addr
		}
	}
	return ips
}

// eventuallyOnlyRunning waits until the running containers of this test on network are exactly want, and
// the datastore holds exactly their addresses (as many allocations, each of their addresses allocated) and
// their endpoints.
func (e *env) eventuallyOnlyRunning(network string, timeout time.Duration, want ...string) {
	e.t.Helper()
	linktest.Eventually(e.t, timeout, 500*time.Millisecond, func() error {
		running := e.runningIPs(network)
		names := slices.Sorted(maps.Keys(running))
		if !slices.Equal(names, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("running containers %v, want %v", names, want)
		}
		out := e.calicoctl("ipam", "check")
		if m := allocationsRE.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(len(want)) {
			return fmt.Errorf("want %d IPAM allocations, the running containers':\n%s", len(want), out)
		}
		for name, ip := range running {
			if out := e.calicoctl("ipam", "show", "--ip", ip.String()); strings.Contains(out, "not assigned") {
				return fmt.Errorf("%s's address %s is not allocated", name, ip)
			}
		}
		if n := len(e.endpoints()); n != len(want) {
			return fmt.Errorf("%d workload endpoints for %d running containers", n, len(want))
		}
		return nil
	})
	e.assertNoLeaks(len(want), len(want))
}

var workloadLinkRE = regexp.MustCompile(`^cali[0-9a-f]{11}$`)

// workloadLinks lists the host's workload interfaces (cali + 11 hex digits).
func workloadLinks(t *testing.T) []string {
	return slices.DeleteFunc(hostLinks(t), func(name string) bool { return !workloadLinkRE.MatchString(name) })
}
