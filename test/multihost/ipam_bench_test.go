package multihost

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// contentionHosts is how many hosts allocate at once, each with its own etcd client, as separate daemons
// would; each host runs contentionWorkers requests at a time (containers starting together).
const (
	contentionHosts   = 8
	contentionWorkers = 8
)

// BenchmarkIPAMContention measures allocate-then-release cycles (one container's life in IPAM) with
// contentionHosts hosts working at once against a three-member etcd cluster on loopback. In "own-blocks"
// every host has room in blocks of its own; in "borrowing" the pool has 4 blocks for 8 hosts, so half of
// them take addresses from blocks other hosts are writing too. ns/op is wall time per cycle across the
// cluster; p50-ms and p99-ms are per-cycle latencies.
func BenchmarkIPAMContention(b *testing.B) {
	harness.RequireRoot(b)
	members := make([]memberAddr, 3)
	for i := range members {
		members[i] = memberAddr{client: freeLoopback(b), peer: freeLoopback(b)}
	}
	dir := b.TempDir()
	cluster := startEtcd(b, "", dir, members)
	for _, sc := range []struct {
		name, cidr string
	}{
		{"own-blocks", "198.19.0.0/16"},
		{"borrowing", "198.19.0.0/24"},
	} {
		for _, unbatched := range []bool{false, true} {
			mode := "batched"
			if unbatched {
				mode = "unbatched"
			}
			b.Run(sc.name+"/"+mode, func(b *testing.B) {
				contention(b, strings.Split(cluster.endpoints(), ","), sc.cidr, unbatched)
			})
		}
	}
}

func contention(b *testing.B, endpoints []string, cidr string, unbatched bool) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	stores := make([]*datastore.Store, contentionHosts)
	for i := range stores {
		s, err := datastore.Connect(datastore.ClientConfig{Endpoints: endpoints})
		must(b, err)
		defer s.Close()
		stores[i] = s
	}
	// A clean slate: the pool alone.
	wipe, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := stores[0].Client().Delete(wipe, "/calico/", clientv3.WithPrefix())
	must(b, err)
	pool := &api.IPPool{Spec: api.IPPoolSpec{CIDR: cidr, BlockSize: 26}}
	pool.Name = "bench"
	must(b, stores[0].Create(ctx, pool))

	hosts := make([]*ipam.IPAM, contentionHosts)
	for i := range hosts {
		hosts[i] = ipam.New(stores[i], ipam.Options{Node: fmt.Sprintf("host-%d", i), Unbatched: unbatched, Log: quiet})
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var failures int
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	for h := range hosts {
		for range contentionWorkers {
			wg.Go(func() {
				for j := range jobs {
					start := time.Now()
					addr, _, err := hosts[h].AutoAssign(ctx, ipam.Request{Family: 4, Handle: fmt.Sprintf("bench.%d", j)})
					if err == nil {
						_, err = hosts[h].ReleaseIP(ctx, addr)
					}
					took := time.Since(start)
					mu.Lock()
					latencies = append(latencies, took)
					if err != nil {
						failures++
						firstErr = cmp.Or(firstErr, err)
					}
					mu.Unlock()
				}
			})
		}
	}
	for j := range b.N {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	b.StopTimer()
	// Failures are a result here, not a test failure: upstream's one-request-per-transaction IPAM gives up
	// after 100 lost races, as this one does unbatched.
	if failures > 0 {
		b.Logf("%d of %d cycles failed, first: %v", failures, b.N, firstErr)
	}
	b.ReportMetric(float64(failures), "failed")
	b.ReportMetric(float64(percentile(latencies, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(latencies, 99).Microseconds())/1000, "p99-ms")
}

// freeLoopback returns a loopback host:port nothing listens on.
func freeLoopback(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}
