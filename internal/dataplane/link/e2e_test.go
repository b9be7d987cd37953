package link_test

import (
	"net"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// Two workloads reach each other through the host over IPv4 (via the proxy-ARPed 169.254.1.1)
// and IPv6 (via the host end's link-local), with nothing but this package's host-side setup.
func TestWorkloadToWorkload(t *testing.T) {
	_, w := linktest.Routed(t, "cali")
	for _, pair := range [][2]linktest.Workload{{w[0], w[1]}, {w[1], w[0]}} {
		from, to := pair[0], pair[1]
		for _, ip := range []net.IP{to.IPv4, to.IPv6} {
			if err := linktest.Ping(from.NS, ip); err != nil {
				t.Errorf("%s -> %s: %v", from.IPv4, ip, err)
			}
		}
	}
}
