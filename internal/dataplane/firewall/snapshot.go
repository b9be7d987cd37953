package firewall

import (
	"fmt"

	"github.com/google/nftables"
)

// reader reads the rules of a chain and the elements of a set: from the kernel (a *nftables.Conn), or
// from a snapshot of it.
type reader interface {
	GetRules(*nftables.Table, *nftables.Chain) ([]*nftables.Rule, error)
	GetSetElements(*nftables.Set) ([]nftables.SetElement, error)
}

// snapshot is the whole of table inet calico as read at one moment.
type snapshot struct {
	listing
	rules map[string][]*nftables.Rule      // by chain
	elems map[string][]nftables.SetElement // by set, anonymous ones included
}

func (s *snapshot) GetRules(_ *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	return s.rules[c.Name], nil
}

func (s *snapshot) GetSetElements(set *nftables.Set) ([]nftables.SetElement, error) {
	return s.elems[set.Name], nil
}

// prefetch is a snapshot being read in the background.
type prefetch struct {
	done chan struct{} // closed once snap is set
	snap *snapshot     // nil: no table, or reading it failed
}

// Prefetch reads the whole table in the background, for the commits that would read it back (a new
// process's first writes: see commit) to compare with instead: a restarting agent reads the kernel
// while it lists and indexes the datastore, not after. Should the kernel change meanwhile, what the
// snapshot misses is found by the next periodic check, as any drift is. Call it after Ensure.
func (f *Firewall) Prefetch() {
	if f.err != nil {
		return
	}
	p := &prefetch{done: make(chan struct{})}
	f.mu.Lock()
	f.prefetch = p
	f.mu.Unlock()
	go func() {
		defer close(p.done)
		var err error
		if p.snap, err = f.readSnapshot(); err != nil {
			f.log.Warn("reading nftables table inet calico ahead failed; reading it when needed", "error", err.Error())
		}
	}()
}

// prefetched waits for Prefetch's snapshot and returns it (nil: none). It serves the commits that
// follow until the first that removes stale objects (or a failed one).
func (f *Firewall) prefetched() *snapshot {
	if f.prefetch == nil {
		return nil
	}
	<-f.prefetch.done
	return f.prefetch.snap
}

func (f *Firewall) readSnapshot() (*snapshot, error) {
	c, err := f.conn()
	if err != nil {
		return nil, fmt.Errorf("opening netlink connection to nftables: %w", err)
	}
	defer c.CloseLasting()
	l, err := list(c)
	if err != nil || !l.exists {
		return nil, err
	}
	snap := &snapshot{listing: l, rules: map[string][]*nftables.Rule{}, elems: map[string][]nftables.SetElement{}}
	for name := range l.chains {
		if snap.rules[name], err = c.GetRules(table(), &nftables.Chain{Table: table(), Name: name}); err != nil {
			return nil, fmt.Errorf("reading nftables chain %s: %w", name, err)
		}
	}
	sets, err := c.GetSets(table())
	if err != nil {
		return nil, fmt.Errorf("listing the sets of table inet calico: %w", err)
	}
	for _, set := range sets {
		if snap.elems[set.Name], err = c.GetSetElements(set); err != nil {
			return nil, fmt.Errorf("reading nftables set %s: %w", set.Name, err)
		}
	}
	return snap, nil
}
