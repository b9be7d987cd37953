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

// conn opens a netlink connection to nftables in our namespace (f.netns in tests), one socket for all
// of its requests (a drift check makes hundreds); close it with CloseLasting.
func (f *Firewall) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
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

// send sends a batch as one transaction, by netlink unless a test or benchmark replaced f.transport.
func (f *Firewall) send(b *batch) error {
	if f.transport != nil {
		return f.transport(b)
	}
	return f.sendNetlink(b)
}

// sendNetlink sends a batch as one netlink transaction.
func (f *Firewall) sendNetlink(b *batch) error {
	c, err := f.conn()
	if err != nil {
		return fmt.Errorf("opening netlink connection to nftables: %w", err)
	}
	defer c.CloseLasting()
	return b.send(c)
}

// commit makes the kernel hold f.want for the named objects, in one transaction, by difference from
// f.have; an object missing from f.have is written whole, since the kernel may hold an earlier
// version. With f.have unknown (a new process, a failed write, drift) every object is. While
// f.unverified, an object missing from f.have is first read back from the kernel and, where it is
// there in a form to write over by difference (see held), written by difference: a restart that finds
// the table as it wants it writes nothing. With f.sweep set commit also deletes whatever else the
// table holds. Should the kernel refuse a transaction by difference, commit
// rewrites everything (the kernel may not hold what we wrote); should it refuse a full one, commit
// isolates the objects it refuses (see commitEach), so that one bad object cannot hold back the rest.
// Callers hold f.mu.
func (f *Firewall) commit(names []string) error {
	full := f.have == nil
	if full {
		names = slices.Sorted(maps.Keys(f.want))
	}
	var b batch
	held, stale, err := f.readKernel(&b, names, full)
	if err != nil {
		return err
	}
	if full {
		f.have = map[string]*object{}
	}
	maps.Copy(f.have, held)
	for _, name := range names {
		f.plan(&b, name)
	}
	for _, name := range slices.Sorted(maps.Keys(stale)) {
		b.delete(stale[name].kind, stale[name].set, name)
	}
	if !b.empty() {
		if err := f.send(&b); err != nil {
			if !full {
				// The kernel may not hold what we wrote (say, the table was deleted under us): rewrite it all.
				f.log.Warn("nftables table inet calico is not as written; rewriting it", "error", err.Error())
				f.forget()
				return f.commit(nil)
			}
			f.log.Warn("the kernel refused a transaction to nftables table inet calico; applying its objects one by one", "error", err.Error())
			return f.commitEach(names, stale, full)
		}
	}
	if full {
		f.fresh = true
		f.log.Info("programmed nftables table inet calico in full", "objects", len(names), "readBack", len(held))
	}
	if len(held) > 0 {
		f.fresh = false // what was read back may be a snapshot (Prefetch): the next check reads the kernel
	}
	if len(stale) > 0 {
		f.log.Info("removed stale objects from nftables table inet calico", "objects", len(stale))
	}
	if f.sweep {
		f.sweep, f.unverified, f.prefetch = false, false, nil
	}
	for _, name := range names {
		f.wrote(name)
	}
	return nil
}

// forget drops what we know of the kernel's table: the next commit writes, or adopts, everything, and
// once the policy is known removes what we did not write.
func (f *Firewall) forget() {
	f.have, f.sweep, f.unverified, f.verified, f.prefetch = nil, f.policyKnown, true, false, nil
}

// readKernel reads the table where a commit of names needs it. In full, it declares in b the table and
// the skeleton's objects that the kernel lacks. While f.unverified, it returns (held) what the kernel
// holds of the objects missing from f.have. With f.sweep, it returns (stale) the objects the table
// holds that we neither want nor wrote.
func (f *Firewall) readKernel(b *batch, names []string, full bool) (held, stale map[string]*object, err error) {
	var adopt []string
	if f.unverified {
		adopt = slices.DeleteFunc(slices.Clone(names), func(name string) bool { return f.have[name] != nil || f.wanted(name) == nil })
	}
	if !full && !f.sweep && len(adopt) == 0 {
		return nil, nil, nil
	}
	var r reader
	var l listing
	if snap := f.prefetched(); snap != nil {
		r, l = snap, snap.listing
	} else {
		c, err := f.conn()
		if err != nil {
			return nil, nil, fmt.Errorf("opening netlink connection to nftables: %w", err)
		}
		defer c.CloseLasting()
		if l, err = list(c); err != nil {
			return nil, nil, err
		}
		r = c
	}
	if full {
		f.declareSkeleton(b, l)
	}
	held = map[string]*object{}
	for _, name := range adopt {
		h, err := l.held(r, name, f.wanted(name))
		if err != nil {
			return nil, nil, fmt.Errorf("reading nftables %s %s: %w", f.wanted(name).kind, name, err)
		}
		if h != nil {
			held[name] = h
		}
	}
	if f.sweep {
		stale = f.stale(l)
	}
	return held, stale, nil
}

// declareSkeleton makes the table and the skeleton's objects exist, keeping any contents; those the
// kernel holds already (l) are not declared again.
func (f *Firewall) declareSkeleton(b *batch, l listing) {
	if !l.exists {
		b.declareTable()
	}
	sk := skeleton()
	for _, name := range slices.Sorted(maps.Keys(sk)) {
		if l.sets[name] == nil {
			b.add(sk[name], name)
		}
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
		f.declareSkeleton(&b, listing{})
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

// listing is what table inet calico holds, by name: chains, and sets and maps (not anonymous ones).
type listing struct {
	exists bool
	chains map[string]*nftables.Chain
	sets   map[string]*nftables.Set
}

// list reads which chains and sets the table holds (names and types, not contents).
func list(c *nftables.Conn) (listing, error) {
	l := listing{chains: map[string]*nftables.Chain{}, sets: map[string]*nftables.Set{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return l, fmt.Errorf("listing nftables tables: %w", err)
	}
	if l.exists = slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == tableName }); !l.exists {
		return l, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return l, fmt.Errorf("listing the chains of table inet calico: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == tableName {
			l.chains[ch.Name] = ch
		}
	}
	sets, err := c.GetSets(table())
	if err != nil {
		return l, fmt.Errorf("listing the sets of table inet calico: %w", err)
	}
	for _, s := range sets {
		if !s.Anonymous && !strings.HasPrefix(s.Name, "__") {
			l.sets[s.Name] = s
		}
	}
	return l, nil
}

// kindOf is the kind of the kernel's object name, and whether it has one.
func (l listing) kindOf(name string) (kind, bool) {
	if l.chains[name] != nil {
		return chainKind, true
	}
	s := l.sets[name]
	if s == nil {
		return 0, false
	}
	if s.IsMap {
		return mapKind, true
	}
	return setKind, true
}

// held is what the kernel holds of o as name, in a form that o can be written over by difference: o
// itself for a chain with o's hook and, expression by expression, o's rules (anonymous sets by their
// elements); for a set or map of o's type, o with the kernel's elements. It is nil for anything else
// (none, another kind or type, other rules), which o must be written over whole.
func (l listing) held(c reader, name string, o *object) (*object, error) {
	if k, ok := l.kindOf(name); !ok || k != o.kind {
		return nil, nil
	}
	if o.kind == chainKind {
		if !o.hook.is(l.chains[name]) {
			return nil, nil
		}
		same, err := sameChain(c, name, o.rules)
		if !same {
			return nil, err
		}
		return o, nil
	}
	got, want := l.sets[name], o.set.kernelSet(table(), name)
	// (The library lists a verdict map's key type as its data type's: its elements tell its keys.)
	if !got.IsMap && got.KeyType.Name != want.KeyType.Name || got.Interval != want.Interval {
		return nil, nil
	}
	elems, err := c.GetSetElements(want)
	if err != nil {
		return nil, err
	}
	h := o.clone()
	h.elems = o.set.decode(elems)
	return h, nil
}

// same reports whether two versions of an object are equal.
func same(a, b *object) bool {
	return a != nil && b != nil && a.kind == b.kind && sameRules(a.rules, b.rules) && maps.Equal(a.elems, b.elems)
}

// stale lists the chains and sets of the table (l) that we neither want nor wrote (what we wrote goes by
// difference; the dispatch maps' and pool sets' names are fixed, never stale).
func (f *Firewall) stale(l listing) map[string]*object {
	sk := skeleton()
	stale := map[string]*object{}
	for _, name := range slices.Concat(slices.Collect(maps.Keys(l.chains)), slices.Collect(maps.Keys(l.sets))) {
		if f.want[name] == nil && f.have[name] == nil && sk[name] == nil {
			k, _ := l.kindOf(name)
			stale[name] = &object{kind: k}
		}
	}
	return stale
}

// checkDrift compares the kernel's table with what we last wrote, object by object: chains rule by rule,
// expression by expression; sets and maps element by element. It records what the kernel holds of the
// objects that differ and returns their names, for the caller to write again (sets and maps by
// difference, chains whole); should the table hold objects we did not write,
// the next commit also removes them (once the policy is known). Without the table, it forgets
// everything. The reading costs time in proportion to the table, so it is skipped once after a full
// write (as at start-up).
func (f *Firewall) checkDrift() ([]string, error) {
	if f.have == nil || f.fresh {
		f.fresh = false
		return nil, nil
	}
	c, err := f.conn()
	if err != nil {
		return nil, fmt.Errorf("opening netlink connection to nftables: %w", err)
	}
	defer c.CloseLasting()
	l, err := list(c)
	if err != nil {
		return nil, err
	}
	if !l.exists {
		f.log.Warn("nftables table inet calico was deleted; writing it again")
		f.forget()
		return nil, nil
	}
	var drifted []string
	for _, name := range slices.Sorted(maps.Keys(f.have)) {
		h := f.have[name]
		got, err := l.held(c, name, h)
		if err != nil {
			return nil, fmt.Errorf("reading nftables %s %s: %w", h.kind, name, err)
		}
		if !same(got, h) {
			drifted = append(drifted, name)
			f.have[name] = got
			if got == nil {
				delete(f.have, name)
			}
		}
	}
	var unexpected []string
	if f.policyKnown {
		unexpected = slices.Sorted(maps.Keys(f.stale(l)))
		f.sweep = f.sweep || len(unexpected) > 0
	}
	if len(drifted) > 0 || len(unexpected) > 0 {
		f.log.Warn("nftables table inet calico drifted; writing what differs again", "changed", drifted, "unexpected", unexpected)
	}
	return drifted, nil
}

// sameChain reports whether the kernel's chain holds exactly the rules, expression by expression
// (anonymous sets by their elements).
func sameChain(c reader, name string, want []rule) (bool, error) {
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

func sameRule(c reader, want rule, got []expr.Any) (bool, error) {
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
