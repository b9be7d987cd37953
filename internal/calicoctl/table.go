package calicoctl

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// column is one table column: its heading and how to render a resource in it.
type column struct {
	heading string
	value   func(api.Object) string
}

// tableFormat says how a table is printed.
type tableFormat struct {
	wide, printNamespace bool
	// clusterAS is what the wide Node table shows, in parentheses, for a node without an AS number of its
	// own, as upstream: BGPConfiguration "default"'s AS number, or calico/node's default.
	clusterAS string
}

// tableColumns returns upstream calicoctl's default (ps) or wide columns for a kind.
func tableColumns(kind string, format tableFormat) []column {
	wide := format.wide
	name := column{"NAME", func(o api.Object) string { return o.GetObjectMeta().Name }}
	switch kind {
	case api.KindIPPool:
		pool := func(f func(*api.IPPoolSpec) string) func(api.Object) string {
			return func(o api.Object) string { return f(&o.(*api.IPPool).Spec) }
		}
		cidr := column{"CIDR", pool(func(s *api.IPPoolSpec) string { return s.CIDR })}
		sel := column{"SELECTOR", pool(func(s *api.IPPoolSpec) string { return orDefault(s.NodeSelector, "all()") })}
		if !wide {
			return []column{name, cidr, sel}
		}
		return []column{name, cidr,
			{"NAT", pool(func(s *api.IPPoolSpec) string { return strconv.FormatBool(s.NATOutgoing) })},
			{"IPIPMODE", pool(func(s *api.IPPoolSpec) string { return orDefault(s.IPIPMode, api.EncapNever) })},
			{"VXLANMODE", pool(func(s *api.IPPoolSpec) string { return orDefault(s.VXLANMode, api.EncapNever) })},
			{"DISABLED", pool(func(s *api.IPPoolSpec) string { return strconv.FormatBool(s.Disabled) })},
			{"DISABLEBGPEXPORT", pool(func(s *api.IPPoolSpec) string { return strconv.FormatBool(s.DisableBGPExport) })},
			sel,
			{"ASSIGNMENTMODE", pool(func(s *api.IPPoolSpec) string { return orDefault(s.AssignmentMode, api.AssignAutomatic) })},
		}
	case api.KindWorkloadEndpoint:
		wep := func(f func(*api.WorkloadEndpointSpec) string) func(api.Object) string {
			return func(o api.Object) string { return f(&o.(*api.WorkloadEndpoint).Spec) }
		}
		cols := []column{
			{"WORKLOAD", wep(func(s *api.WorkloadEndpointSpec) string { return orDefault(s.Workload, s.Pod) })},
			{"NODE", wep(func(s *api.WorkloadEndpointSpec) string { return s.Node })},
			{"NETWORKS", wep(func(s *api.WorkloadEndpointSpec) string { return strings.Join(s.IPNetworks, ",") })},
			{"INTERFACE", wep(func(s *api.WorkloadEndpointSpec) string { return s.InterfaceName })},
		}
		if !wide {
			return cols
		}
		return append(append([]column{name}, cols...),
			column{"PROFILES", wep(func(s *api.WorkloadEndpointSpec) string { return strings.Join(s.Profiles, ",") })},
			column{"NATS", wep(func(s *api.WorkloadEndpointSpec) string {
				nats := make([]string, len(s.IPNATs))
				for i, n := range s.IPNATs {
					nats[i] = fmt.Sprint(n)
				}
				return strings.Join(nats, ",")
			})},
		)
	case api.KindProfile:
		if !wide {
			return []column{name}
		}
		return []column{name, {"LABELS", func(o api.Object) string { return joinLabels(o.(*api.Profile).Spec.LabelsToApply) }}}
	case api.KindNode:
		if !wide {
			return []column{name}
		}
		bgp := func(f func(*api.NodeBGPSpec) string) func(api.Object) string {
			return func(o api.Object) string {
				if b := o.(*api.Node).Spec.BGP; b != nil {
					return f(b)
				}
				return ""
			}
		}
		return []column{name,
			{"ASN", bgp(func(b *api.NodeBGPSpec) string {
				if b.ASNumber == nil {
					return "(" + format.clusterAS + ")"
				}
				return b.ASNumber.String()
			})},
			{"IPV4", bgp(func(b *api.NodeBGPSpec) string { return b.IPv4Address })},
			{"IPV6", bgp(func(b *api.NodeBGPSpec) string { return b.IPv6Address })},
		}
	case api.KindNetworkPolicy, api.KindGlobalNetworkPolicy:
		policy := func(o api.Object) *api.PolicySpec {
			if np, ok := o.(*api.NetworkPolicy); ok {
				return &np.Spec
			}
			return &o.(*api.GlobalNetworkPolicy).Spec
		}
		cols := []column{name}
		if kind == api.KindNetworkPolicy {
			cols = append(cols, column{"TIER", func(o api.Object) string { return orDefault(policy(o).Tier, "default") }})
		}
		if wide {
			cols = append(cols,
				column{"ORDER", func(o api.Object) string { return formatOrder(policy(o).Order) }},
				column{"SELECTOR", func(o api.Object) string { return policy(o).Selector }},
			)
		}
		return cols
	case api.KindClusterInformation:
		ci := func(f func(*api.ClusterInformationSpec) string) func(api.Object) string {
			return func(o api.Object) string { return f(&o.(*api.ClusterInformation).Spec) }
		}
		return []column{name,
			{"CLUSTERGUID", ci(func(s *api.ClusterInformationSpec) string { return s.ClusterGUID })},
			{"CLUSTERTYPE", ci(func(s *api.ClusterInformationSpec) string { return s.ClusterType })},
			{"CALICOVERSION", ci(func(s *api.ClusterInformationSpec) string { return s.CalicoVersion })},
			{"DATASTOREREADY", ci(func(s *api.ClusterInformationSpec) string {
				if s.DatastoreReady == nil {
					return ""
				}
				return strconv.FormatBool(*s.DatastoreReady)
			})},
		}
	case api.KindTier:
		return []column{name, {"ORDER", func(o api.Object) string { return formatOrder(o.(*api.Tier).Spec.Order) }}}
	case api.KindBGPPeer:
		peer := func(f func(*api.BGPPeerSpec) string) func(api.Object) string {
			return func(o api.Object) string { return f(&o.(*api.BGPPeer).Spec) }
		}
		return []column{name,
			{"PEERIP", peer(func(s *api.BGPPeerSpec) string { return s.PeerIP })},
			{"NODE", peer(func(s *api.BGPPeerSpec) string { return orDefault(s.Node, orDefault(s.NodeSelector, "(global)")) })},
			{"ASN", peer(func(s *api.BGPPeerSpec) string { return s.ASNumber.String() })},
		}
	case api.KindBGPConfiguration:
		bgp := func(f func(*api.BGPConfigurationSpec) string) func(api.Object) string {
			return func(o api.Object) string { return f(&o.(*api.BGPConfiguration).Spec) }
		}
		return []column{name,
			{"LOGSEVERITY", bgp(func(s *api.BGPConfigurationSpec) string { return s.LogSeverityScreen })},
			{"MESHENABLED", bgp(func(s *api.BGPConfigurationSpec) string {
				if s.NodeToNodeMeshEnabled == nil {
					return "-"
				}
				return strconv.FormatBool(*s.NodeToNodeMeshEnabled)
			})},
			{"ASNUMBER", bgp(func(s *api.BGPConfigurationSpec) string {
				if s.ASNumber == nil {
					return "-"
				}
				return s.ASNumber.String()
			})},
		}
	}
	return []column{name}
}

// writeTable prints resources as upstream's ps-style table: tab-aligned columns (NAMESPACE first when
// asked for), followed by an empty line.
func writeTable(w io.Writer, info api.KindInfo, objs []api.Object, f tableFormat) error {
	cols := tableColumns(info.Kind, f)
	if f.printNamespace && info.Namespaced {
		cols = append([]column{{"NAMESPACE", func(o api.Object) string { return o.GetObjectMeta().Namespace }}}, cols...)
	}
	tw := tabwriter.NewWriter(w, 5, 1, 3, ' ', 0)
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.heading)
	}
	fmt.Fprintln(tw)
	for _, obj := range objs {
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", c.value(obj))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func formatOrder(order *float64) string {
	if order == nil {
		return ""
	}
	return strconv.FormatFloat(*order, 'g', -1, 64)
}

// joinLabels renders a label map as sorted key=value pairs separated by commas.
func joinLabels(labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}
