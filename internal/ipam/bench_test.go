package ipam

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// benchResult is the last measurement of one sub-benchmark, for the comparison table.
type benchResult struct {
	rate, p50, p99 float64 // successful allocations per second; latency percentiles in ms
	gaveUp         int64   // requests that hit the retry limit
}

var benchResults = map[string]benchResult{}

// BenchmarkAutoAssign measures burst allocation throughput: conc concurrent AutoAssign calls spread over
// one node or eight, batched or with one compare-and-swap per request (upstream's way).
//
//	go test -run '^$' -bench BenchmarkAutoAssign -benchtime 2000x ./internal/ipam/
func BenchmarkAutoAssign(b *testing.B) {
	clear(benchResults)
	benchAutoAssign(b, "embedded", testStore)
	b.Run("external", func(b *testing.B) {
		e := startExternalEtcd(b)
		s := e.connect(b)
		defer s.Close()
		benchAutoAssign(b, "external", s)
	})
	printComparison()
}

func benchAutoAssign(b *testing.B, etcd string, s *datastore.Store) {
	for _, mode := range []string{"batch", "percas"} {
		for _, conc := range []int{1, 16, 64} {
			for _, nodes := range []int{1, 8} {
				name := fmt.Sprintf("%s/conc%d/%s", mode, conc, nodeLabel(nodes))
				b.Run(name, func(b *testing.B) {
					benchResults[etcd+"/"+name] = runAutoAssign(b, s, mode == "percas", conc, nodes)
				})
			}
		}
	}
}

func nodeLabel(n int) string {
	if n == 1 {
		return "onenode"
	}
	return fmt.Sprintf("%dnodes", n)
}

// runAutoAssign makes b.N allocations with conc workers and reports allocs/s and latency percentiles.
func runAutoAssign(b *testing.B, s *datastore.Store, unbatched bool, conc, nodes int) benchResult {
	reset(b, s)
	createPool(b, s, "bench", "10.0.0.0/8", 26, nil)
	ipams := nodeIPAMs(s, "node", nodes, unbatched)
	lat := make([]time.Duration, b.N)
	var next, gaveUp atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range conc {
		m := ipams[w%nodes]
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				_, _, err := m.AutoAssign(context.Background(), Request{Family: 4, Handle: fmt.Sprintf("libnetwork.bench%d", i)})
				lat[i] = time.Since(t0)
				switch {
				case errors.Is(err, ErrTooManyRetries):
					gaveUp.Add(1) // the per-request way under heavy contention; counted, not fatal
				case err != nil:
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	r := benchResult{rate: float64(int64(b.N)-gaveUp.Load()) / elapsed.Seconds(), p50: ms(0.5), p99: ms(0.99), gaveUp: gaveUp.Load()}
	b.ReportMetric(r.rate, "allocs/s")
	b.ReportMetric(r.p50, "p50-ms")
	b.ReportMetric(r.p99, "p99-ms")
	b.ReportMetric(float64(r.gaveUp), "gave-up")
	return r
}

// printComparison prints batch against per-request CAS for every setting measured in this run.
func printComparison() {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "etcd\tconc\tnodes\tbatch allocs/s\tper-CAS allocs/s\tspeedup\tbatch p50/p99 ms\tper-CAS p50/p99 ms\tper-CAS gave up\t")
	for _, etcd := range []string{"embedded", "external"} {
		for _, conc := range []int{1, 16, 64} {
			for _, nodes := range []int{1, 8} {
				key := fmt.Sprintf("/conc%d/%s", conc, nodeLabel(nodes))
				bt, ok1 := benchResults[etcd+"/batch"+key]
				pc, ok2 := benchResults[etcd+"/percas"+key]
				if !ok1 || !ok2 {
					continue
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.1fx\t%.1f/%.1f\t%.1f/%.1f\t%d\t\n", etcd, conc, nodes,
					bt.rate, pc.rate, bt.rate/pc.rate, bt.p50, bt.p99, pc.p50, pc.p99, pc.gaveUp)
			}
		}
	}
	w.Flush()
}
