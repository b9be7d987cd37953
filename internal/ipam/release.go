package ipam

import (
	"maps"
	"net/netip"
)

// planRelease plans freeing o.ip; when o.handle is set, only if that handle still holds it (the collector
// must not free an address that was released and handed to someone else meanwhile).
func (r *round) planRelease(o *op) {
	rec, ord, ok, err := r.locate(o.ip)
	if err != nil || !ok {
		o.err = err
		return
	}
	a := rec.b.Attr(ord)
	if a == nil || (o.handle != "" && a.Handle() != o.handle) {
		return
	}
	r.release(rec, ord)
	o.released = 1
}

// planReleaseHandle plans freeing every address of o.handle, in the blocks its handle record lists. All
// blocks are read before anything is released, so a failed read leaves the round unchanged.
func (r *round) planReleaseHandle(o *op) {
	h, _, err := r.m.readHandle(r.ctx, o.handle)
	if err != nil {
		o.err = err
		return
	}
	var recs []*blockRec
	for cidrText := range h.Block {
		cidr, err := netip.ParsePrefix(cidrText)
		if err != nil {
			continue
		}
		rec, err := r.block(cidr.Masked())
		if err != nil {
			o.err = err
			return
		}
		if rec.b != nil {
			recs = append(recs, rec)
		}
	}
	for _, rec := range recs {
		var held []int
		for ord, a := range rec.b.Allocated() {
			if a.Handle() == o.handle {
				held = append(held, ord)
			}
		}
		for _, ord := range held {
			r.release(rec, ord)
			o.released++
		}
	}
}

// planSetAttrs plans merging o.attrs into the secondary attributes of o.ip's allocation.
func (r *round) planSetAttrs(o *op) {
	rec, ord, ok, err := r.locate(o.ip)
	if err != nil {
		o.err = err
		return
	}
	var a *Attribute
	if ok {
		a = rec.b.Attr(ord)
	}
	if a == nil {
		o.err = newError(ErrNotAllocated, "%s is not assigned", o.ip)
		return
	}
	merged := *a
	merged.Secondary = maps.Clone(a.Secondary)
	if merged.Secondary == nil {
		merged.Secondary = map[string]string{}
	}
	maps.Copy(merged.Secondary, o.attrs)
	if merged.equal(a) {
		return
	}
	rec.b.SetAttr(ord, merged)
	r.note(rec, ord, merged, true)
}
