package policy

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// BenchmarkLabelChange is the index's share of a label change (re-evaluating the selectors against one
// endpoint and replanning it) with 100 policies: flat in the number of endpoints.
func BenchmarkLabelChange(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			x := NewIndex(node)
			x.SetProfile("net", networkProfile("net"))
			for i := range 100 {
				x.SetPolicy("", fmt.Sprintf("pol-%d", i), gnp(float64(i), fmt.Sprintf("app == 'app%d'", i%20), []string{"Ingress"},
					[]api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: fmt.Sprintf("role == 'role%d' && app != 'x%d'", i%10, i)}}}, nil))
			}
			weps := make([]*api.WorkloadEndpoint, n)
			for i := range weps {
				weps[i] = wep(node, fmt.Sprintf("cali%d", i), fmt.Sprintf("10.%d.%d.%d", 64+i/65536, i/256%256, i%256), []string{"net"},
					map[string]string{"app": "app" + strconv.Itoa(i%20), "role": "role" + strconv.Itoa(i%10)})
				x.SetEndpoint(strconv.Itoa(i), weps[i])
			}
			x.TakeChanges()
			w := weps[n/2]
			for i := 0; b.Loop(); i++ {
				w.Labels["role"] = "role" + strconv.Itoa(i%10)
				x.SetEndpoint(strconv.Itoa(n/2), w)
				x.TakeChanges()
			}
		})
	}
}
