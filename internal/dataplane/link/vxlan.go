package link

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLANDevice is a host's VXLAN tunnel endpoint (Calico's vxlan.calico): encapsulated packets leave from
// Local on Parent, and the device carries the host's tunnel address.
type VXLANDevice struct {
	Name   string
	VNI    int
	Port   int
	Parent string     // the interface holding Local
	Local  netip.Addr // outer source address: this host's address
	MAC    net.HardwareAddr
	MTU    int
	Addr   netip.Addr // the host's tunnel address, assigned as a host route (/32, /128)
}

// EnsureVXLAN makes the device match d: created if missing, recreated if its VNI, port, parent or local
// address differ (the kernel cannot change those), then MAC, MTU and address set and the link up.
// Learning is off: every remote endpoint comes from SyncVTEPs.
func EnsureVXLAN(d VXLANDevice) error {
	parent, err := netlink.LinkByName(d.Parent)
	if err != nil {
		return fmt.Errorf("VXLAN parent %s: %w", d.Parent, err)
	}
	cur, err := netlink.LinkByName(d.Name)
	switch {
	case isLinkNotFound(err):
		cur = nil
	case err != nil:
		return fmt.Errorf("looking up %s: %w", d.Name, err)
	default:
		vx, ok := cur.(*netlink.Vxlan)
		if !ok || vx.VxlanId != d.VNI || vx.Port != d.Port || vx.VtepDevIndex != parent.Attrs().Index ||
			!vx.SrcAddr.Equal(d.Local.AsSlice()) {
			if err := DeleteLink(d.Name); err != nil {
				return err
			}
			cur = nil
		}
	}
	if cur == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU, attrs.HardwareAddr = d.Name, d.MTU, d.MAC
		vx := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: d.VNI, Port: d.Port,
			VtepDevIndex: parent.Attrs().Index, SrcAddr: d.Local.AsSlice()}
		if err := netlink.LinkAdd(vx); err != nil {
			return fmt.Errorf("creating VXLAN device %s: %w", d.Name, err)
		}
		if cur, err = netlink.LinkByName(d.Name); err != nil {
			return fmt.Errorf("looking up %s: %w", d.Name, err)
		}
	}
	if !bytes.Equal(cur.Attrs().HardwareAddr, d.MAC) {
		if err := netlink.LinkSetHardwareAddr(cur, d.MAC); err != nil {
			return fmt.Errorf("setting the MAC of %s: %w", d.Name, err)
		}
	}
	if cur.Attrs().MTU != d.MTU {
		if err := netlink.LinkSetMTU(cur, d.MTU); err != nil {
			return fmt.Errorf("setting the MTU of %s: %w", d.Name, err)
		}
	}
	if err := setOnlyAddress(cur, d.Addr); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(cur); err != nil {
		return fmt.Errorf("setting %s up: %w", d.Name, err)
	}
	return nil
}

// setOnlyAddress leaves addr as the link's only global address of its family.
func setOnlyAddress(l netlink.Link, addr netip.Addr) error {
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, family) })
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", l.Attrs().Name, err)
	}
	want := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())}
	found := false
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		if a.IPNet.String() == want.String() {
			found = true
			continue
		}
		if err := netlink.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing %s from %s: %w", a.IPNet, l.Attrs().Name, err)
		}
	}
	if found {
		return nil
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: want}); err != nil {
		return fmt.Errorf("adding %s to %s: %w", want, l.Attrs().Name, err)
	}
	return nil
}

// VTEP is a remote host's tunnel endpoint: its tunnel address and VTEP MAC, reached at its host address.
type VTEP struct {
	TunnelAddr netip.Addr
	MAC        net.HardwareAddr
	NodeAddr   netip.Addr
}

// SyncVTEPs makes the device's neighbour (ARP/NDP) and forwarding database entries exactly those of
// vteps, all permanent, as Calico does: the kernel then never floods or resolves anything on the tunnel.
func SyncVTEPs(dev string, vteps []VTEP) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", dev, err)
	}
	idx := l.Attrs().Index
	var errs []error
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6, unix.AF_BRIDGE} {
		fdb := family == unix.AF_BRIDGE
		present, err := retryDump(func() ([]netlink.Neigh, error) { return netlink.NeighList(idx, family) })
		if err != nil {
			errs = append(errs, fmt.Errorf("listing neighbours of %s: %w", dev, err))
			continue
		}
		var wanted []netlink.Neigh
		for _, v := range vteps {
			n := netlink.Neigh{LinkIndex: idx, Family: family, State: netlink.NUD_PERMANENT, HardwareAddr: v.MAC}
			switch {
			case fdb:
				n.Flags, n.IP = netlink.NTF_SELF, v.NodeAddr.AsSlice()
			case v.TunnelAddr.Is4() == (family == netlink.FAMILY_V4):
				n.IP = v.TunnelAddr.AsSlice()
			default:
				continue
			}
			wanted = append(wanted, n)
		}
		errs = append(errs, syncNeighbours(present, wanted, fdb)...)
	}
	return errors.Join(errs...)
}

// syncNeighbours deletes the present entries not wanted and sets the wanted ones not present. FDB entries
// are identified by MAC, neighbour entries by IP.
func syncNeighbours(present, wanted []netlink.Neigh, fdb bool) []error {
	same := func(a, b netlink.Neigh) bool {
		if fdb {
			return bytes.Equal(a.HardwareAddr, b.HardwareAddr)
		}
		return a.IP.Equal(b.IP)
	}
	var errs []error
	for _, p := range present {
		if p.IP.IsLinkLocalMulticast() || p.IP.IsMulticast() {
			continue
		}
		i := slices.IndexFunc(wanted, func(w netlink.Neigh) bool { return same(w, p) })
		if i >= 0 && p.State == netlink.NUD_PERMANENT && p.IP.Equal(wanted[i].IP) &&
			bytes.Equal(p.HardwareAddr, wanted[i].HardwareAddr) {
			wanted = slices.Delete(wanted, i, i+1)
			continue
		}
		if i < 0 {
			if fdb {
				p.Flags = netlink.NTF_SELF
			}
			if err := netlink.NeighDel(&p); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("deleting neighbour %s %s: %w", p.IP, p.HardwareAddr, err))
			}
		}
	}
	for _, w := range wanted {
		if err := netlink.NeighSet(&w); err != nil {
			errs = append(errs, fmt.Errorf("setting neighbour %s %s: %w", w.IP, w.HardwareAddr, err))
		}
	}
	return errs
}

// AddressInterface returns the name and MTU of the interface holding addr, so that tunnels and direct
// routes leave through it.
func AddressInterface(addr netip.Addr) (string, int, error) {
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, family) })
	if err != nil {
		return "", 0, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", 0, fmt.Errorf("looking up the interface of %s: %w", addr, err)
			}
			return l.Attrs().Name, l.Attrs().MTU, nil
		}
	}
	return "", 0, fmt.Errorf("no interface holds %s", addr)
}
