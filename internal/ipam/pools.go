package ipam

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// pool is an IPPool as a round sees it: Calico's defaults applied, CIDR parsed.
type pool struct {
	*api.IPPool
	cidr netip.Prefix
}

// usable reports whether workloads may get addresses from the pool at all.
func (p *pool) usable() bool {
	return !p.Spec.Disabled && (len(p.Spec.AllowedUses) == 0 || slices.Contains(p.Spec.AllowedUses, "Workload"))
}

// strict reports whether addresses may not be borrowed from other nodes' blocks of the pool.
func (p *pool) strict(cfg *Config) bool { return cfg.StrictAffinity || p.Spec.StrictAffinity }

func (p *pool) String() string { return fmt.Sprintf("%q (%s)", p.Name, p.cidr) }

// allPools reads every IPPool once per round, skipping (with a warning) any that cannot be used safely.
func (r *round) allPools() ([]*pool, error) {
	if r.poolsRead {
		return r.pools, r.poolsErr
	}
	r.poolsRead = true
	list, err := datastore.List[*api.IPPool](r.ctx, r.m.store, "")
	if err != nil {
		r.poolsErr = err
		return nil, err
	}
	for _, ip := range list {
		api.Default(ip)
		if err := api.Validate(ip); err != nil {
			r.m.log.Warn("ignoring invalid IP pool", "pool", ip.Name, "error", err.Error())
			continue
		}
		r.pools = append(r.pools, &pool{IPPool: ip, cidr: netip.MustParsePrefix(ip.Spec.CIDR)})
	}
	return r.pools, nil
}

// enabledPoolFor returns the usable pool containing ip, nil if none.
func (r *round) enabledPoolFor(ip netip.Addr) (*pool, error) {
	pools, err := r.allPools()
	for _, p := range pools {
		if p.usable() && p.cidr.Contains(ip) {
			return p, nil
		}
	}
	return nil, err
}

// candidates returns the pools an automatic assignment may use, in order of preference.
func (r *round) candidates(o *op) ([]*pool, error) {
	pools, err := r.allPools()
	if err != nil {
		return nil, err
	}
	fam := familyName(o.family)
	if len(o.pools) > 0 {
		var out []*pool
		for _, name := range o.pools {
			i := slices.IndexFunc(pools, func(p *pool) bool { return p.Name == name })
			switch {
			case i < 0:
				return nil, newError(ErrNoPool, "IP pool %q not found", name)
			case family(pools[i].cidr) != o.family:
				return nil, newError(ErrNoPool, "IP pool %s is not an %s pool", pools[i], fam)
			case pools[i].Spec.Disabled:
				return nil, newError(ErrNoPool, "IP pool %s is disabled", pools[i])
			case !pools[i].usable():
				return nil, newError(ErrNoPool, "IP pool %s does not allow Workload addresses", pools[i])
			}
			out = append(out, pools[i])
		}
		return out, nil
	}
	var out []*pool
	excluded := false
	for _, p := range pools {
		if family(p.cidr) != o.family || !p.usable() || p.Spec.AssignmentMode == api.AssignManual {
			continue
		}
		ok, err := r.selects(p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		} else {
			excluded = true
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case excluded:
		return nil, newError(ErrNoPool, "no enabled %s pool selects node %q", fam, r.m.node)
	default:
		return nil, newError(ErrNoPool, "no enabled %s pool", fam)
	}
}

// selects evaluates a pool's nodeSelector against this node's labels (read only when a selector needs them).
func (r *round) selects(p *pool) (bool, error) {
	sel, err := r.m.parseSelector(p.Spec.NodeSelector)
	if err != nil {
		r.m.log.Warn("IP pool has an invalid nodeSelector; not using it", "pool", p.Name, "error", err.Error())
		return false, nil
	}
	if s := sel.String(); s == "all()" || s == "global()" {
		return true, nil
	}
	if !r.labelsOK {
		node, err := datastore.Get[*api.Node](r.ctx, r.m.store, "", r.m.node)
		switch {
		case errors.Is(err, datastore.ErrNotFound):
		case err != nil:
			return false, err
		default:
			r.labels = node.Labels
		}
		r.labelsOK = true
	}
	return sel.Matches(r.labels), nil
}

// exhausted is the error for requests no pool could satisfy.
func exhausted(fam int, pools []*pool) error {
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.String()
	}
	if len(pools) == 1 {
		return newError(ErrExhausted, "%s pool %s is exhausted", familyName(fam), names[0])
	}
	return newError(ErrExhausted, "%s pools %s are exhausted", familyName(fam), strings.Join(names, ", "))
}

// freeSubnet picks a block-sized subnet of p with no block, walking the subnets from a start that depends
// only on the node name, as Calico does: a node tends to get the same blocks back, and two nodes rarely
// race for the same one. taken says which subnets already have a block.
func (m *IPAM) freeSubnet(p *pool, taken func(netip.Prefix) bool) (netip.Prefix, bool) {
	n := subnetCount(p.cidr, p.Spec.BlockSize)
	h := fnv.New32()
	h.Write([]byte(m.node))
	start := rand.New(rand.NewPCG(uint64(h.Sum32()), 0)).Uint64N(n)
	for i := uint64(0); i < n; i++ {
		cidr := nthSubnet(p.cidr, p.Spec.BlockSize, (start+i)%n)
		if !taken(cidr) {
			return cidr, true
		}
	}
	return netip.Prefix{}, false
}
