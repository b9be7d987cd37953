package driver

import (
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

func TestCheckIDs(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		network, endpoint string
		want              string // "" for accepted
	}{
		{id, id, ""},
		{id[:12], id[:12], ""},
		{"r1omwlb831hppr5yrfq4vtfl1", id, ""}, // a swarm network
		{"r1omwlb831hppr5yrfq4vtfl1", "r1omwlb831hppr5yrfq4vtfl1", "malformed EndpointID"},
		{strings.ToUpper(id), id, "malformed NetworkID"},
		{"../" + id, id, `malformed NetworkID "../` + id[:61] + `... (67 bytes)"`},
		{id, "a/b", `malformed EndpointID "a/b"`},
		{id, "..", `malformed EndpointID ".."`},
		{id, strings.ToUpper(id), "malformed EndpointID"},
		{id, id[:11], "malformed EndpointID"},
		{"", id, `malformed NetworkID ""`},
	} {
		err := checkIDs(tc.network, tc.endpoint)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkIDs(%.20q, %.20q) = %v, want %q", tc.network, tc.endpoint, err, tc.want)
		}
	}
}

func TestRefusalIsBounded(t *testing.T) {
	var problems []flagProblem
	for _, f := range []string{"-o c=1", "-o a=1", "--internal"} {
		problems = append(problems, flagProblem{f, "no"})
	}
	if got := refusal(problems).Error(); got != "calico networks do not support --internal (no), -o a=1 (no), -o c=1 (no)" {
		t.Errorf("refusal: %s", got)
	}
	for i := range 3 * maxProblems {
		problems = append(problems, flagProblem{strings.Repeat("x", i), "no"})
	}
	if got := refusal(problems).Error(); strings.Count(got, "(no)") != maxProblems || !strings.HasSuffix(got, ", and 35 more") {
		t.Errorf("refusal of many flags: %s", got)
	}
}

func TestValidLabel(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		ok         bool
	}{
		{"role", "db", true},
		{"example.com/tier", "", true},
		{"role", strings.Repeat("v", 63), true},
		{"role", strings.Repeat("v", 64), false},
		{"role", "a b", false},
		{"role", "-db", false},
		{"a b", "db", false},
		{"", "db", false},
		{strings.Repeat("k", 64), "db", false},
	} {
		if got := validLabel(tc.key, tc.value); got != tc.ok {
			t.Errorf("validLabel(%.20q, %.20q) = %v, want %v", tc.key, tc.value, got, tc.ok)
		}
	}
}

// A swarm network without calico IPAM gets told how swarm networks get it; a local one, the flag.
func TestForeignIPAMReason(t *testing.T) {
	d := &Driver{cfg: Config{IPAMDriver: DefaultIPAMDriver}, rejected: newRejections()}
	foreign := []libnetwork.IPAMData{{AddressSpace: "GlobalDefault", Pool: "10.0.1.0/24", Gateway: "10.0.1.1/24"}}
	for _, tc := range []struct{ id, want string }{
		{strings.Repeat("0123456789abcdef", 4), "needs --ipam-driver calico-ipam"},
		{"r1omwlb831hppr5yrfq4vtfl1", "--config-from"},
	} {
		problems := d.checkNetworkOptions(&libnetwork.CreateNetworkRequest{NetworkID: tc.id, IPv4Data: foreign})
		if len(problems) != 1 || problems[0].flag != "--ipam-driver" || !strings.Contains(problems[0].reason, tc.want) {
			t.Errorf("network %.12s: problems %v, want one --ipam-driver problem saying %q", tc.id, problems, tc.want)
		}
	}
}

// A swarm network has the same ID on every node, so each node keeps its own record of it.
func TestNetworkRecordKeys(t *testing.T) {
	local := strings.Repeat("0123456789abcdef", 4)
	a, b := &networks{node: "host-a"}, &networks{node: "host-b"}
	if a.key(local) != b.key(local) || a.key(local) != networkPrefix+local {
		t.Errorf("local network keys %q, %q; want both %q", a.key(local), b.key(local), networkPrefix+local)
	}
	const swarm = "r1omwlb831hppr5yrfq4vtfl1"
	if a.key(swarm) == b.key(swarm) || !strings.HasPrefix(a.key(swarm), networkPrefix+swarm+"/") {
		t.Errorf("swarm network keys %q, %q; want one per node under %s", a.key(swarm), b.key(swarm), networkPrefix+swarm+"/")
	}
}
