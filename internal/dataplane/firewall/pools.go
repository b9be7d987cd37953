package firewall

import (
	"fmt"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// SetPools sets the members of the pool sets the masquerade rules use: masq are the pools whose traffic
// leaving the pools is masqueraded (natOutgoing), all are every pool. Only the difference is written.
func (f *Firewall) SetPools(all, masq []netip.Prefix) error {
	if f.err != nil {
		return f.err
	}
	all4, all6, err := splitPools(all)
	if err != nil {
		return err
	}
	masq4, masq6, err := splitPools(masq)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.poolsKnown = true
	sets := []struct {
		name    string
		typ     setType
		members []netip.Prefix
	}{{"all-pools4", prefixes4, all4}, {"masq-pools4", prefixes4, masq4}, {"all-pools6", prefixes6, all6}, {"masq-pools6", prefixes6, masq6}}
	names := make([]string, len(sets))
	for i, s := range sets {
		o := &object{kind: setKind, set: s.typ, elems: map[string]string{}}
		for _, p := range s.members {
			o.elems[elemKey(p)] = ""
		}
		f.want[s.name], names[i] = o, s.name
	}
	if err := f.commit(names); err != nil {
		return fmt.Errorf("setting pool sets: %w", err)
	}
	return nil
}

// splitPools merges prefixes (nftables refuses overlapping intervals) and splits them by family.
func splitPools(pools []netip.Prefix) (v4, v6 []netip.Prefix, err error) {
	for _, p := range pools {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("invalid pool CIDR %q", p)
		}
	}
	for _, p := range policy.MergePrefixes(pools) {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6, nil
}
