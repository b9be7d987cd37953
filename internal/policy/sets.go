package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/selector"
)

// Member is an element of an IP set: an endpoint's address, and in a named-port set also the protocol
// and port number that one of the endpoint's named ports gives.
type Member struct {
	Addr  netip.Addr
	Proto uint8  // named-port sets only
	Port  uint16 // named-port sets only
}

func (m Member) String() string {
	if m.Port == 0 && m.Proto == 0 {
		return m.Addr.String()
	}
	return fmt.Sprintf("%s,%d:%d", m.Addr, m.Proto, m.Port)
}

// namedPortSetPrefix starts the IDs of named-port sets; selector sets' IDs start with "s:".
const namedPortSetPrefix = "n:"

// IsNamedPortSet reports whether a set ID names a set of address, protocol and port members.
func IsNamedPortSet(id string) bool { return strings.HasPrefix(id, namedPortSetPrefix) }

// ipSet is the members of the endpoints a selector matches: their addresses, or for a named-port set
// the address, protocol and port of each of their ports of that name. It exists while rules use it.
type ipSet struct {
	sel     *selector.Selector
	port    *portMatch     // named-port sets only
	refs    int            // rules using it
	members map[Member]int // member → endpoints giving it (briefly two, while an address moves)
}

// portMatch is the port a named-port set is for: a name and the rule's protocol (0: any).
type portMatch struct {
	name  string
	proto uint8
}

func (s *ipSet) id() string {
	if s.port == nil {
		return s.sel.UniqueID()
	}
	sum := sha256.Sum224(fmt.Appendf(nil, "%s,%d,%s", s.sel.UniqueID(), s.port.proto, s.port.name))
	return namedPortSetPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// membersOf lists what an endpoint with these addresses and ports contributes to the set.
func (s *ipSet) membersOf(c contribution) []Member {
	if s.port == nil {
		out := make([]Member, len(c.addrs))
		for i, a := range c.addrs {
			out[i] = Member{Addr: a}
		}
		return out
	}
	var out []Member
	for _, p := range c.ports {
		proto := p.Protocol.NumberValue()
		if p.Name != s.port.name || (s.port.proto != 0 && proto != s.port.proto) {
			continue
		}
		for _, a := range c.addrs {
			out = append(out, Member{Addr: a, Proto: proto, Port: p.Port})
		}
	}
	return out
}

// contribution is what of an endpoint goes into sets: its addresses and named ports.
type contribution struct {
	addrs []netip.Addr
	ports []api.EndpointPort
}

func (c contribution) equal(d contribution) bool {
	return slices.Equal(c.addrs, d.addrs) && slices.Equal(c.ports, d.ports)
}

// acquireSet returns the ID of the set like want (selector and port), creating and filling it on first
// use.
func (x *Index) acquireSet(want *ipSet) string {
	id := want.id()
	if s := x.sets[id]; s != nil {
		s.refs++
		return id
	}
	s := &ipSet{sel: want.sel, port: want.port, refs: 1, members: map[Member]int{}}
	x.sets[id] = s
	x.changes.Sets[id] = struct{}{}
	for _, ep := range x.endpoints {
		if s.sel.Matches(ep.labels.m) {
			ep.sets[id] = struct{}{}
			x.addMembers(id, s.membersOf(ep.contribution))
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

// updateMembership re-evaluates every set against one endpoint whose labels, addresses or ports
// (previously old) changed: the incremental step that keeps a label change from recomputing whole sets.
func (x *Index) updateMembership(ep *endpoint, old contribution) {
	changed := !old.equal(ep.contribution)
	for id, s := range x.sets {
		_, was := ep.sets[id]
		now := s.sel.Matches(ep.labels.m)
		switch {
		case was && !now:
			delete(ep.sets, id)
			x.removeMembers(id, s.membersOf(old))
		case !was && now:
			ep.sets[id] = struct{}{}
			x.addMembers(id, s.membersOf(ep.contribution))
		case was && changed:
			x.addMembers(id, s.membersOf(ep.contribution))
			x.removeMembers(id, s.membersOf(old))
		}
	}
}

func (x *Index) addMembers(id string, members []Member) {
	s := x.sets[id]
	for _, m := range members {
		if s.members[m]++; s.members[m] == 1 {
			x.changes.Sets[id] = struct{}{}
		}
	}
}

func (x *Index) removeMembers(id string, members []Member) {
	s := x.sets[id]
	for _, m := range members {
		if s.members[m]--; s.members[m] <= 0 {
			delete(s.members, m)
			x.changes.Sets[id] = struct{}{}
		}
	}
}

// Set returns the members of an IP set.
func (x *Index) Set(id string) ([]Member, bool) {
	s, ok := x.sets[id]
	if !ok {
		return nil, false
	}
	return slices.Collect(maps.Keys(s.members)), true
}
