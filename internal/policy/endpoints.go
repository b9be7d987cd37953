package policy

import (
	"maps"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// endpoint is a workload endpoint of any node.
type endpoint struct {
	key          string
	local        bool // on this node, with an interface
	iface        string
	mac          string
	contribution                     // addresses and named ports
	own          *labelSet           // its own labels
	profiles     []string            // in the endpoint's order
	labels       *labelSet           // effective: own, then profiles' labelsToApply
	sets         map[string]struct{} // IP sets it is a member of
	plans        [2]Plan             // local endpoints only; set by setPlans
}

// SetEndpoint adds, updates or (with nil) removes a workload endpoint. Its labels are taken as stored;
// api.Default adds the ones Calico forces (namespace, orchestrator).
func (x *Index) SetEndpoint(key string, wep *api.WorkloadEndpoint) {
	ep := x.endpoints[key]
	if wep == nil {
		if ep != nil {
			x.removeEndpoint(ep)
		}
		return
	}
	if ep == nil {
		ep = &endpoint{key: key, sets: map[string]struct{}{}}
		x.endpoints[key] = ep
	}
	wasLocal, oldIface, oldMAC, old := ep.local, ep.iface, ep.mac, ep.contribution

	x.indexProfiles(ep, wep.Spec.Profiles)
	ep.profiles = slices.Clone(wep.Spec.Profiles)
	own := x.labelSets.acquire(wep.Labels)
	x.labelSets.release(ep.own)
	ep.own = own
	ep.iface, ep.mac = wep.Spec.InterfaceName, wep.Spec.MAC
	ep.local = wep.Spec.Node == x.node && ep.iface != ""
	ep.contribution = contribution{ports: slices.Clone(wep.Spec.Ports)}
	for _, n := range wep.Spec.IPNetworks {
		if p, err := api.ParseIPNetwork(n); err == nil {
			ep.addrs = append(ep.addrs, p.Addr())
		}
	}
	addrsChanged := !slices.Equal(old.addrs, ep.addrs)
	x.setLabels(ep, x.effectiveLabels(ep))
	x.updateMembership(ep, old)

	if wasLocal && (!ep.local || oldIface != ep.iface) {
		x.unlinkIface(ep, oldIface)
	}
	if ep.local {
		linked := x.linkIface(ep)
		if x.replan(ep) || linked || addrsChanged || oldMAC != ep.mac {
			x.changes.Interfaces[ep.iface] = struct{}{}
		}
	} else if wasLocal {
		x.setPlans(ep, [2]Plan{})
	}
}

func (x *Index) removeEndpoint(ep *endpoint) {
	for id := range ep.sets {
		x.removeMembers(id, x.sets[id].membersOf(ep.contribution))
	}
	x.indexProfiles(ep, nil)
	if ep.local {
		x.unlinkIface(ep, ep.iface)
		x.setPlans(ep, [2]Plan{})
	}
	x.labelSets.release(ep.own)
	x.labelSets.release(ep.labels)
	delete(x.endpoints, ep.key)
}

// indexProfiles moves ep between the byProfile lists, from ep.profiles to profiles.
func (x *Index) indexProfiles(ep *endpoint, profiles []string) {
	for _, name := range ep.profiles {
		if eps := x.byProfile[name]; eps != nil {
			delete(eps, ep)
			if len(eps) == 0 {
				delete(x.byProfile, name)
			}
		}
	}
	for _, name := range profiles {
		if x.byProfile[name] == nil {
			x.byProfile[name] = map[*endpoint]struct{}{}
		}
		x.byProfile[name][ep] = struct{}{}
	}
}

// linkIface records ep as a user of its interface and reports whether it was new there.
func (x *Index) linkIface(ep *endpoint) bool {
	eps := x.byIface[ep.iface]
	if eps == nil {
		eps = map[*endpoint]struct{}{}
		x.byIface[ep.iface] = eps
	}
	_, had := eps[ep]
	eps[ep] = struct{}{}
	return !had
}

func (x *Index) unlinkIface(ep *endpoint, iface string) {
	if eps := x.byIface[iface]; eps != nil {
		delete(eps, ep)
		if len(eps) == 0 {
			delete(x.byIface, iface)
		}
	}
	x.changes.Interfaces[iface] = struct{}{}
}

// effectiveLabels are the endpoint's own labels plus its profiles' labelsToApply (the endpoint's value
// wins, and among profiles the first one listing a key), as a reference the caller owns. An endpoint whose
// profiles add no label shares its own set.
func (x *Index) effectiveLabels(ep *endpoint) *labelSet {
	var merged map[string]string
	for _, name := range ep.profiles {
		if p := x.profiles[name]; p != nil {
			for k, v := range p.labels {
				if _, taken := ep.own.m[k]; taken {
					continue
				}
				if merged == nil {
					merged = maps.Clone(ep.own.m)
					if merged == nil {
						merged = map[string]string{}
					}
				}
				if _, taken := merged[k]; !taken {
					merged[k] = v
				}
			}
		}
	}
	if merged == nil {
		return ep.own.retain()
	}
	return x.labelSets.acquire(merged)
}

// setLabels replaces the endpoint's effective labels with a reference from effectiveLabels and reports
// whether they changed.
func (x *Index) setLabels(ep *endpoint, labels *labelSet) bool {
	old := ep.labels
	ep.labels = labels
	x.labelSets.release(old)
	return labels != old
}

// relabel recomputes an endpoint's effective labels after a profile changed, and what follows.
func (x *Index) relabel(ep *endpoint) {
	if x.setLabels(ep, x.effectiveLabels(ep)) {
		x.updateMembership(ep, ep.contribution)
	}
	if ep.local && x.replan(ep) {
		x.changes.Interfaces[ep.iface] = struct{}{}
	}
}

// replan recomputes a local endpoint's plans and reports whether they changed.
func (x *Index) replan(ep *endpoint) bool {
	plans := [2]Plan{x.plan(ep, Ingress), x.plan(ep, Egress)}
	if plans[Ingress].Equal(ep.plans[Ingress]) && plans[Egress].Equal(ep.plans[Egress]) {
		return false
	}
	x.setPlans(ep, plans)
	return true
}
