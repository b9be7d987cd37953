package link

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// SandboxRoutes lists the destinations routed in a container's network namespace (its netns path, as
// Docker's SandboxKey), so a driver can tell which gateways and routes an earlier network already uses.
func SandboxRoutes(sandboxKey string) ([]netip.Prefix, error) {
	ns, err := netns.GetFromPath(sandboxKey)
	if err != nil {
		return nil, fmt.Errorf("opening sandbox %s: %w", sandboxKey, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in sandbox %s: %w", sandboxKey, err)
	}
	defer h.Close()
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, 0)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes in sandbox %s: %w", sandboxKey, err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if addr, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			ones, _ := r.Dst.Mask.Size()
			out = append(out, netip.PrefixFrom(addr.Unmap(), ones))
		}
	}
	return out, nil
}

// Ops exposes this package's functions as a value, for callers that take them behind an interface.
type Ops struct {
	// HostRoot, when set, is where the host's / appears to this process (a managed plugin reaches Docker's
	// sandbox keys through a host process's /proc/<PID>/root): sandbox paths are opened under it.
	HostRoot string
}

// CreateVeth calls CreateVeth.
func (Ops) CreateVeth(v Veth, peerMAC net.HardwareAddr) (net.HardwareAddr, error) {
	return CreateVeth(v, peerMAC)
}

// LinkLocalIPv6 calls LinkLocalIPv6.
func (Ops) LinkLocalIPv6(name string) (net.IP, error) { return LinkLocalIPv6(name) }

// DeleteVeth calls DeleteVeth.
func (Ops) DeleteVeth(name string) error { return DeleteVeth(name) }

// SandboxRoutes calls SandboxRoutes, for the path under HostRoot.
func (o Ops) SandboxRoutes(sandboxKey string) ([]netip.Prefix, error) {
	if o.HostRoot == "" {
		return SandboxRoutes(sandboxKey)
	}
	path, err := resolveUnder(o.HostRoot, sandboxKey)
	if err != nil {
		return nil, err
	}
	return SandboxRoutes(path)
}
