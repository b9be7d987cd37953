package driver

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

// Docker's network option keys that a Calico network accepts.
const (
	optEnableIPv4 = "com.docker.network.enable_ipv4"
	optEnableIPv6 = "com.docker.network.enable_ipv6"
	optGeneric    = "com.docker.network.generic"
	optInternal   = "com.docker.network.internal"
)

// Placeholders calico-ipam hands Docker: a pool covering everything and a "gateway" Docker must not use.
const (
	addressSpace  = "CalicoGlobalAddressSpace"
	anyPoolV4     = "0.0.0.0/0"
	anyPoolV6     = "::/0"
	poolIDAnyIPv4 = "CalicoPoolIPv4"
	poolIDAnyIPv6 = "CalicoPoolIPv6"
)

// flagProblem is one refused docker network create flag and why.
type flagProblem struct{ flag, reason string }

// maxProblems bounds how many refused flags one error lists (a hostile request may carry thousands).
const maxProblems = 16

// refusal phrases every refused flag, sorted by flag, in one error.
func refusal(problems []flagProblem) error {
	sort.Slice(problems, func(i, j int) bool { return problems[i].flag < problems[j].flag })
	var parts []string
	for _, p := range problems[:min(len(problems), maxProblems)] {
		parts = append(parts, p.flag+" ("+p.reason+")")
	}
	if extra := len(problems) - maxProblems; extra > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", extra))
	}
	return fmt.Errorf("calico networks do not support %s", strings.Join(parts, ", "))
}

// rejections carries the flags calico-ipam refused (--ip-range, --ipam-opt, a --subnet matching no pool) to
// CreateNetwork, so that one error names every refused flag. Docker gives the IPAM reply's gateway back
// in CreateNetwork, so a refused request gets a distinct placeholder gateway (0.0.0.N/0, ::N/0) as its token.
type rejections struct {
	mu      sync.Mutex
	next    uint8
	pending map[uint8]rejection
}

type rejection struct {
	problems []flagProblem
	at       time.Time
}

func newRejections() *rejections { return &rejections{pending: map[uint8]rejection{}} }

// add stores problems and returns the placeholder gateway carrying them.
func (r *rejections) add(v6 bool, problems []flagProblem) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.pending {
		if time.Since(v.at) > time.Minute {
			delete(r.pending, k)
		}
	}
	r.next = r.next%254 + 1
	r.pending[r.next] = rejection{problems: problems, at: time.Now()}
	if v6 {
		return fmt.Sprintf("::%x/0", r.next)
	}
	return fmt.Sprintf("0.0.0.%d/0", r.next)
}

// take returns (and forgets) the problems a placeholder gateway stands for; ok is false for a gateway that
// is not one of ours.
func (r *rejections) take(gateway string) (problems []flagProblem, ours bool) {
	p, err := netip.ParsePrefix(gateway)
	if err != nil || p.Bits() != 0 {
		return nil, false
	}
	b := p.Addr().AsSlice()
	token := b[len(b)-1]
	for _, x := range b[:len(b)-1] {
		if x != 0 {
			return nil, false
		}
	}
	if token == 0 {
		return nil, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rej, ok := r.pending[token]
	delete(r.pending, token)
	return rej.problems, ok
}

// swarmIPAMReason explains the refusal of a --scope swarm network (its ID is swarm's, not a local hex one)
// without calico IPAM: swarm's allocator leaves a local-scope driver's networks to each node and hands
// them no IPAM settings, so --ipam-driver and --subnet on such a network are lost, and only a --config-only
// network on each node can carry them.
const swarmIPAMReason = "swarm drops it for this driver; create a --config-only network with --ipam-driver on every node " +
	"and the swarm network with --config-from it"

// checkNetworkOptions returns the problems with a CreateNetwork request's options and pools.
func (d *Driver) checkNetworkOptions(req *libnetwork.CreateNetworkRequest) []flagProblem {
	var problems []flagProblem
	for key, value := range req.Options {
		switch key {
		case optEnableIPv4, optEnableIPv6:
		case optInternal:
			if truthy(value) {
				problems = append(problems, flagProblem{"--internal", "isolate containers with Calico policy instead"})
			}
		case optGeneric:
			generic, ok := value.(map[string]any)
			if !ok && value != nil {
				problems = append(problems, flagProblem{"option " + key, "must be a JSON object of driver options"})
			}
			for k, v := range generic {
				if k == optEnableIPv4 || k == optEnableIPv6 {
					continue
				}
				problems = append(problems, flagProblem{"-o " + clip(fmt.Sprintf("%s=%v", k, v)), "the calico driver takes no driver options"})
			}
		default:
			problems = append(problems, flagProblem{"option " + clip(key), "not understood by the calico driver"})
		}
	}
	for _, data := range append(append([]libnetwork.IPAMData{}, req.IPv4Data...), req.IPv6Data...) {
		if data.AddressSpace != addressSpace {
			reason := "the calico driver needs --ipam-driver " + d.cfg.IPAMDriver
			if !api.IsDockerID(req.NetworkID) {
				// Swarm gives a driver of local scope no IPAM of its own choosing: see swarmIPAMReason.
				reason = swarmIPAMReason
			}
			problems = append(problems, flagProblem{"--ipam-driver", reason})
			continue
		}
		ipamProblems, ours := d.rejected.take(data.Gateway)
		problems = append(problems, ipamProblems...)
		if !ours {
			problems = append(problems, flagProblem{"--gateway", "containers always route through the host, at 169.254.1.1"})
		}
		if len(data.AuxAddresses) > 0 {
			problems = append(problems, flagProblem{"--aux-address", "addresses come from Calico IPAM"})
		}
	}
	return dedupe(problems)
}

func dedupe(problems []flagProblem) []flagProblem {
	seen := map[string]bool{}
	var out []flagProblem
	for _, p := range problems {
		if !seen[p.flag] {
			seen[p.flag] = true
			out = append(out, p)
		}
	}
	return out
}

// truthy interprets a Docker option value that may be a bool or a string.
func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.EqualFold(t, "true") || t == "1"
	}
	return false
}
