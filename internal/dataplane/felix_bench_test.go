package dataplane

import (
	"context"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// BenchmarkPolicyToTraffic measures, with this dataplane and then with upstream Felix on the same host
// namespace and datastore in the same run (CALICO_FELIX), how long a policy change takes to reach traffic:
// from writing a GlobalNetworkPolicy that denies a workload's ingress until the first new connection to it
// is dropped (deny-ms), and from deleting it until the first new connection gets through (allow-ms). A new
// connection starts every millisecond; a change's time is the start of the first connection that shows it.
func BenchmarkPolicyToTraffic(b *testing.B) {
	felix := felixBinary(b)
	r := newRig(b, Config{})
	ctx := context.Background()
	for _, o := range parityWorld(b) {
		linktest.Must(b, r.store.Apply(ctx, o))
	}
	r.settle()
	client := r.addWorkload("client", 1, []string{"net-a"}, nil)
	server := r.addWorkload("server", 2, []string{"net-a"}, map[string]string{"role": "server"})
	deny := &api.GlobalNetworkPolicy{Spec: api.PolicySpec{Selector: "role == 'server'",
		Types: []string{"Ingress"}, Ingress: []api.Rule{{Action: api.ActionDeny}}}}
	deny.Name = "bench-deny"
	cycle := func(b *testing.B) (toDrop, toPass time.Duration) {
		toDrop = untilConnects(b, client, server, false, func() {
			deny.ResourceVersion = ""
			linktest.Must(b, r.store.Create(ctx, deny))
		})
		toPass = untilConnects(b, client, server, true, func() {
			linktest.Must(b, r.store.DeleteResource(ctx, api.KindOf(deny), "", deny.Name, ""))
		})
		return toDrop, toPass
	}
	measure := func(b *testing.B) {
		var drops, passes []time.Duration
		for b.Loop() {
			toDrop, toPass := cycle(b)
			drops, passes = append(drops, toDrop), append(passes, toPass)
		}
		b.ReportMetric(median(drops), "deny-ms")
		b.ReportMetric(median(passes), "allow-ms")
	}
	b.Run("dataplane=calico-libnetwork", measure)
	handToFelix(b, felix, r)
	cycle(b) // once Felix has started and programmed the host
	b.Run("dataplane=felix", measure)
}

// untilConnects makes a change, then starts a TCP connection from one workload to another every
// millisecond until one succeeds (want) or fails (!want), and returns when that connection started,
// counted from the change.
func untilConnects(b *testing.B, from, to *workload, want bool, change func()) time.Duration {
	b.Helper()
	shown := make(chan time.Duration, 1)
	start := time.Now()
	change()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	addr := net.JoinHostPort(to.IPv4.String(), strconv.Itoa(probePort))
	for {
		select {
		case d := <-shown:
			return d
		case <-deadline:
			b.Fatalf("no connection from %s to %s went the new way (through: %v) within 2 minutes", from.NS, addr, want)
		case <-tick.C:
			began := time.Since(start)
			go func() {
				var err error
				_ = linktest.Do(from.NS, func() {
					var c net.Conn
					if c, err = net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
						c.Close()
					}
				})
				if (err == nil) == want {
					select {
					case shown <- began:
					default:
					}
				}
			}()
		}
	}
}

func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}
