package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socketBuffer is the send and receive buffer of our netlink sockets: a transaction goes to the kernel
// in one message burst and its acknowledgements come back together, so both must hold a large one
// (nft sizes its buffers the same way).
const socketBuffer = 64 << 20

// conn opens a netlink connection to nftables in our namespace (f.netns in tests).
func (f *Firewall) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(func(c *netlink.Conn) error {
		// The kernel then says which attribute of which message it refused, and why.
		if err := c.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
			return err
		}
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
		})
		return errors.Join(err, serr)
	})}
	if f.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(f.netns))
	}
	return nftables.New(opts...)
}

// send sends a batch as one transaction (by netlink, unless a benchmark measures the nft tool instead).
func (f *Firewall) send(b *batch) error {
	if f.sendScript != nil {
		return f.sendScript(b.String())
	}
	c, err := f.conn()
	if err != nil {
		return fmt.Errorf("opening netlink connection to nftables: %w", err)
	}
	return b.send(c)
}

// commit makes the kernel hold f.want for the named objects, in one transaction, by difference from
// f.have; an object missing from f.have is rewritten whole, since the kernel may hold an earlier
// version. With f.have unknown (a new process, a failed write, drift) every object is rewritten. With
// f.sweep set it also deletes whatever else the table holds. Should the kernel refuse a transaction by
// difference, commit rewrites everything (the kernel may not hold what we wrote); should it refuse a
// full one, commit isolates the objects it refuses (see commitEach), so that one bad object cannot
// hold back the rest. Callers hold f.mu.
func (f *Firewall) commit(names []string) error {
	full := f.have == nil
	if full {
		names = slices.Sorted(maps.Keys(f.want))
	}
	var stale map[string]*object
	if f.sweep {
		var err error
		if stale, err = f.listStale(); err != nil {
			return err
		}
	}
	var b batch
	if full {
		f.declareSkeleton(&b)
	}
	for _, name := range names {
		f.plan(&b, name)
	}
	for _, name := range slices.Sorted(maps.Keys(stale)) {
		b.delete(stale[name].kind, stale[name].set, name)
	}
	if b.empty() {
		return nil
	}
	if err := f.send(&b); err != nil {
		if !full {
			// The kernel may not hold what we wrote (say, the table was deleted under us): rewrite it all.
			f.log.Warn("nftables table inet calico is not as written; rewriting it", "error", err.Error())
			f.have, f.sweep = nil, f.policyKnown
			return f.commit(nil)
		}
		f.log.Warn("the kernel refused a transaction to nftables table inet calico; applying its objects one by one", "error", err.Error())
		return f.commitEach(names, stale, full)
	}
	if full {
		f.have, f.fresh = map[string]*object{}, true
		f.log.Info("programmed nftables table inet calico in full", "objects", len(names))
	}
	if len(stale) > 0 {
		f.log.Info("removed stale objects from nftables table inet calico", "objects", len(stale))
	}
	f.sweep = false
	for _, name := range names {
		f.wrote(name)
	}
	return nil
}

// declareSkeleton makes the table and the skeleton's objects exist, keeping any contents.
func (f *Firewall) declareSkeleton(b *batch) {
	b.declareTable()
	sk := skeleton()
	for _, name := range slices.Sorted(maps.Keys(sk)) {
		b.add(sk[name], name)
	}
}

// plan adds to b what brings one object from f.have to what we want written.
func (f *Firewall) plan(b *batch, name string) {
	w, h := f.wanted(name), f.have[name]
	switch {
	case w == nil && h != nil:
		b.delete(h.kind, h.set, name)
	case w == nil:
	case h == nil:
		b.add(w, name)
		b.rewrite(w, name)
	default:
		b.update(w, h, name)
	}
}

// wanted is what to write for an object: what we want, unless the kernel refused exactly that, in
// which case its fail-closed stand-in.
func (f *Firewall) wanted(name string) *object {
	w := f.want[name]
	if r, ok := f.refused[name]; ok {
		if r.want == w && r.instead != nil {
			return r.instead
		}
		if r.want != w {
			delete(f.refused, name)
		}
	}
	return w
}

// wrote records that the kernel holds what plan wrote for name.
func (f *Firewall) wrote(name string) {
	if r, ok := f.refused[name]; ok && r.instead == nil {
		delete(f.refused, name) // accepted now
	}
	if w := f.wanted(name); w != nil {
		f.have[name] = w.clone()
	} else {
		delete(f.have, name)
	}
}

// Refusal is an object the kernel refused: a policy or profile chain (then enforced failing closed, by
// a chain that drops what reaches it) or a set or map.
type Refusal struct {
	Object string // the nftables object
	Origin string // the datastore object it renders, if any
	Reason string
	want   *object // what was refused
	// instead is what stands in for it, failing closed; nil where nothing can (a set, a map).
	instead *object
}

func (r Refusal) String() string {
	s := r.Object
	if r.Origin != "" {
		s += " (" + r.Origin + ")"
	}
	return s + ": " + r.Reason
}

// Refused lists the objects the kernel refuses, by object name.
func (f *Firewall) Refused() []Refusal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.SortedFunc(maps.Values(f.refused), func(a, b Refusal) int { return strings.Compare(a.Object, b.Object) })
}

// commitEach applies the named objects (and stale deletions) as one transaction each, in an order in
// which each one's dependencies come first: sets, policy chains, plan chains, maps, base chains; then
// deletions the other way round. A policy, profile or plan chain the kernel refuses is replaced by one
// that drops everything reaching it (so the endpoints it applies to fail closed, and no others are
// affected), as is every chain using a set the kernel refused. The refusals are kept for Refused.
func (f *Firewall) commitEach(names []string, stale map[string]*object, full bool) error {
	if full {
		var b batch
		f.declareSkeleton(&b)
		if err := f.send(&b); err != nil {
			return fmt.Errorf("programming nftables table inet calico: %w", err)
		}
		f.have, f.fresh = map[string]*object{}, true
	}
	order := slices.Clone(names)
	slices.SortStableFunc(order, func(a, b string) int { return f.rank(a) - f.rank(b) })
	refusedSets := map[string]bool{}
	var errs []error
	for _, name := range order {
		w := f.wanted(name)
		if w == nil {
			continue // deletions come after
		}
		if w.kind == chainKind && w.hook == nil {
			if set := usesAny(w, refusedSets); set != "" {
				f.refuse(name, w, "uses set "+set+", which the kernel refused")
				w = f.wanted(name)
			}
		}
		var b batch
		f.plan(&b, name)
		err := f.send(&b)
		if err == nil {
			f.wrote(name)
			continue
		}
		delete(f.have, name) // the kernel may hold an older version, or none
		f.refuse(name, w, err.Error())
		if w.kind != chainKind {
			refusedSets[name] = true
			continue
		}
		if r := f.refused[name]; r.instead != nil {
			var b batch
			f.plan(&b, name)
			if err := f.send(&b); err != nil {
				errs = append(errs, fmt.Errorf("programming the fail-closed stand-in for chain %s: %w", name, err))
				continue
			}
			f.wrote(name)
		} else {
			errs = append(errs, fmt.Errorf("programming nftables chain %s: %w", name, err))
		}
	}
	slices.Reverse(order)
	for _, name := range order {
		if f.wanted(name) == nil && f.have[name] != nil {
			var b batch
			f.plan(&b, name)
			if err := f.send(&b); err != nil {
				errs = append(errs, fmt.Errorf("deleting nftables %s %s: %w", f.have[name].kind, name, err))
				continue
			}
			f.wrote(name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(stale)) {
		var b batch
		b.delete(stale[name].kind, stale[name].set, name)
		if err := f.send(&b); err != nil {
			errs = append(errs, fmt.Errorf("deleting stale nftables %s %s: %w", stale[name].kind, name, err))
		}
	}
	f.sweep = false
	for _, r := range f.refused {
		f.log.Error("the kernel refused an nftables object; the endpoints it applies to fail closed", "object", r.Object, "origin", r.Origin, "reason", r.Reason)
	}
	return errors.Join(errs...)
}

// refuse records that the kernel refused w as name, with a stand-in for chains that decide policy.
func (f *Firewall) refuse(name string, w *object, reason string) {
	r := Refusal{Object: name, Origin: w.origin, Reason: reason, want: f.want[name]}
	if old, ok := f.refused[name]; ok && old.want == r.want {
		return
	}
	if w.kind == chainKind && w.hook == nil && name != fromWLChain && name != toWLChain {
		r.instead = &object{kind: chainKind, rules: []rule{newRule(drop)}, origin: w.origin}
	}
	f.refused[name] = r
}

// usesAny returns a set of refused that a chain's rules look up, or "".
func usesAny(w *object, refused map[string]bool) string {
	for _, r := range w.rules {
		for _, e := range r.exprs {
			if l, ok := e.(*expr.Lookup); ok && refused[l.SetName] {
				return l.SetName
			}
		}
	}
	return ""
}

// rank orders objects so that what an object refers to comes before it.
func (f *Firewall) rank(name string) int {
	o := f.want[name]
	if o == nil {
		o = f.have[name]
	}
	switch {
	case o == nil || o.kind == setKind:
		return 0
	case o.kind == mapKind:
		return 3
	case o.hook != nil:
		return 5
	case name == fromWLChain || name == toWLChain:
		return 4
	case strings.HasPrefix(name, "tw-") || strings.HasPrefix(name, "fw-"):
		return 2
	}
	return 1
}

// kernelTable reads which chains and sets (maps among them) table inet calico holds; ok is false when
// there is no such table.
func (f *Firewall) kernelTable(c *nftables.Conn) (chains []string, sets []*nftables.Set, ok bool, err error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, nil, false, fmt.Errorf("listing nftables tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == tableName }) {
		return nil, nil, false, nil
	}
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, nil, false, fmt.Errorf("listing the chains of table inet calico: %w", err)
	}
	for _, ch := range all {
		if ch.Table.Name == tableName {
			chains = append(chains, ch.Name)
		}
	}
	sets, err = c.GetSets(table())
	if err != nil {
		return nil, nil, false, fmt.Errorf("listing the sets of table inet calico: %w", err)
	}
	sets = slices.DeleteFunc(sets, func(s *nftables.Set) bool { return s.Anonymous || strings.HasPrefix(s.Name, "__") })
	return chains, sets, true, nil
}

// listStale lists the chains and sets of the table that we neither want nor wrote (what we wrote goes
// by difference; the dispatch maps' and pool sets' names are fixed, never stale). Names only: cheap
// whatever the sets hold.
func (f *Firewall) listStale() (map[string]*object, error) {
	c, err := f.conn()
	if err != nil {
		return nil, err
	}
	chains, sets, _, err := f.kernelTable(c)
	if err != nil {
		return nil, err
	}
	sk := skeleton()
	stale := map[string]*object{}
	known := func(name string) bool { return f.want[name] != nil || f.have[name] != nil || sk[name] != nil }
	for _, name := range chains {
		if !known(name) {
			stale[name] = &object{kind: chainKind}
		}
	}
	for _, s := range sets {
		if !known(s.Name) {
			o := &object{kind: setKind}
			if s.IsMap {
				o.kind = mapKind
			}
			stale[s.Name] = o
		}
	}
	return stale, nil
}

// checkDrift compares the kernel's table with what we last wrote and forgets the latter if they differ,
// so the next commit rewrites everything (and, once the policy is known, removes what we did not
// write). Chains are compared rule by rule, expression by expression; sets and maps element by element.
// The reading costs time in proportion to the table, so it is skipped once after a full write (as at
// start-up).
func (f *Firewall) checkDrift() error {
	if f.have == nil || f.fresh {
		f.fresh = false
		return nil
	}
	why, err := f.drift()
	if err != nil {
		return err
	}
	if why != "" {
		f.log.Warn("nftables table inet calico drifted; rewriting it", "reason", why)
		f.have, f.sweep = nil, f.policyKnown
	}
	return nil
}

// drift says how the kernel's table differs from f.have ("" if it does not).
func (f *Firewall) drift() (string, error) {
	c, err := f.conn()
	if err != nil {
		return "", err
	}
	chains, sets, _, err := f.kernelTable(c)
	if err != nil {
		return "", err
	}
	inKernel := map[string]kind{}
	for _, name := range chains {
		inKernel[name] = chainKind
	}
	for _, s := range sets {
		inKernel[s.Name] = setKind
		if s.IsMap {
			inKernel[s.Name] = mapKind
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.have)) {
		h := f.have[name]
		k, ok := inKernel[name]
		if !ok {
			return h.kind.String() + " " + name + " missing", nil
		}
		same := k == h.kind
		if same && h.kind == chainKind {
			same, err = sameChain(c, name, h.rules)
		} else if same {
			var elems []nftables.SetElement
			elems, err = c.GetSetElements(h.set.kernelSet(table(), name))
			same = err == nil && maps.Equal(h.set.decode(elems), h.elems)
		}
		if err != nil {
			return "", fmt.Errorf("reading nftables %s %s: %w", h.kind, name, err)
		}
		if !same {
			return h.kind.String() + " " + name + " changed", nil
		}
	}
	if f.policyKnown {
		sk := skeleton()
		for _, name := range slices.Sorted(maps.Keys(inKernel)) {
			if f.have[name] == nil && sk[name] == nil {
				return "unexpected " + inKernel[name].String() + " " + name, nil
			}
		}
	}
	return "", nil
}

// sameChain reports whether the kernel's chain holds exactly the rules, expression by expression
// (anonymous sets by their elements).
func sameChain(c *nftables.Conn, name string, want []rule) (bool, error) {
	got, err := c.GetRules(table(), &nftables.Chain{Table: table(), Name: name})
	if err != nil || len(got) != len(want) {
		return false, err
	}
	for i, r := range want {
		same, err := sameRule(c, r, got[i].Exprs)
		if err != nil || !same {
			return false, err
		}
	}
	return true, nil
}

func sameRule(c *nftables.Conn, want rule, got []expr.Any) (bool, error) {
	if len(got) != len(want.exprs) {
		return false, nil
	}
	anon := 0
	for i, w := range want.exprs {
		if anon < len(want.anon) && w == expr.Any(want.anon[anon].lookup) {
			a := want.anon[anon]
			anon++
			g, ok := got[i].(*expr.Lookup)
			if !ok || g.Invert != a.lookup.Invert || g.SourceRegister != a.lookup.SourceRegister {
				return false, nil
			}
			elems, err := c.GetSetElements(&nftables.Set{Table: table(), Name: g.SetName})
			if err != nil {
				return false, err
			}
			if !slices.Equal(slices.Sorted(maps.Keys(a.typ.decode(elems))), slices.Sorted(slices.Values(a.keys))) {
				return false, nil
			}
			continue
		}
		if !sameExpr(w, got[i]) {
			return false, nil
		}
	}
	return true, nil
}

// sameExpr compares two expressions by their netlink encoding, but for the ID a lookup names its set
// by when the set is created in the same transaction, which the kernel does not keep.
func sameExpr(a, b expr.Any) bool {
	encode := func(e expr.Any) []byte {
		if l, ok := e.(*expr.Lookup); ok {
			c := *l
			c.SetID = 0
			e = &c
		}
		data, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			return nil
		}
		return data
	}
	x, y := encode(a), encode(b)
	return x != nil && bytes.Equal(x, y)
}

// namedPortElem renders a named-port set's element as this package writes it.
func namedPortElem(a netip.Addr, proto uint8, port uint16) string {
	return fmt.Sprintf("%s . %d . %d", a, proto, port)
}

// elemKey renders a prefix as nft lists it: a single address without its length.
func elemKey(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
