package link

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IPIPDevice is the kernel's fallback IP-in-IP device, used as Felix uses it: it receives every IP-in-IP
// packet addressed to the host, and routes through it name the remote host as on-link next hop.
const IPIPDevice = "tunl0"

// EnsureIPIP sets tunl0 up with mtu, and with addr (this host's IPIP tunnel address, if allocated yet) as
// its only global IPv4 address. Asking for tunl0 loads the ipip module, which creates it in every
// namespace; where the kernel keeps fallback devices to the initial namespace, the device created
// instead, with no local or remote address, catches the same packets.
func EnsureIPIP(mtu int, addr netip.Addr) error {
	l, err := netlink.LinkByName(IPIPDevice)
	if isLinkNotFound(err) {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = IPIPDevice
		if err := netlink.LinkAdd(&netlink.Iptun{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating %s: %w", IPIPDevice, err)
		}
		l, err = netlink.LinkByName(IPIPDevice)
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", IPIPDevice, err)
	}
	if l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("setting the MTU of %s: %w", IPIPDevice, err)
		}
	}
	if addr.IsValid() {
		if err := setOnlyAddress(l, addr); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", IPIPDevice, err)
	}
	return nil
}

// DropIPIPAddresses removes from tunl0 the addresses inside pools: a tunnel address released when IP-in-IP
// went would otherwise keep attracting traffic meant for the workload that gets it next. The device
// itself belongs to the kernel module and stays.
func DropIPIPAddresses(pools []netip.Prefix) error {
	l, err := netlink.LinkByName(IPIPDevice)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", IPIPDevice, err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", IPIPDevice, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		for _, p := range pools {
			if p.Contains(ip.Unmap()) {
				if err := netlink.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
					return fmt.Errorf("removing %s from %s: %w", a.IPNet, IPIPDevice, err)
				}
				break
			}
		}
	}
	return nil
}
