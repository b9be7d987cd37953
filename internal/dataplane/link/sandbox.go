package link

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// SandboxRoutes lists the destinations routed in a container's network namespace (its netns path, as
// Docker's SandboxKey), so a driver can tell which gateways and routes an earlier network already uses.
func SandboxRoutes(sandboxKey string) ([]netip.Prefix, error) {
	h, err := sandboxHandle(sandboxKey)
	if err != nil {
		return nil, err
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

// DeleteSandboxRoute deletes the main table's route to dst in a container's network namespace.
func DeleteSandboxRoute(sandboxKey string, dst netip.Prefix) error {
	h, err := sandboxHandle(sandboxKey)
	if err != nil {
		return err
	}
	defer h.Close()
	ipNet := &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}
	// Scope nowhere matches a route of any scope, as `ip route del` does.
	if err := h.RouteDel(&netlink.Route{Dst: ipNet, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		return fmt.Errorf("deleting the route to %s in sandbox %s: %w", dst, sandboxKey, err)
	}
	return nil
}

// sandboxHandle is a netlink handle in a container's network namespace. The thread's own namespace, which
// the handle's socket is opened from, is found through /proc/thread-self: netns.Get names the thread by its
// IDs, which are wrong where the daemon runs in a PID namespace of its own but sees the host's /proc.
func sandboxHandle(sandboxKey string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(sandboxKey)
	if err != nil {
		return nil, fmt.Errorf("opening sandbox %s: %w", sandboxKey, err)
	}
	defer ns.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := netns.GetFromPath("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("this thread's network namespace: %w", err)
	}
	defer cur.Close()
	h, err := netlink.NewHandleAtFrom(ns, cur)
	if err != nil {
		return nil, fmt.Errorf("netlink in sandbox %s: %w", sandboxKey, err)
	}
	return h, nil
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
	path, err := o.sandboxPath(sandboxKey)
	if err != nil {
		return nil, err
	}
	return SandboxRoutes(path)
}

// DeleteSandboxRoute calls DeleteSandboxRoute, for the path under HostRoot.
func (o Ops) DeleteSandboxRoute(sandboxKey string, dst netip.Prefix) error {
	path, err := o.sandboxPath(sandboxKey)
	if err != nil {
		return err
	}
	return DeleteSandboxRoute(path, dst)
}

func (o Ops) sandboxPath(sandboxKey string) (string, error) {
	if o.HostRoot == "" {
		return sandboxKey, nil
	}
	return resolveUnder(o.HostRoot, sandboxKey)
}
