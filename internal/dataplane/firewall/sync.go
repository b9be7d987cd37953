package firewall

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// commit makes the kernel hold f.want for the named objects, in one nft transaction, by difference from
// f.have; an object missing from f.have is rewritten whole, since the kernel may hold an earlier
// version. With f.have unknown (a new process, a failed write, drift) every object is rewritten. With
// f.sweep set it also deletes whatever else the table holds. Callers hold f.mu.
func (f *Firewall) commit(names []string) error {
	full := f.have == nil
	if full {
		names = slices.Sorted(maps.Keys(f.want))
	}
	var stale map[string]kind
	if f.sweep {
		var err error
		if stale, err = f.listStale(); err != nil {
			return err
		}
	}
	var s script
	if full {
		s.declareSkeleton()
	}
	for _, name := range names {
		w, h := f.want[name], f.have[name]
		switch {
		case w == nil && h != nil:
			s.delete(h.kind, name)
		case w == nil:
		case h == nil:
			s.add(w, name)
			s.rewrite(w, name)
		default:
			s.update(w, h, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(stale)) {
		s.delete(stale[name], name)
	}
	text := s.String()
	if text == "" {
		return nil
	}
	if _, err := f.run(text, "nft", "-f", "-"); err != nil {
		f.have, f.sweep = nil, f.policyKnown
		return fmt.Errorf("programming nftables table inet calico: %w", err)
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
		if w := f.want[name]; w != nil {
			f.have[name] = w.clone()
		} else {
			delete(f.have, name)
		}
	}
	return nil
}

// listStale lists the chains and sets of the table that we neither want nor wrote (what we wrote goes
// by difference; the dispatch maps' and pool sets' names are fixed, never stale). Names only: cheap
// whatever the sets hold.
func (f *Firewall) listStale() (map[string]kind, error) {
	stale := map[string]kind{}
	for _, list := range [][]string{{"list", "chains", "inet"}, {"-t", "list", "sets", "inet"}} {
		objs, err := f.listKernel(list...)
		if err != nil {
			return nil, err
		}
		for name, o := range objs {
			if f.want[name] == nil && f.have[name] == nil && skeleton[name] == nil {
				stale[name] = o.kind
			}
		}
	}
	return stale, nil
}

// checkDrift compares the kernel's table with what we last wrote and forgets the latter if they differ,
// so the next commit rewrites everything (and, once the policy is known, removes what we did not
// write). Chains are compared by rule count, sets and maps element by element. The listing costs
// time in proportion to the table, so it is skipped once after a full write (as at start-up).
func (f *Firewall) checkDrift() error {
	if f.have == nil || f.fresh {
		f.fresh = false
		return nil
	}
	kernel, err := f.listKernel("list", "table", "inet", "calico")
	if err != nil {
		return err
	}
	why := ""
	for name, h := range f.have {
		k, ok := kernel[name]
		switch {
		case !ok:
			why = h.kind.String() + " " + name + " missing"
		case k.kind != h.kind || (h.kind == chainKind && k.rules != len(h.rules)) || (h.kind != chainKind && !maps.Equal(k.elems, h.elems)):
			why = h.kind.String() + " " + name + " changed"
		}
		if why != "" {
			break
		}
	}
	if why == "" && f.policyKnown {
		for name, k := range kernel {
			if f.have[name] == nil && skeleton[name] == nil {
				why = "unexpected " + k.kind.String() + " " + name
				break
			}
		}
	}
	if why != "" {
		f.log.Warn("nftables table inet calico drifted; rewriting it", "reason", why)
		f.have, f.sweep = nil, f.policyKnown
	}
	return nil
}

// kernelObject is what the kernel's listing says of one object.
type kernelObject struct {
	kind  kind
	rules int
	elems map[string]string
}

// listKernel runs an nft list command (JSON output) and returns the objects of table inet calico it
// shows; a missing table is an empty one.
func (f *Firewall) listKernel(list ...string) (map[string]kernelObject, error) {
	out, err := f.run("", append([]string{"nft", "-j"}, list...)...)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return map[string]kernelObject{}, nil
		}
		return nil, err
	}
	var listing struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &listing); err != nil {
		return nil, fmt.Errorf("reading nft's listing of table inet calico: %w", err)
	}
	objs := map[string]kernelObject{}
	for _, entry := range listing.Nftables {
		for key, raw := range entry {
			var o struct {
				Table string            `json:"table"`
				Name  string            `json:"name"`
				Chain string            `json:"chain"`
				Elem  []json.RawMessage `json:"elem"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, fmt.Errorf("reading nft's listing of table inet calico: %w", err)
			}
			if o.Table != "calico" {
				continue
			}
			switch key {
			case "chain":
				objs[o.Name] = kernelObject{kind: chainKind, rules: objs[o.Name].rules}
			case "rule":
				k := objs[o.Chain]
				k.rules++
				objs[o.Chain] = k
			case "set", "map":
				k := kernelObject{kind: setKind, elems: map[string]string{}}
				if key == "map" {
					k.kind = mapKind
				}
				for _, e := range o.Elem {
					key, value := kernelElem(e)
					k.elems[key] = value
				}
				objs[o.Name] = k
			}
		}
	}
	return objs, nil
}

// kernelElem renders an element of nft's JSON the way this package writes it: an address, a prefix, a
// named port's address . protocol . port, or a map's interface name and "goto <chain>". Anything else comes
// out as its JSON, which never matches.
func kernelElem(raw json.RawMessage) (key, value string) {
	var pair []json.RawMessage
	if json.Unmarshal(raw, &pair) == nil && len(pair) == 2 {
		key, _ = kernelElem(pair[0])
		var v struct {
			Goto struct{ Target string } `json:"goto"`
		}
		if json.Unmarshal(pair[1], &v) == nil && v.Goto.Target != "" {
			return key, "goto " + v.Goto.Target
		}
		return key, string(pair[1])
	}
	var concat struct {
		Concat []json.RawMessage `json:"concat"`
	}
	if json.Unmarshal(raw, &concat) == nil && len(concat.Concat) == 3 {
		var a string
		var port uint16
		if json.Unmarshal(concat.Concat[0], &a) == nil && json.Unmarshal(concat.Concat[2], &port) == nil {
			addr, err := netip.ParseAddr(a)
			number, known := protocolNumber(concat.Concat[1])
			if err == nil && known {
				return namedPortElem(addr, number, port), ""
			}
		}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.String(), ""
		}
		return s, ""
	}
	var p struct {
		Prefix struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
	}
	if json.Unmarshal(raw, &p) == nil {
		if a, err := netip.ParseAddr(p.Prefix.Addr); err == nil {
			return elemKey(netip.PrefixFrom(a, p.Prefix.Len)), ""
		}
	}
	return string(raw), ""
}

// namedPortElem renders a named-port set's element as this package writes it and kernelElem reads it.
func namedPortElem(a netip.Addr, proto uint8, port uint16) string {
	return fmt.Sprintf("%s . %d . %d", a, proto, port)
}

// protocolNumber reads an inet_proto as nft lists it: by name for the protocols with ports, else a number.
func protocolNumber(raw json.RawMessage) (uint8, bool) {
	var n uint8
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var name string
	_ = json.Unmarshal(raw, &name)
	n, ok := map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136}[name]
	return n, ok
}

// elemKey renders a prefix as nft lists it: a single address without its length.
func elemKey(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
