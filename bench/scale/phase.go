package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// One phase is one simulated cluster and one daemon, in the network namespace this process runs in.

// options are the knobs of a phase.
type options struct {
	sizes
	daemon, etcd, dir, profileDir string
	probes                        int
	idle, churnFor, probeEvery    time.Duration
	churnRate                     float64
	syncTimeout, probeTimeout     time.Duration
}

// sample is one label probe: when it started (since the churn began) and how long the kernel took.
type sample struct {
	At      time.Duration `json:"at"`
	Latency time.Duration `json:"latency"`
	OK      bool          `json:"ok"`
	Error   string        `json:"error,omitempty"` // the write failed
}

type window struct {
	Took     time.Duration `json:"took"`
	CPU      float64       `json:"cpu"`      // seconds, the daemon's own
	ChildCPU float64       `json:"childCPU"` // seconds, its nft and iptables commands'
}

func (w window) percent() (own, children float64) {
	s := w.Took.Seconds()
	return 100 * w.CPU / s, 100 * w.ChildCPU / s
}

type churnResult struct {
	window
	For     time.Duration `json:"for"`    // how long changes were made
	Target  float64       `json:"target"` // changes/s asked for
	Rate    float64       `json:"rate"`   // made
	Made    int64         `json:"made"`
	Failed  int64         `json:"failed"`
	Error   string        `json:"error,omitempty"`
	Probes  []sample      `json:"probes"`
	Drain   sample        `json:"drain"` // the probe right after the churn stopped
	KeepsUp bool          `json:"keepsUp"`
}

type kernelStats struct {
	Sets, Elements, Chains, Rules int
	ListTook                      time.Duration // one `nft -j list table inet calico`, as the drift check runs it
}

type phaseResult struct {
	Name      string        `json:"name"`
	Sizes     sizes         `json:"sizes"`
	InProcess bool          `json:"inProcess"`
	Load      loadStats     `json:"load"`
	Sync      time.Duration `json:"sync"`    // start to /healthz 200
	SyncLog   time.Duration `json:"syncLog"` // start to the log's "dataplane synced with the datastore"
	AtSync    usage         `json:"atSync"`
	SyncCPU   window        `json:"syncCPU"`
	Idle      window        `json:"idle"`
	Probes    []sample      `json:"probes"`
	Churn     churnResult   `json:"churn"`
	End       usage         `json:"end"`
	Kernel    kernelStats   `json:"kernel"`
	Scrape    time.Duration `json:"scrape"` // one GET /metrics
	EtcdRSS   float64       `json:"etcdRSS"`
}

// runPhase runs one phase and returns what it measured.
func runPhase(name string, o options) (*phaseResult, error) {
	c, err := newCluster(o.sizes)
	if err != nil {
		return nil, err
	}
	res := &phaseResult{Name: name, Sizes: o.sizes, InProcess: o.profileDir != ""}
	if err := setupNamespace(c); err != nil {
		return nil, err
	}
	etcd, err := startEtcd(o.etcd, o.dir)
	if err != nil {
		return nil, err
	}
	defer etcd.stop()
	ctx := context.Background()
	store, err := datastore.Connect(datastore.ClientConfig{Endpoints: []string{"http://" + etcdClient}, RequestTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := store.WaitReady(wctx, discard); err != nil {
		return nil, fmt.Errorf("%w (etcd's log: %s)", err, etcd.log)
	}

	log.Printf("[%s] loading etcd: %d nodes, %d endpoints, %d policies, %d local endpoints", name, c.Nodes, c.Endpoints, c.Policies, c.Local)
	if res.Load, err = load(ctx, store, c); err != nil {
		return nil, err
	}
	log.Printf("[%s] loaded %d keys (%.0f MB) in %s", name, res.Load.Keys, float64(res.Load.Bytes)/1e6, res.Load.Took.Round(time.Millisecond))

	stand, err := newDockerStandIn(c)
	if err != nil {
		return nil, err
	}
	dockerAPI, err := stand.serve(filepath.Join(o.dir, dockerSocket))
	if err != nil {
		return nil, err
	}
	defer dockerAPI.Close()

	prof := &profiler{dir: o.profileDir, phase: name}
	if err := prof.startCPU("sync"); err != nil {
		return nil, err
	}
	started := time.Now()
	var d daemonUnderTest
	if o.profileDir != "" {
		d, err = startInProcess(o.dir, c)
	} else {
		d, err = startBinary(o.daemon, o.dir, c)
	}
	if err != nil {
		return nil, err
	}
	defer d.stop()
	sctx, cancel := context.WithTimeout(ctx, o.syncTimeout)
	defer cancel()
	if err := waitHealthy(sctx, d); err != nil {
		return nil, err
	}
	res.Sync = time.Since(started)
	prof.stopCPU()
	if res.AtSync, err = readUsage(d.pid()); err != nil {
		return nil, err
	}
	res.SyncCPU = window{Took: res.Sync, CPU: res.AtSync.CPU, ChildCPU: res.AtSync.ChildCPU}
	if at, ok := logEvent(d.logFile(), "dataplane synced with the datastore"); ok {
		res.SyncLog = at.Sub(started)
	}
	log.Printf("[%s] daemon synced in %s, RSS %.0f MB (peak %.0f MB)", name, res.Sync.Round(time.Millisecond), res.AtSync.RSS, res.AtSync.HWM)
	if err := prof.heap("sync"); err != nil {
		return nil, err
	}

	set, err := probeSet(ctx)
	if err != nil {
		return nil, err
	}
	mon, err := startMonitor()
	if err != nil {
		return nil, err
	}
	defer mon.stop()
	p := &prober{c: c, store: store, mon: mon, set: set, addr: c.addr(c.probeSlot()).String()}

	log.Printf("[%s] idle for %s", name, o.idle)
	if res.Idle, err = measure(d, func() error { time.Sleep(o.idle); return nil }); err != nil {
		return nil, err
	}

	log.Printf("[%s] %d label probes through set %s", name, 2*o.probes, set)
	for i := range 2 * o.probes {
		res.Probes = append(res.Probes, p.flip(ctx, i%2 == 0, o.probeTimeout))
		time.Sleep(200*time.Millisecond + rand.N(100*time.Millisecond))
	}

	if o.churnFor > 0 {
		log.Printf("[%s] churn: %.0f endpoint changes/s for %s", name, o.churnRate, o.churnFor)
		if err := prof.startCPU("churn"); err != nil {
			return nil, err
		}
		res.Churn, err = churn(ctx, c, store, p, d, o)
		prof.stopCPU()
		if err != nil {
			return nil, err
		}
	}
	if err := prof.heap("end"); err != nil {
		return nil, err
	}
	if res.End, err = readUsage(d.pid()); err != nil {
		return nil, err
	}
	if res.Scrape, err = scrape(); err != nil {
		return nil, err
	}
	if res.Kernel, err = kernelTable(ctx); err != nil {
		return nil, err
	}
	if u, err := readUsage(etcd.pid()); err == nil {
		res.EtcdRSS = u.RSS
	}
	return res, nil
}

// measure runs fn and returns how much CPU the daemon and its commands used meanwhile.
func measure(d daemonUnderTest, fn func() error) (window, error) {
	before, err := readUsage(d.pid())
	if err != nil {
		return window{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return window{}, err
	}
	after, err := readUsage(d.pid())
	return window{Took: time.Since(start), CPU: after.CPU - before.CPU, ChildCPU: after.ChildCPU - before.ChildCPU}, err
}

// churn changes endpoints across the cluster at o.churnRate for o.churnFor while flipping the probe
// label every o.probeEvery; then one more probe tells how far behind the daemon ended.
func churn(ctx context.Context, c *cluster, store *datastore.Store, p *prober, d daemonUnderTest, o options) (churnResult, error) {
	var r churnResult
	ch := newChurner(c, store)
	w, err := measure(d, func() error {
		cctx, cancel := context.WithTimeout(ctx, o.churnFor)
		defer cancel()
		done := make(chan struct{})
		go func() { ch.run(cctx, o.churnRate); close(done) }()
		start, on := time.Now(), true
		for cctx.Err() == nil {
			at := time.Since(start)
			s := p.flip(ctx, on, o.probeTimeout)
			s.At = at
			r.Probes = append(r.Probes, s)
			on = !on
			select {
			case <-cctx.Done():
			case <-time.After(o.probeEvery):
			}
		}
		<-done
		r.Drain = p.flip(ctx, on, o.probeTimeout)
		r.Drain.At = time.Since(start)
		return nil
	})
	r.window = w
	r.Made, r.Failed, r.Target, r.For = ch.done.Load(), ch.failed.Load(), o.churnRate, o.churnFor
	r.Rate = float64(r.Made) / o.churnFor.Seconds()
	if e := ch.err(); e != nil {
		r.Error = e.Error()
	}
	r.KeepsUp = keepsUp(r)
	return r, err
}

// keepsUp judges the churn: a daemon that falls behind answers each probe later than the one before, as
// its backlog grows. It keeps up when every probe was answered, the last third of the probes took at most
// twice as long as the first third (plus 200 ms of noise), and the probe after the churn took under 5 s.
func keepsUp(r churnResult) bool {
	if len(r.Probes) < 3 || !r.Drain.OK || r.Drain.Latency > 5*time.Second {
		return false
	}
	var lat []time.Duration
	for _, s := range r.Probes {
		if !s.OK {
			return false
		}
		lat = append(lat, s.Latency)
	}
	third := len(lat) / 3
	first, last := median(lat[:third]), median(lat[len(lat)-third:])
	return last <= 2*first+200*time.Millisecond
}

// scrape times one GET /metrics (its collectors read the datastore).
func scrape() (time.Duration, error) {
	start := time.Now()
	resp, err := (&http.Client{Timeout: time.Minute}).Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return time.Since(start), err
}

// kernelTable counts what table inet calico holds, reading it as the daemon's drift check does.
func kernelTable(ctx context.Context) (kernelStats, error) {
	var k kernelStats
	start := time.Now()
	out, err := exec.CommandContext(ctx, "nft", "-j", "list", "table", "inet", "calico").Output()
	k.ListTook = time.Since(start)
	if err != nil {
		return k, fmt.Errorf("nft list table inet calico: %w", err)
	}
	var listing struct {
		Nftables []map[string]struct {
			Elem []json.RawMessage `json:"elem"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &listing); err != nil {
		return k, err
	}
	for _, entry := range listing.Nftables {
		for kind, o := range entry {
			switch kind {
			case "set", "map":
				k.Sets++
				k.Elements += len(o.Elem)
			case "chain":
				k.Chains++
			case "rule":
				k.Rules++
			}
		}
	}
	return k, nil
}

// setupNamespace prepares this namespace as the host: loopback, an uplink with the host's address in the
// nodes' network (so the daemon's routes to other nodes' blocks have a next hop), and a veth for each
// local container, as the driver's Join leaves it.
func setupNamespace(c *cluster) error {
	var script strings.Builder
	fmt.Fprintln(&script, "link set lo up")
	// A veth whose peer stays here too: this kernel may lack the dummy module.
	fmt.Fprintln(&script, "link add eth0 type veth peer name uplink-peer")
	fmt.Fprintf(&script, "address add %s dev eth0\n", c.nodeAddr(c.remote))
	fmt.Fprintln(&script, "link set uplink-peer up")
	fmt.Fprintln(&script, "link set eth0 up")
	for i := range c.Local {
		w, err := c.localWEP(i)
		if err != nil {
			return err
		}
		fmt.Fprintf(&script, "link add %s type veth peer name scale-c%d\n", w.Spec.InterfaceName, i)
		fmt.Fprintf(&script, "link set %s up\n", w.Spec.InterfaceName)
	}
	cmd := exec.Command("ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("setting up the namespace: %w: %s", err, out)
	}
	return nil
}

// discard is a logger for the benchmark's own datastore client.
var discard = slog.New(slog.DiscardHandler)
