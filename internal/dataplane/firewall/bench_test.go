package firewall

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// benchIndex is 1,000 local endpoints labelled app=app<i%20>, role=role<i%10>, and 100 policies, each
// selecting one app and allowing TCP to port 8000 from one role (as internal/dataplane's benchmarks).
func benchIndex() (*policy.Index, []*api.WorkloadEndpoint, []*api.PolicySpec) {
	idx := policy.NewIndex("host")
	idx.SetProfile("net", &api.Profile{Spec: api.ProfileSpec{
		Ingress: []api.Rule{{Action: api.ActionAllow}}, Egress: []api.Rule{{Action: api.ActionAllow}}}})
	weps := make([]*api.WorkloadEndpoint, 1000)
	for i := range weps {
		w := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: "host", InterfaceName: fmt.Sprintf("cali%011x", i),
			IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 64+i/65536, i/256%256, i%256)}, Profiles: []string{"net"}}}
		w.Namespace, w.Name = "libnetwork", fmt.Sprint("w", i)
		w.Labels = map[string]string{"app": "app" + strconv.Itoa(i%20), "role": "role" + strconv.Itoa(i%10)}
		idx.SetEndpoint(w.Spec.InterfaceName, w)
		weps[i] = w
	}
	tcp := api.Protocol{Name: "TCP"}
	pols := make([]*api.PolicySpec, 100)
	for i := range pols {
		order := float64(i)
		pols[i] = &api.PolicySpec{Order: &order, Selector: "app == 'app" + strconv.Itoa(i%20) + "'", Types: []string{"Ingress"},
			Ingress: []api.Rule{{Action: api.ActionAllow, Protocol: &tcp,
				Source:      api.EntityRule{Selector: fmt.Sprintf("role == 'role%d' && app != 'x%d'", i%10, i)},
				Destination: api.EntityRule{Ports: []api.Port{{MinPort: 8000, MaxPort: 8000}}}}}}
		idx.SetPolicy("", fmt.Sprintf("pol-%03d", i), pols[i])
	}
	return idx, weps, pols
}

// benchFirewalls are the two ways a transaction reaches the kernel: netlink from the process, and the
// same transaction as an nft script run by the nft tool (what the daemon did before; the baseline).
func benchFirewall(b *testing.B, ns, via string) *Firewall {
	f := newInNS(b, ns)
	if via == "nft" {
		f.transport = func(b *batch) error {
			_, err := linktest.ExecStdin(ns, b.String(), "nft", "-f", "-")
			return err
		}
	}
	return f
}

// BenchmarkApply measures, with 1,000 endpoints and 100 policies, the firewall's share of a change: one
// endpoint's labels (its address leaves ten sets and joins ten others), one policy's port (its chain is
// rewritten), and the full programming of an empty table; by netlink and, as the baseline, by nft.
func BenchmarkApply(b *testing.B) {
	for _, via := range []string{"netlink", "nft"} {
		b.Run("via="+via, func(b *testing.B) {
			ns := linktest.NewNS(b, "fwbench")
			f := benchFirewall(b, ns, via)
			idx, weps, pols := benchIndex()
			if err := f.Ensure(Options{}); err != nil {
				b.Fatal(err)
			}
			if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
				b.Fatal(err)
			}
			b.Run("label", func(b *testing.B) {
				w := weps[500]
				measure(b, func() {}, func(i int) {
					w.Labels = map[string]string{"app": w.Labels["app"], "role": "role" + strconv.Itoa(i%10)}
					idx.SetEndpoint(w.Spec.InterfaceName, w)
					if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run("policy", func(b *testing.B) {
				p := pols[50]
				measure(b, func() {}, func(i int) {
					p.Ingress[0].Destination.Ports[0] = api.Port{MinPort: uint16(8000 + i%100), MaxPort: uint16(8000 + i%100)}
					idx.SetPolicy("", "pol-050", p)
					if err := f.ApplyPolicy(idx, idx.TakeChanges()); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run("full", func(b *testing.B) {
				var fresh *Firewall
				measure(b, func() {
					fresh = benchFirewall(b, ns, via)
					if _, err := f.Remove(); err != nil {
						b.Fatal(err)
					}
					f = fresh
				}, func(int) {
					if err := fresh.ApplyPolicy(idx, idx.All()); err != nil {
						b.Fatal(err)
					}
				})
			})
		})
	}
}

// measure runs op per iteration, after setup (not measured), and reports its percentiles.
func measure(b *testing.B, setup func(), op func(i int)) {
	var took []time.Duration
	for b.Loop() {
		b.StopTimer()
		setup()
		b.StartTimer()
		start := time.Now()
		op(len(took))
		took = append(took, time.Since(start))
	}
	linktest.ReportPercentiles(b, took)
}
