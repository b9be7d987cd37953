package e2e

import (
	"regexp"
	"strconv"
	"strings"
)

var allocationsRE = regexp.MustCompile(`Found (\d+) IPAM allocations`)

// assertNoLeaks checks that the datastore holds exactly this many address allocations and workload
// endpoints, and that calicoctl ipam check finds no allocation without an endpoint nor the reverse.
func (e *env) assertNoLeaks(allocations, endpoints int) {
	e.t.Helper()
	out := e.calicoctl("ipam", "check")
	m := allocationsRE.FindStringSubmatch(out)
	if m == nil || m[1] != strconv.Itoa(allocations) || !strings.Contains(out, "found 0 problems") {
		e.t.Errorf("want %d IPAM allocations and no problems:\n%s", allocations, out)
	}
	if n := len(e.endpoints()); n != endpoints {
		e.t.Errorf("want %d workload endpoints, have %d", endpoints, n)
	}
}
