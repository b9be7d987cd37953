package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// The label probe: flip the scale-probe label of a remote endpoint and time until the kernel's set of the
// probe policy gains or loses its address. The kernel tells: `nft monitor` prints every set element the
// daemon's transactions add or delete, as they commit, so nothing polls.

// monitor follows `nft monitor elements` in this network namespace.
type monitor struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	want *expectation
}

// expectation is an element a waiter waits to see added (add) or deleted from a set.
type expectation struct {
	set, elem string
	add       bool
	seen      chan time.Time
}

func startMonitor() (*monitor, error) {
	m := &monitor{cmd: exec.Command("nft", "monitor", "elements")}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := harness.StartTied(m.cmd); err != nil {
		return nil, fmt.Errorf("nft monitor: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			m.observe(time.Now(), sc.Text())
		}
	}()
	return m, nil
}

// observe matches one line, e.g. "add element inet calico s4-XYZ { 10.0.0.5 }", against the expectation.
func (m *monitor) observe(at time.Time, line string) {
	f := strings.Fields(line)
	if len(f) < 5 || f[1] != "element" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.want
	if w == nil || f[4] != w.set || (f[0] == "add") != w.add || !containsElem(f[5:], w.elem) {
		return
	}
	w.seen <- at
	m.want = nil
}

func containsElem(fields []string, elem string) bool {
	for _, f := range fields {
		if strings.Trim(f, "{},") == elem {
			return true
		}
	}
	return false
}

// expect registers the next expectation; register before making the change.
func (m *monitor) expect(set, elem string, add bool) <-chan time.Time {
	w := &expectation{set: set, elem: elem, add: add, seen: make(chan time.Time, 1)}
	m.mu.Lock()
	m.want = w
	m.mu.Unlock()
	return w.seen
}

func (m *monitor) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

var setRef = regexp.MustCompile(`@(s4-[A-Za-z0-9_.-]+)`)

// probeSet finds the IPv4 set of the probe policy's source selector in the kernel: the set its ingress
// chain (pi-scale-probe-<hash>) refers to.
func probeSet(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "nft", "list", "chains", "inet").Output()
	if err != nil {
		return "", fmt.Errorf("nft list chains: %w", err)
	}
	chain := regexp.MustCompile(`chain (pi-` + probePolicy + `-[a-z0-9]+) `).FindStringSubmatch(string(out))
	if chain == nil {
		return "", fmt.Errorf("no ingress chain of policy %s in table inet calico", probePolicy)
	}
	out, err = exec.CommandContext(ctx, "nft", "list", "chain", "inet", "calico", chain[1]).Output()
	if err != nil {
		return "", fmt.Errorf("nft list chain %s: %w", chain[1], err)
	}
	set := setRef.FindStringSubmatch(string(out))
	if set == nil {
		return "", fmt.Errorf("chain %s refers to no IPv4 set:\n%s", chain[1], out)
	}
	return set[1], nil
}

// prober flips the probe endpoint's label and times the kernel's answer.
type prober struct {
	c     *cluster
	store *datastore.Store
	mon   *monitor
	set   string
	addr  string
}

// flip sets the probe label to on (or off) and says how long the kernel took to add (or delete) the probe
// endpoint's address, from just before the datastore write; not OK after timeout or when the write failed.
// A write etcd fails (it times out under load, maybe after all applying it) is checked and retried twice.
func (p *prober) flip(ctx context.Context, on bool, timeout time.Duration) sample {
	d, ok, err := p.try(ctx, on, timeout)
	s := sample{Latency: d, OK: ok && err == nil}
	if err != nil {
		s.Error = err.Error()
		log.Printf("label probe: %v", err)
	}
	return s
}

func (p *prober) try(ctx context.Context, on bool, timeout time.Duration) (d time.Duration, ok bool, err error) {
	want := map[bool]string{true: "on", false: "off"}[on]
	var seen <-chan time.Time
	var start time.Time
	for attempt := 0; ; attempt++ {
		w, err := p.c.probeWEP(on)
		if err != nil {
			return 0, false, err
		}
		current, err := datastore.Get[*api.WorkloadEndpoint](ctx, p.store, w.Namespace, w.Name)
		if err == nil && attempt > 0 && current.Labels["scale-probe"] == want {
			break // an earlier attempt landed
		}
		if err == nil {
			current.Labels["scale-probe"] = want
			if seen == nil {
				seen, start = p.mon.expect(p.set, p.addr, on), time.Now()
			}
			if err = p.store.Update(ctx, current); err == nil {
				break
			}
		}
		if attempt == 2 || ctx.Err() != nil {
			return 0, false, fmt.Errorf("probe write: %w", err)
		}
	}
	select {
	case at := <-seen:
		return at.Sub(start), true, nil
	case <-time.After(timeout - time.Since(start)):
		return timeout, false, nil
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}
