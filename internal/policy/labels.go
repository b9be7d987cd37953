package policy

import (
	"hash/maphash"
	"maps"
	"slices"
)

// labelSets holds each distinct label set once, shared by every endpoint that carries it. Replicas of a
// Deployment or a Compose service carry identical labels, so a cluster has far fewer distinct sets than
// endpoints, and every daemon holds every endpoint of the cluster (Calico's uniquelabels does the same for
// Felix). A shared map is never changed in place.
type labelSets struct {
	seed   maphash.Seed
	byHash map[uint64][]*labelSet
}

type labelSet struct {
	m    map[string]string
	hash uint64
	refs int
}

func newLabelSets() *labelSets {
	return &labelSets{seed: maphash.MakeSeed(), byHash: map[uint64][]*labelSet{}}
}

// acquire returns the set equal to labels and takes a reference to it. labels itself is not kept.
func (s *labelSets) acquire(labels map[string]string) *labelSet {
	h := s.hash(labels)
	for _, l := range s.byHash[h] {
		if maps.Equal(l.m, labels) {
			l.refs++
			return l
		}
	}
	l := &labelSet{m: maps.Clone(labels), hash: h, refs: 1}
	s.byHash[h] = append(s.byHash[h], l)
	return l
}

// retain takes another reference to l.
func (l *labelSet) retain() *labelSet {
	l.refs++
	return l
}

// release drops a reference taken by acquire or retain (nil: none).
func (s *labelSets) release(l *labelSet) {
	if l == nil {
		return
	}
	if l.refs--; l.refs > 0 {
		return
	}
	bucket := slices.DeleteFunc(s.byHash[l.hash], func(o *labelSet) bool { return o == l })
	if len(bucket) == 0 {
		delete(s.byHash, l.hash)
	} else {
		s.byHash[l.hash] = bucket
	}
}

// hash is independent of the map's iteration order.
func (s *labelSets) hash(labels map[string]string) uint64 {
	var sum uint64
	for k, v := range labels {
		sum += maphash.Comparable(s.seed, [2]string{k, v})
	}
	return sum
}
