package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
)

// The device name Felix uses, and its VNI and port unless FelixConfiguration (node.<name> or default) sets vxlanVNI, vxlanPort.
const (
	VXLANDevice = "vxlan.calico"
	VXLANVNI    = 4096
	VXLANPort   = 4789
	// vxlanOverhead is what VXLAN adds to each packet over IPv4: outer IP, UDP, VXLAN and Ethernet headers.
	vxlanOverhead = 50
	// ipipOverhead is the outer IPv4 header IP-in-IP adds.
	ipipOverhead = 20
)

// parent is the interface a family's direct routes and tunnel leave through.
type parent struct {
	name string
	mtu  int
}

// apply makes the kernel match p: the VXLAN device and its VTEP entries, and tunl0, first (routes over
// them need them), then routes, removing every route of ours that p does not want. What cannot be routed
// at all is recorded for Unroutable.
func (r *Reconciler) apply(p plan) error {
	var errs []error
	unroutable := p.unroutable
	parents := map[bool]*parent{} // keyed by "is IPv6"
	for _, local := range []netip.Prefix{p.local4, p.local6} {
		if !local.IsValid() {
			continue
		}
		name, mtu, err := link.AddressInterface(local.Addr())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		parents[local.Addr().Is6()] = &parent{name: name, mtu: mtu}
	}
	tunnel := false
	if p.device != nil && parents[false] != nil {
		tunnel = r.ensureDevice(p, parents[false], &errs)
	} else if err := link.DeleteLink(VXLANDevice); err != nil {
		errs = append(errs, err)
	}
	ipip := false
	switch {
	case p.ipip != nil && parents[false] != nil:
		mtu := p.ipip.mtu
		if mtu == 0 {
			mtu = parents[false].mtu - ipipOverhead
		}
		err := link.EnsureIPIP(mtu, p.ipip.addr)
		switch {
		case errors.Is(err, unix.EOPNOTSUPP):
			unroutable = append(unroutable, "IP-in-IP pools: this kernel has no IP-in-IP (CONFIG_NET_IPIP), so their "+
				"blocks on other hosts are not routed; use vxlanMode instead of ipipMode")
		case err != nil:
			errs = append(errs, fmt.Errorf("IP-in-IP device: %w", err))
		default:
			ipip = true
		}
	case p.ipip == nil:
		errs = append(errs, link.DropIPIPAddresses(p.pools4))
	}

	wanted := map[netip.Prefix]link.BlockRoute{}
	for _, rt := range p.routes {
		br := link.BlockRoute{Dst: rt.dst, Via: rt.via}
		switch rt.kind {
		case kindBlackhole:
			br.Blackhole = true
		case kindDirect:
			par := parents[rt.dst.Addr().Is6()]
			if par == nil {
				continue
			}
			br.Dev = par.name
		case kindVXLAN:
			if !tunnel {
				continue
			}
			br.Dev = VXLANDevice
		case kindIPIP:
			if !ipip {
				continue
			}
			br.Dev = link.IPIPDevice
		}
		wanted[rt.dst] = br
	}
	present, err := link.ListBlockRoutes(r.cfg.WorkloadPrefix)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, have := range present {
		want, ok := wanted[have.Dst]
		switch {
		case !ok:
			r.log.Debug("removing route", "route", have.String())
			errs = append(errs, link.DeleteBlockRoute(have))
		case want.Equal(have):
			delete(wanted, have.Dst)
		}
	}
	for _, want := range wanted {
		r.log.Debug("programming route", "route", want.String())
		errs = append(errs, link.ReplaceBlockRoute(want))
	}
	r.setUnroutable(unroutable)
	return errors.Join(errs...)
}

// setUnroutable records what cannot be routed, logging each problem when it first appears.
func (r *Reconciler) setUnroutable(problems []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range problems {
		if !slices.Contains(r.unroutable, p) {
			r.log.Warn("routing: cannot route a pool as its mode asks", "problem", p)
		}
	}
	r.unroutable = problems
}

// Unroutable lists the pools whose mode this dataplane cannot route, and what happens instead (/healthz).
func (r *Reconciler) Unroutable() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unroutable)
}

// ensureDevice programs the VXLAN device and its VTEP entries; it reports whether the device is usable.
func (r *Reconciler) ensureDevice(p plan, par *parent, errs *[]error) bool {
	d := link.VXLANDevice{Name: VXLANDevice, VNI: p.device.vni, Port: p.device.port, Parent: par.name,
		Local: p.device.local, MAC: p.device.mac, MTU: p.device.mtu, Addr: p.device.tunnel}
	if d.MTU == 0 {
		d.MTU = par.mtu - vxlanOverhead
	}
	if err := link.EnsureVXLAN(d); err != nil {
		*errs = append(*errs, fmt.Errorf("VXLAN device: %w", err))
		return false
	}
	vteps := make([]link.VTEP, len(p.remote))
	for i, v := range p.remote {
		vteps[i] = link.VTEP{TunnelAddr: v.tunnel, MAC: v.mac, NodeAddr: v.node}
	}
	if err := link.SyncVTEPs(VXLANDevice, vteps); err != nil {
		*errs = append(*errs, err)
	}
	return true
}
