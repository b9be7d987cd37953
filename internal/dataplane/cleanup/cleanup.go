// Package cleanup removes from a host what this plugin's own dataplane put there, and nothing else. It is
// the one place that knows what on a host is ours. The daemon uses it when it starts with the dataplane
// off, so that a host handed to calico/node keeps no table of ours whose dispatch chains would drop every
// new container's traffic, and for --uninstall.
//
// What is ours:
//   - the nftables table inet calico, and in iptables and ip6tables the chain CALICO-FORWARD with its jumps
//     from FORWARD. Nothing else makes them, so while any of them is there our dataplane has run on this
//     host since it was last cleaned.
//   - routes with our protocol (80, link.RouteProtocol) that are not on a workload interface (routes to
//     other hosts' blocks, blackholes for this host's), and the VXLAN device vxlan.calico. Felix makes
//     routes with protocol 80 and a device of that name too, so these count as ours only while our
//     firewall is there: on the first start with the dataplane off after it ran, or at uninstall, never
//     beside a calico/node that has long taken the host over.
//   - with Options.Interfaces, the workload veths the driver made (pluginVeth). Otherwise they stay, with
//     their routes, for Felix to manage: they belong to live containers.
//
// The dataplane claim's table, other tables and chains, and interfaces or routes of any other kind or
// name are never touched.
package cleanup

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/firewall"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/routing"
)

// workloadPrefix starts the names of the host ends of workload veths.
const workloadPrefix = "cali"

// Options say how much to remove.
type Options struct {
	Log *slog.Logger
	// Interfaces also deletes the plugin's workload veths, and with them their routes.
	Interfaces bool
}

// Remove removes what is ours (see the package comment), logging each thing it removes. It goes on past
// a failure and returns them all; what is already gone is skipped, so running it again is safe. The
// firewall goes last, so that a run that failed half-way still finds the routes ours the next time.
func Remove(opts Options) error {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	fw := firewall.New(workloadPrefix, log)
	ran, err := fw.Installed()
	if err != nil {
		return fmt.Errorf("looking for the plugin's firewall: %w", err)
	}
	var errs []error
	if opts.Interfaces {
		errs = append(errs, removeInterfaces(log))
	}
	if ran {
		errs = append(errs, removeRoutes(log), removeVXLAN(log))
	}
	removed, err := fw.Remove()
	for _, what := range removed {
		log.Info("removed the plugin's firewall", "what", what)
	}
	return errors.Join(append(errs, err)...)
}

// Interfaces lists the plugin's workload veths on the host, sorted.
func Interfaces() ([]string, error) {
	links, err := link.ListLinks(workloadPrefix)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		if pluginVeth(l) {
			names = append(names, l.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// pluginVeth reports whether a host interface is a workload veth this plugin made: named as the driver
// names them (api.LibnetworkInterface) and carrying the plugin's mark (link.VethAlias). A Calico CNI's
// pod veth has the same name shape but not the mark; dummies and bridges are not veths.
func pluginVeth(l link.Iface) bool {
	return l.Made() && api.IsLibnetworkInterface(l.Name)
}

func removeInterfaces(log *slog.Logger) error {
	names, err := Interfaces()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := link.DeleteVeth(name); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("removed a workload interface of the plugin", "interface", name)
	}
	return errors.Join(errs...)
}

func removeRoutes(log *slog.Logger) error {
	routes, err := link.ListBlockRoutes(workloadPrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range routes {
		if err := link.DeleteBlockRoute(r); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("removed a route of the plugin", "route", r.String())
	}
	return errors.Join(errs...)
}

func removeVXLAN(log *slog.Logger) error {
	l, exists, err := link.Lookup(routing.VXLANDevice)
	if err != nil || !exists || l.Kind != "vxlan" {
		return err
	}
	if err := link.DeleteLink(routing.VXLANDevice); err != nil {
		return err
	}
	log.Info("removed the plugin's VXLAN device", "interface", routing.VXLANDevice)
	return nil
}
