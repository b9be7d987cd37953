package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// benchPolicies is how many policies every benchmark datastore holds.
const benchPolicies = 100

// benchRig is a rig whose datastore holds n local endpoints (no interfaces: the firewall matches them
// by name) in one network, labelled app=app<i%20>, role=role<i%10>, and benchPolicies policies, each
// selecting one app and allowing TCP from one role: about 100 selector sets and 20 distinct plans.
func benchRig(b *testing.B, n int) (*rig, []*api.WorkloadEndpoint, []*api.GlobalNetworkPolicy) {
	b.Helper()
	linktest.RequireRoot(b)
	r := &rig{host: linktest.Host(b), wl: map[string]*workload{}, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	emb, err := datastore.StartEmbedded(b.TempDir(), r.log)
	linktest.Must(b, err)
	b.Cleanup(emb.Close)
	r.store, err = datastore.Connect(emb.ClientConfig())
	linktest.Must(b, err)
	b.Cleanup(func() { r.store.Close() })
	// Periodic reconciles would land in some measurements and not others: BenchmarkResync/periodic
	// measures them on their own.
	r.cfg = Config{Node: testNode, Netns: r.host, ResyncInterval: time.Hour}
	r.applied = make(chan struct{}, 1)
	r.cfg.ObserveConvergence = func(time.Duration) {
		select {
		case r.applied <- struct{}{}:
		default:
		}
	}

	var objs []api.Object
	objs = append(objs, networkProfile("net"))
	weps := make([]*api.WorkloadEndpoint, n)
	for i := range weps {
		id := fmt.Sprintf("%011x%053x", i, 0)
		w, err := api.LibnetworkEndpoint(testNode, id)
		linktest.Must(b, err)
		w.Labels = map[string]string{"app": "app" + strconv.Itoa(i%20), "role": "role" + strconv.Itoa(i%10)}
		w.Spec.InterfaceName = api.LibnetworkInterface(id)
		w.Spec.Profiles = []string{"net"}
		w.Spec.IPNetworks = []string{fmt.Sprintf("10.%d.%d.%d/32", 64+i/65536, i/256%256, i%256)}
		weps[i] = w
		objs = append(objs, w)
	}
	pols := make([]*api.GlobalNetworkPolicy, benchPolicies)
	for i := range pols {
		pols[i] = gnp(fmt.Sprintf("pol-%03d", i), float64(i), "app == 'app"+strconv.Itoa(i%20)+"'", []string{"Ingress"},
			[]api.Rule{{Action: api.ActionAllow, Protocol: protocol("TCP"),
				Source:      api.EntityRule{Selector: fmt.Sprintf("role == 'role%d' && app != 'x%d'", i%10, i)},
				Destination: api.EntityRule{Ports: []api.Port{{MinPort: 8000, MaxPort: 8000}}}}}, nil)
		objs = append(objs, pols[i])
	}
	create(b, r.store, objs)
	return r, weps, pols
}

// create stores objects with a few writers at once.
func create(b *testing.B, store *datastore.Store, objs []api.Object) {
	var wg sync.WaitGroup
	work := make(chan api.Object)
	for range 16 {
		wg.Go(func() {
			for o := range work {
				linktest.Must(b, store.Create(context.Background(), o))
			}
		})
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
}

// settleB is rig.settle for benchmarks: it waits until the agent has applied every write so far. It
// wakes as each pass ends (polling would add up to its period to every measurement).
func (r *rig) settleB(rev int64) {
	for r.agent.Revision() < rev {
		<-r.applied
	}
}

// cpuTime is the CPU time this process and the commands it waited for (nft, iptables) have used: a
// measure of the work done that, unlike elapsed time, holds up on a busy machine. It includes the
// embedded etcd's share.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		_ = syscall.Getrusage(who, &ru)
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// measure runs op in b.Loop and also reports its CPU time per iteration.
func measure(b *testing.B, op func(i int)) {
	begin := cpuTime()
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		op(len(took))
		took = append(took, time.Since(start))
	}
	b.ReportMetric(float64((cpuTime()-begin).Microseconds())/1000/float64(len(took)), "cpu-ms/op")
	linktest.ReportPercentiles(b, took)
}

// BenchmarkChange measures, for 10, 100 and 1,000 endpoints and 100 policies, the time from a write to
// etcd until the kernel has it (the agent records a revision once the kernel has acknowledged the
// transaction): one
// endpoint's labels, and one policy's rules.
func BenchmarkChange(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			r, weps, pols := benchRig(b, n)
			r.run(b, time.Minute)
			b.Run("label", func(b *testing.B) {
				w := weps[n/2]
				measure(b, func(i int) {
					w.Labels["role"] = "role" + strconv.Itoa(i%10)
					linktest.Must(b, r.store.Update(context.Background(), w))
					rev, _ := strconv.ParseInt(w.ResourceVersion, 10, 64)
					r.settleB(rev)
				})
			})
			b.Run("policy", func(b *testing.B) {
				p := pols[benchPolicies/2]
				measure(b, func(i int) {
					p.Spec.Ingress[0].Destination.Ports[0] = api.Port{MinPort: uint16(8000 + i%100), MaxPort: uint16(8000 + i%100)}
					linktest.Must(b, r.store.Update(context.Background(), p))
					rev, _ := strconv.ParseInt(p.ResourceVersion, 10, 64)
					r.settleB(rev)
				})
			})
		})
	}
}

// BenchmarkResync measures, with 1,000 endpoints and 100 policies, the time for a new agent to program
// the complete state, from Start until it reports itself synced: into an empty table, and over what a
// killed agent left (a restart); and the periodic reconcile of an agent with nothing to change (drift
// check of the table, iptables jump, pools, routes).
func BenchmarkResync(b *testing.B) {
	r, _, _ := benchRig(b, 1000)
	for _, tc := range []struct {
		name  string
		empty bool
	}{{"empty", true}, {"restart", false}} {
		b.Run(tc.name, func(b *testing.B) {
			measure(b, func(int) {
				if tc.empty {
					b.StopTimer()
					out, err := linktest.Exec(r.host, "nft", "add table inet calico; delete table inet calico")
					linktest.Must(b, fmtErr(out, err))
					b.StartTimer()
				}
				r.run(b, time.Minute)
				b.StopTimer()
				r.kill()
				b.StartTimer()
			})
		})
	}
	b.Run("periodic", func(b *testing.B) {
		r.run(b, time.Minute)
		measure(b, func(int) {
			linktest.Must(b, r.agent.do(context.Background(), r.agent.resync))
		})
	})
}

// BenchmarkJoinBurst measures a burst of Joins: with 1,000 endpoints and 100 policies programmed, n new
// endpoints, each with its veth, call EndpointUp at once (as n parallel `docker run` do); an iteration
// ends when all have returned, their routes and dispatch entries in the kernel.
func BenchmarkJoinBurst(b *testing.B) {
	r, _, _ := benchRig(b, 1000)
	r.run(b, time.Minute)
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			next := 0
			measure(b, func(int) {
				b.StopTimer()
				weps := make([]*api.WorkloadEndpoint, n)
				linktest.MustDo(b, r.host, func() {
					for i := range weps {
						id := fmt.Sprintf("%011x%053x", 1<<40|n<<20|next, 0)
						weps[i] = vethEndpoint(b, id, fmt.Sprintf("10.%d.%d.%d", 96+n, next/256%256, next%256))
						weps[i].Labels = map[string]string{"app": "app" + strconv.Itoa(next%20), "role": "role" + strconv.Itoa(next%10)}
						next++
					}
				})
				b.StartTimer()
				var wg sync.WaitGroup
				for _, w := range weps {
					wg.Go(func() { linktest.Must(b, r.agent.EndpointUp(context.Background(), w)) })
				}
				wg.Wait()
			})
		})
	}
}
