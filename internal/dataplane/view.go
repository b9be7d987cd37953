package dataplane

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// kind indexes the resources the agent watches.
type kind int

const (
	kindWEP kind = iota
	kindProfile
	kindPolicy
	kindGlobalPolicy
	kindTier
	kindPool
	numKinds
)

// kindInfos are the API kinds, by kind.
var kindInfos = [numKinds]api.KindInfo{
	api.KindOf(&api.WorkloadEndpoint{}), api.KindOf(&api.Profile{}), api.KindOf(&api.NetworkPolicy{}),
	api.KindOf(&api.GlobalNetworkPolicy{}), api.KindOf(&api.Tier{}), api.KindOf(&api.IPPool{}),
}

// event is a watch event of one kind.
type event struct {
	kind kind
	datastore.Event
}

// watchQueue is how many watched changes may wait while the worker is busy.
const watchQueue = 4096

// watch merges the watches of every kind: endpoints of all nodes (selectors match remote endpoints'
// addresses too), profiles, policies, tiers and pools.
func (a *Agent) watch(ctx context.Context) <-chan event {
	// Buffered, so that changes arriving while the worker applies others queue up for one transaction.
	out := make(chan event, watchQueue)
	for k := range numKinds {
		in := a.store.Watch(ctx, datastore.KindPrefix(kindInfos[k], ""), a.log)
		go func() {
			for ev := range in {
				select {
				case out <- event{k, ev}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return out
}

// view is the agent's copy of the watched resources, as far as the dataplane needs it: the revision of
// each key (so a resync removes only what its snapshot is newer than), the pools, and the interfaces
// local endpoints claim; everything else goes to the policy index.
type view struct {
	idx          *policy.Index
	claims       *claims
	log          *slog.Logger
	revs         [numKinds]map[string]int64
	listings     [numKinds]datastore.Listing // the listing being received, by kind
	resynced     [numKinds]bool
	pools        map[string]*api.IPPool
	poolsChanged bool
	invalid      map[string]int64 // keys of resources that failed validation, by the revision logged
	rev          int64            // the latest revision folded in
}

func newView(idx *policy.Index, node string, log *slog.Logger) *view {
	v := &view{idx: idx, claims: newClaims(node), log: log, pools: map[string]*api.IPPool{}, invalid: map[string]int64{}}
	for k := range v.revs {
		v.revs[k] = map[string]int64{}
	}
	return v
}

// complete reports whether every kind has been listed once: only then is the view worth programming.
func (v *view) complete() bool { return len(v.unlisted()) == 0 }

// unlisted names the kinds (their plurals, as in etcd keys) not listed yet.
func (v *view) unlisted() []string {
	var kinds []string
	for k, ok := range v.resynced {
		if !ok {
			kinds = append(kinds, kindInfos[k].Plural)
		}
	}
	return kinds
}

// fold applies one watch event.
func (v *view) fold(ev event) {
	v.rev = max(v.rev, ev.Revision)
	switch ev.Type {
	case datastore.EventResync:
		for _, kv := range ev.Snapshot {
			v.putKV(ev.kind, kv)
		}
		listing := &v.listings[ev.kind]
		if !listing.Add(ev.Event) {
			return
		}
		// Keys newer than the listing came from EndpointUp, ahead of the watch.
		for key, rev := range v.revs[ev.kind] {
			if !listing.Has(key) && rev <= ev.Revision {
				v.put(ev.kind, key, nil, 0)
			}
		}
		listing.Reset()
		v.resynced[ev.kind] = true
	case datastore.EventPut:
		v.putKV(ev.kind, ev.KV)
	case datastore.EventDelete:
		v.put(ev.kind, ev.KV.Key, nil, 0)
	}
}

// putKV decodes and applies a stored value; one that does not decode counts as absent.
func (v *view) putKV(k kind, kv datastore.KV) {
	o, err := datastore.Decode(kindInfos[k], kv)
	if err != nil {
		v.log.Warn("ignoring invalid resource", "key", kv.Key, "error", err.Error())
		o = nil
	}
	v.put(k, kv.Key, o, kv.Revision)
}

// put records one resource (nil: deleted) at a revision and hands it to the index, the pools or the
// interface claims. A resource that does not validate counts as absent, as Calico's syncer treats it
// (pools excepted: they are read field by field, each field checked where it is used), logged once per
// revision. An invalid endpoint still claims its interface (see claims.set).
func (v *view) put(k kind, key string, o api.Object, rev int64) {
	if o == nil {
		delete(v.revs[k], key)
	} else {
		v.revs[k][key] = rev
	}
	var invalid error
	if o != nil && k != kindPool {
		invalid = api.Validate(o)
	}
	if invalid == nil {
		delete(v.invalid, key)
	} else if logged, ok := v.invalid[key]; !ok || logged != rev {
		v.invalid[key] = rev
		v.log.Warn("ignoring invalid resource", "key", key, "error", invalid.Error())
	}
	if k == kindWEP {
		w, _ := o.(*api.WorkloadEndpoint)
		v.claims.set(key, w, invalid == nil)
	}
	if invalid != nil {
		o = nil
	}
	namespace, name := "", strings.TrimPrefix(key, datastore.KindPrefix(kindInfos[k], ""))
	if kindInfos[k].Namespaced {
		namespace, name, _ = strings.Cut(name, "/")
	}
	switch k {
	case kindWEP:
		w, _ := o.(*api.WorkloadEndpoint)
		v.idx.SetEndpoint(key, w)
	case kindProfile:
		p, _ := o.(*api.Profile)
		v.idx.SetProfile(name, p)
	case kindPolicy:
		var spec *api.PolicySpec
		if p, _ := o.(*api.NetworkPolicy); p != nil {
			spec = &p.Spec
		}
		v.idx.SetPolicy(namespace, name, spec)
	case kindGlobalPolicy:
		var spec *api.PolicySpec
		if p, _ := o.(*api.GlobalNetworkPolicy); p != nil {
			spec = &p.Spec
		}
		v.idx.SetPolicy("", name, spec)
	case kindTier:
		t, _ := o.(*api.Tier)
		v.idx.SetTier(name, t)
	case kindPool:
		if p, _ := o.(*api.IPPool); p != nil {
			v.pools[key] = p
		} else {
			delete(v.pools, key)
		}
		v.poolsChanged = true
	}
}

// poolPrefixes returns every pool's CIDR and those whose traffic leaving the pools is masqueraded.
func (v *view) poolPrefixes() (all, masq []netip.Prefix) {
	for _, p := range v.pools {
		if cidr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			all = append(all, cidr)
			if p.Spec.NATOutgoing && !p.Spec.Disabled {
				masq = append(masq, cidr)
			}
		}
	}
	return all, masq
}
