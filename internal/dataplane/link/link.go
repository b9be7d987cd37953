// Package link performs the kernel operations for one routed workload interface: the host end of
// a veth pair (no bridge), its sysctls, and the /32 and /128 routes that point at it.
//
// Every function acts on the network namespace of the calling OS thread and keeps no state, so
// concurrent calls (many Joins at once) are safe.
package link

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultHostMAC is the MAC of a host-side workload interface unless the caller picks one. Links are
// point-to-point and routed, so one MAC can serve them all; a caller that needs a distinct IPv6
// link-local gateway per interface (several networks in one container) passes its own.
var DefaultHostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// dumpAttempts bounds retries of netlink dumps the kernel flags as interrupted (NLM_F_DUMP_INTR),
// which happens when links or routes change mid-dump, as they do while many workloads start.
const dumpAttempts = 5

// Veth describes a workload veth pair. HostName stays in the host namespace; PeerName is the end
// Docker moves into the container.
type Veth struct {
	HostName, PeerName string
	MTU                int              // 0 keeps the kernel default
	IPv6               bool             // also apply the IPv6 sysctls to the host end
	HostMAC            net.HardwareAddr // nil means DefaultHostMAC
}

// CreateVeth creates the pair in the calling thread's namespace in a single netlink request, with
// final names, MTU and MACs, so there is no rename or half-configured window. The host end gets
// its MAC (HostMAC or DefaultHostMAC) and the workload sysctls and is set up; the peer stays down for Docker to
// move. The returned MAC is the peer's (peerMAC when given, otherwise the kernel's choice), i.e.
// the container-side MAC. On failure nothing is left behind.
func CreateVeth(v Veth, peerMAC net.HardwareAddr) (net.HardwareAddr, error) {
	for _, name := range []string{v.HostName, v.PeerName} {
		if err := checkName(name); err != nil {
			return nil, err
		}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = v.HostName
	attrs.MTU = v.MTU
	attrs.HardwareAddr = DefaultHostMAC
	if v.HostMAC != nil {
		attrs.HardwareAddr = v.HostMAC
	}
	veth := netlink.NewVeth(attrs)
	veth.PeerName = v.PeerName
	veth.PeerHardwareAddr = peerMAC
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("creating veth %s: interface %s already exists: %w",
				v.HostName, existingName(v), err)
		}
		return nil, fmt.Errorf("creating veth %s (peer %s): %w", v.HostName, v.PeerName, err)
	}
	mac, err := finishVeth(v, veth)
	if err != nil {
		if delErr := DeleteVeth(v.HostName); delErr != nil {
			err = errors.Join(err, delErr)
		}
		return nil, err
	}
	return mac, nil
}

// existingName reports which of the pair's names is taken; the kernel's EEXIST does not say.
func existingName(v Veth) string {
	if _, err := netlink.LinkByName(v.HostName); err == nil {
		return v.HostName
	}
	return v.PeerName
}

// finishVeth marks the host end as the plugin's and applies the sysctls before it goes up, so it never carries traffic
// unconfigured, and reads the peer MAC the kernel chose.
func finishVeth(v Veth, host *netlink.Veth) (net.HardwareAddr, error) {
	// The kernel takes an alias only on an existing link, not in the request that creates it.
	if err := netlink.LinkSetAlias(host, VethAlias); err != nil {
		return nil, fmt.Errorf("marking %s as the plugin's: %w", v.HostName, err)
	}
	if err := ConfigureHostInterface(v.HostName, v.IPv6); err != nil {
		return nil, err
	}
	mac := host.PeerHardwareAddr
	if mac == nil {
		peer, err := netlink.LinkByName(v.PeerName)
		if err != nil {
			return nil, fmt.Errorf("reading veth peer %s: %w", v.PeerName, err)
		}
		mac = peer.Attrs().HardwareAddr
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return nil, fmt.Errorf("setting %s up: %w", v.HostName, err)
	}
	return mac, nil
}

// DeleteLink deletes the named link (for a veth, both ends). A missing link is success, so
// callers can retry and garbage-collect freely.
func DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// ErrNotVeth is returned for an interface that has a workload interface's name but is not a veth: not
// made by this package, so not to be deleted or routed to.
var ErrNotVeth = errors.New("not a veth")

// DeleteVeth deletes the named veth (both ends). A missing link is success, so callers can retry and
// garbage-collect freely; a link of that name that is not a veth is left alone (ErrNotVeth).
func DeleteVeth(name string) error {
	l, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if l.Type() != vethKind {
		return fmt.Errorf("interface %s is a %s, not a veth this plugin made: left alone: %w", name, l.Type(), ErrNotVeth)
	}
	if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// VethAlias marks (as the interface alias, IFLA_IFALIAS) the host end of every veth CreateVeth makes: a
// Calico CNI names its pods' veths in the same cali+11-hex shape as the driver, so the name alone cannot
// tell the plugin's interfaces from others that the plugin must never delete.
const VethAlias = "calico-libnetwork"

// vethKind is the netlink kind of a veth.
const vethKind = "veth"

// Iface is a link: its name and its netlink kind ("veth", "dummy", "bridge", ...).
type Iface struct {
	Name, Kind string
	Alias      string // the interface alias (ip link ... alias)
}

// IsVeth reports whether the link is a veth.
func (i Iface) IsVeth() bool { return i.Kind == vethKind }

// Made reports whether CreateVeth made the link (a veth carrying VethAlias).
func (i Iface) Made() bool { return i.IsVeth() && i.Alias == VethAlias }

// Lookup returns the named link, and false when there is none: e.g. whether Join has created a workload
// interface yet, and whether it is a veth.
func Lookup(name string) (Iface, bool, error) {
	l, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return Iface{}, false, nil
	}
	if err != nil {
		return Iface{}, false, fmt.Errorf("looking up %s: %w", name, err)
	}
	return Iface{Name: name, Kind: l.Type(), Alias: l.Attrs().Alias}, true, nil
}

// ListLinks returns the links whose name starts with prefix, so orphaned workload interfaces can be
// garbage-collected.
func ListLinks(prefix string) ([]Iface, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []Iface
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, prefix) {
			out = append(out, Iface{Name: name, Kind: l.Type(), Alias: l.Attrs().Alias})
		}
	}
	return out, nil
}

// linkLocalWait bounds how long LinkLocalIPv6 waits for an address it cannot derive.
const linkLocalWait = time.Second

// LinkLocalIPv6 returns the IPv6 link-local address of the named host interface: the IPv6
// gateway of its workload. The kernel assigns that address only once the link has carrier, i.e.
// after Docker has brought the container end up, which is after Join has to answer. So while it
// is missing on an interface that uses EUI-64 generation (ConfigureHostInterface with ipv6 sets
// that), it is derived from the MAC as the kernel will; otherwise it is waited for briefly.
func LinkLocalIPv6(name string) (net.IP, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	if disabled, err := readSysctl("net", "ipv6", "conf", name, "disable_ipv6"); err != nil {
		return nil, err
	} else if disabled != "0" {
		return nil, fmt.Errorf("IPv6 is disabled on %s", name)
	}
	mode, err := readSysctl("net", "ipv6", "conf", name, "addr_gen_mode")
	if err != nil {
		return nil, err
	}
	mac := l.Attrs().HardwareAddr
	derivable := mode == "0" && len(mac) == 6
	deadline := time.Now().Add(linkLocalWait)
	for {
		addrs, err := retryDump(func() ([]netlink.Addr, error) {
			return netlink.AddrList(l, netlink.FAMILY_V6)
		})
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", name, err)
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				return a.IP, nil
			}
		}
		if derivable {
			return eui64LinkLocal(mac), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s has no IPv6 link-local address after %v", name, linkLocalWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eui64LinkLocal is the address the kernel generates from a 6-byte MAC (RFC 4291 appendix A).
func eui64LinkLocal(mac net.HardwareAddr) net.IP {
	return net.IP{0xfe, 0x80, 0, 0, 0, 0, 0, 0,
		mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]}
}

func isLinkNotFound(err error) bool {
	var notFound netlink.LinkNotFoundError
	return errors.As(err, &notFound) || errors.Is(err, unix.ENODEV)
}

// checkName applies the kernel's rules for interface names (dev_valid_name). Names also become
// /proc/sys path components, so this keeps "..", "/" and the like out of those paths.
func checkName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\v\f\r") {
		return fmt.Errorf("invalid interface name %q", name)
	}
	return nil
}

// retryDump runs a netlink dump again while the kernel reports it as interrupted: the partial
// result it comes with cannot be trusted.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var (
		res T
		err error
	)
	for range dumpAttempts {
		if res, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
	}
	return res, fmt.Errorf("netlink dump still interrupted after %d attempts: %w", dumpAttempts, err)
}
