package driver

import (
	"fmt"
	"net/netip"
	"testing"
)

// The routes each Join answers for a container with two networks drawing on one pool: the first routes its
// pool through its own gateway; the second, joined while the container runs with that route in place,
// takes it out (Docker would refuse the second interface's address inside it) and gives it back. Joined
// before the container starts, nothing is in place to take out.
func TestPlanSharedPool(t *testing.T) {
	pool := netip.MustParsePrefix("10.65.0.0/16")
	first := []netip.Prefix{netip.MustParsePrefix("10.65.0.7/32")}
	second := []netip.Prefix{netip.MustParsePrefix("10.65.0.0/32")}
	describe := func(p joinPlan) string {
		var routes []string
		for _, r := range p.routes {
			routes = append(routes, r.dst.String()+" via "+r.via.String())
		}
		return fmt.Sprintf("gw %s routes %v displace %v", p.gw4, routes, p.displace)
	}

	s := newSandboxes()
	a, err := s.plan("ns", "a", nil, first, []netip.Prefix{pool}, true, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(a), "gw 169.254.1.1 routes [169.254.1.1/32 via invalid IP 10.65.0.0/16 via 169.254.1.1] displace []"; got != want {
		t.Errorf("first Join: %s, want %s", got, want)
	}
	running := []netip.Prefix{netip.MustParsePrefix("169.254.1.1/32"), pool}
	b, err := s.plan("ns", "b", running, second, nil, true, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(b), "gw 169.254.1.2 routes [10.65.0.0/16 via 169.254.1.1 169.254.1.2/32 via invalid IP] displace [10.65.0.0/16]"; got != want {
		t.Errorf("second Join, container running: %s, want %s", got, want)
	}

	s = newSandboxes()
	if _, err := s.plan("ns", "a", nil, first, []netip.Prefix{pool}, true, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	b, err = s.plan("ns", "b", nil, second, nil, true, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(b), "gw 169.254.1.2 routes [169.254.1.2/32 via invalid IP] displace []"; got != want {
		t.Errorf("second Join before the container starts: %s, want %s", got, want)
	}
}
