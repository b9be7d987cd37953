package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

const (
	testNode  = "host1"
	probePort = 8080
)

// rig is a Docker host in network namespaces: a host namespace the agent programs (never the test
// machine's own), workloads plugged into it as Join would, and an embedded etcd.
type rig struct {
	t     testing.TB
	host  string
	store *datastore.Store
	etcd  datastore.ClientConfig
	log   *slog.Logger
	cfg   Config
	wl    map[string]*workload
	agent *Agent // the running agent, nil after kill
	kill  func() // cancels the running agent's context and waits for it: kill -9 without the signal
	// applied is signalled after each pass the agent applies (benchmarks; see settleB).
	applied chan struct{}
}

type workload struct {
	linktest.Workload
	wep *api.WorkloadEndpoint
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	linktest.RequireRoot(t)
	r := &rig{t: t, host: linktest.Host(t), log: slog.New(slog.NewTextHandler(t.Output(), nil)), wl: map[string]*workload{}}
	emb, err := datastore.StartEmbedded(t.TempDir(), r.log)
	linktest.Must(t, err)
	t.Cleanup(emb.Close)
	r.etcd = emb.ClientConfig()
	r.store, err = datastore.Connect(r.etcd)
	linktest.Must(t, err)
	t.Cleanup(func() { r.store.Close() })
	cfg.Node, cfg.Netns = testNode, r.host
	r.cfg = cfg
	r.start()
	return r
}

// start runs a new agent on the rig's host namespace and waits until it has programmed the datastore.
func (r *rig) start() {
	r.t.Helper()
	r.run(r.t, 10*time.Second)
	r.settle()
}

// run runs a new agent on the rig's host namespace and waits, up to within, until it has programmed the
// whole datastore. r.kill stops it, as does the end of tb.
func (r *rig) run(tb testing.TB, within time.Duration) {
	tb.Helper()
	a := New(r.cfg, r.store, r.log)
	linktest.Must(tb, a.Start())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		a.Run(ctx)
		close(ran)
	}()
	r.agent, r.kill = a, func() { cancel(); <-ran; <-a.done; r.agent = nil }
	tb.Cleanup(func() {
		if r.agent == a {
			r.kill()
		}
	})
	select {
	case <-a.Synced():
	case <-time.After(within):
		tb.Fatalf("agent not synced after %s", within)
	}
}

// endpointID is a Docker endpoint ID made from a name.
func endpointID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// addWorkload creates a workload's endpoint (CreateEndpoint), plugs it in and tells the agent (Join),
// and serves probes in it. Workload n has addresses 10.65.0.n and fd00:65::n and the interface the driver
// names after its endpoint ID.
func (r *rig) addWorkload(name string, n int, profiles []string, labels map[string]string) *workload {
	r.t.Helper()
	id := endpointID(name)
	wep, err := api.LibnetworkEndpoint(testNode, id)
	linktest.Must(r.t, err)
	w := &workload{Workload: linktest.Workload{NS: linktest.NewNS(r.t, "wl"), HostIface: api.LibnetworkInterface(id),
		IPv4: net.ParseIP(fmt.Sprintf("10.65.0.%d", n)), IPv6: net.ParseIP(fmt.Sprintf("fd00:65::%d", n))}, wep: wep}
	mac := linktest.Plug(r.t, r.host, w.Workload)
	wep.Labels = labels
	wep.Spec.InterfaceName, wep.Spec.MAC, wep.Spec.Profiles = w.HostIface, mac.String(), profiles
	wep.Spec.IPNetworks = []string{w.IPv4.String() + "/32", w.IPv6.String() + "/128"}
	linktest.Must(r.t, r.store.Create(context.Background(), wep))
	linktest.Must(r.t, r.agent.EndpointUp(context.Background(), wep))
	linktest.Serve(r.t, w.NS, probePort)
	r.wl[name] = w
	return w
}

// put creates or replaces a resource and waits for a running agent to apply it.
func (r *rig) put(o api.Object) {
	r.t.Helper()
	linktest.Must(r.t, r.store.Apply(context.Background(), o))
	r.settle()
}

func (r *rig) del(o api.Object) {
	r.t.Helper()
	m := o.GetObjectMeta()
	linktest.Must(r.t, r.store.DeleteResource(context.Background(), api.KindOf(o), m.Namespace, m.Name, ""))
	r.settle()
}

// relabel replaces a workload's own labels in the datastore.
func (r *rig) relabel(name string, labels map[string]string) {
	r.t.Helper()
	w := r.wl[name]
	w.wep.Labels = labels
	w.wep.ResourceVersion = ""
	r.put(w.wep)
}

// networkProfile is the profile the driver writes for a Docker network.
func networkProfile(name string) *api.Profile {
	p := &api.Profile{Spec: api.ProfileSpec{
		LabelsToApply: map[string]string{name: ""},
		Ingress:       []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: "has(" + name + ")"}}},
		Egress:        []api.Rule{{Action: api.ActionAllow}},
	}}
	p.Name = name
	return p
}

// protocols are the probe kinds a connectivity matrix covers.
var protocols = []string{"tcp4", "udp4", "icmp4", "tcp6", "udp6", "icmp6"}

// probe reports whether one kind of traffic gets from one workload to another.
func probe(from, to *workload, kind string) bool {
	ip := to.IPv4
	if strings.HasSuffix(kind, "6") {
		ip = to.IPv6
	}
	if strings.HasPrefix(kind, "icmp") {
		return linktest.PingWithin(from.NS, ip, linktest.ProbeTimeout) == nil
	}
	_, err := linktest.Probe(from.NS, kind[:3], ip, probePort)
	return err == nil
}

// path is one kind of traffic from one workload to another, written "a1>a2 tcp4".
type path struct{ from, to, kind string }

func (p path) String() string { return p.from + ">" + p.to + " " + p.kind }

// reach probes the paths all at once and reports which got through.
func (r *rig) reach(ps []path) map[path]bool {
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[path]bool{}
	for _, p := range ps {
		wg.Go(func() {
			ok := probe(r.wl[p.from], r.wl[p.to], p.kind)
			mu.Lock()
			got[p] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// paths lists "from>to kind" for space-separated pairs and the given kinds (all when none).
func paths(pairs string, kinds ...string) []string {
	if len(kinds) == 0 {
		kinds = protocols
	}
	var out []string
	for _, p := range strings.Fields(pairs) {
		for _, k := range kinds {
			out = append(out, p+" "+k)
		}
	}
	return out
}

// allPaths lists every kind of traffic between every ordered pair of the named workloads.
func allPaths(names []string) []path {
	var all []path
	for _, from := range names {
		for _, to := range names {
			for _, kind := range protocols {
				if from != to {
					all = append(all, path{from, to, kind})
				}
			}
		}
	}
	return all
}

// settle waits until the running agent, if any, has programmed everything written to the datastore.
func (r *rig) settle() {
	r.t.Helper()
	if r.agent == nil {
		return
	}
	resp, err := r.store.Client().Get(context.Background(), "/")
	linktest.Must(r.t, err)
	deadline := time.Now().Add(10 * time.Second)
	for r.agent.Revision() < resp.Header.Revision {
		if time.Now().After(deadline) {
			r.t.Fatalf("agent at revision %d after 10s, datastore at %d", r.agent.Revision(), resp.Header.Revision)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectReach checks that, among every ordered pair of the named workloads and every protocol, exactly
// the wanted paths get through. Paths that disagree are probed again for up to 5 s before the test
// fails, since a loaded machine can make an allowed probe time out.
func (r *rig) expectReach(names []string, want ...[]string) {
	r.t.Helper()
	r.expectReachWithin(names, 5*time.Second, want...)
}

// expectReachWithin is expectReach with paths that disagree probed again until the timeout.
func (r *rig) expectReachWithin(names []string, timeout time.Duration, want ...[]string) {
	r.t.Helper()
	wanted := map[string]bool{}
	for _, w := range want {
		for _, p := range w {
			wanted[p] = true
		}
	}
	pending := allPaths(names)
	deadline := time.Now().Add(timeout)
	for {
		var wrong []string
		var again []path
		for p, ok := range r.reach(pending) {
			if ok != wanted[p.String()] {
				again = append(again, p)
				wrong = append(wrong, fmt.Sprintf("%s: got through %v, want %v", p, ok, !ok))
			}
		}
		if len(again) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(wrong)
			r.t.Fatalf("connectivity:\n%s", strings.Join(wrong, "\n"))
		}
		pending = again
	}
}

// vethEndpoint is a local endpoint with Docker endpoint ID id and address ip, of the network whose
// profile is "net", with the veth Join would have created for it (in the calling thread's namespace)
// and no container at its other end.
func vethEndpoint(tb testing.TB, id, ip string) *api.WorkloadEndpoint {
	tb.Helper()
	w, err := api.LibnetworkEndpoint(testNode, id)
	linktest.Must(tb, err)
	w.Spec.InterfaceName = api.LibnetworkInterface(id)
	w.Spec.Profiles = []string{"net"}
	w.Spec.IPNetworks = []string{ip + "/32"}
	mac, err := link.CreateVeth(link.Veth{HostName: w.Spec.InterfaceName, PeerName: "tmp" + id[:11]}, nil)
	linktest.Must(tb, err)
	w.Spec.MAC = mac.String()
	return w
}
