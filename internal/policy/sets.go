package policy

import (
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// ipSet is the addresses of the endpoints a selector matches. It exists while rules refer to it.
type ipSet struct {
	sel     *selector.Selector
	refs    int                // rules using it
	members map[netip.Addr]int // address → endpoints carrying it (briefly two, while an address moves)
}

// acquireSet returns the ID of the set for sel, creating and filling it on first use.
func (x *Index) acquireSet(sel *selector.Selector) string {
	id := sel.UniqueID()
	if s := x.sets[id]; s != nil {
		s.refs++
		return id
	}
	x.sets[id] = &ipSet{sel: sel, refs: 1, members: map[netip.Addr]int{}}
	x.changes.Sets[id] = struct{}{}
	for _, ep := range x.endpoints {
		if sel.Matches(ep.labels) {
			ep.sets[id] = struct{}{}
			x.addMembers(id, ep.addrs)
		}
	}
	return id
}

// releaseSet drops one use of a set, deleting it with the last.
func (x *Index) releaseSet(id string) {
	s := x.sets[id]
	if s.refs--; s.refs > 0 {
		return
	}
	delete(x.sets, id)
	x.changes.Sets[id] = struct{}{}
	for _, ep := range x.endpoints {
		delete(ep.sets, id)
	}
}

// updateMembership re-evaluates every set against one endpoint whose labels or addresses (previously
// oldAddrs) changed: the incremental step that keeps a label change from recomputing whole sets.
func (x *Index) updateMembership(ep *endpoint, oldAddrs []netip.Addr, addrsChanged bool) {
	for id, s := range x.sets {
		_, was := ep.sets[id]
		now := s.sel.Matches(ep.labels)
		switch {
		case was && !now:
			delete(ep.sets, id)
			x.removeMembers(id, oldAddrs)
		case !was && now:
			ep.sets[id] = struct{}{}
			x.addMembers(id, ep.addrs)
		case was && addrsChanged:
			x.addMembers(id, ep.addrs)
			x.removeMembers(id, oldAddrs)
		}
	}
}

func (x *Index) addMembers(id string, addrs []netip.Addr) {
	s := x.sets[id]
	for _, a := range addrs {
		if s.members[a]++; s.members[a] == 1 {
			x.changes.Sets[id] = struct{}{}
		}
	}
}

func (x *Index) removeMembers(id string, addrs []netip.Addr) {
	s := x.sets[id]
	for _, a := range addrs {
		if s.members[a]--; s.members[a] <= 0 {
			delete(s.members, a)
			x.changes.Sets[id] = struct{}{}
		}
	}
}
