package calicoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

func newIPAMCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "Inspect and repair IP address management",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newIPAMShowCommand(o), newIPAMCheckCommand(o), newIPAMReleaseCommand(o), newIPAMConfigureCommand(o))
	return cmd
}

// withIPAM runs fn with an IPAM client on the datastore. Showing, checking and releasing act on every
// node's blocks, so the client is not tied to a node.
func (o *options) withIPAM(ctx context.Context, fn func(*datastore.Store, *ipam.IPAM) error) error {
	return o.withStore(ctx, func(store *datastore.Store) error {
		return fn(store, ipam.New(store, ipam.Options{}))
	})
}

func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address: %q", s)
	}
	return ip.Unmap(), nil
}

func newIPAMShowCommand(o *options) *cobra.Command {
	var ipFlag string
	var showBlocks, showConfig bool
	cmd := &cobra.Command{
		Use:   "show [--ip IP | --show-blocks | --show-configuration]",
		Short: "Show IP pool and block usage, or who holds an address",
		Long: `Without flags, show each IP pool's size and use. --show-blocks adds a row for each allocation block,
with the node it is affine to. --ip shows whether an address is assigned, and to what.
--show-configuration shows the cluster-wide IPAM configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ipFlag != "" {
				ip, err := parseIP(ipFlag)
				if err != nil {
					return err
				}
				return o.withIPAM(cmd.Context(), func(_ *datastore.Store, m *ipam.IPAM) error {
					return showIP(cmd.Context(), o.stdout, m, ip)
				})
			}
			if showConfig && !showBlocks {
				return o.withIPAM(cmd.Context(), func(_ *datastore.Store, m *ipam.IPAM) error {
					cfg, err := m.Config(cmd.Context())
					if err != nil {
						return err
					}
					return writeIPAMConfig(o.stdout, cfg)
				})
			}
			return o.withIPAM(cmd.Context(), func(_ *datastore.Store, m *ipam.IPAM) error {
				usage, err := m.Usage(cmd.Context())
				if err != nil {
					return err
				}
				return writeUsage(o.stdout, usage, showBlocks)
			})
		},
	}
	cmd.Flags().StringVar(&ipFlag, "ip", "", "show the allocation of this address")
	cmd.Flags().BoolVar(&showBlocks, "show-blocks", false, "show each block's usage and node affinity too")
	cmd.Flags().BoolVar(&showConfig, "show-configuration", false, "show the cluster-wide IPAM configuration")
	return cmd
}

func showIP(ctx context.Context, w io.Writer, m *ipam.IPAM, ip netip.Addr) error {
	info, err := m.Allocation(ctx, ip)
	if errors.Is(err, ipam.ErrNotAllocated) {
		fmt.Fprintf(w, "%s is not assigned\n", ip)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "IP %s is in use\n", ip)
	fmt.Fprintf(w, "Handle ID: %s\n", orDefault(info.Handle, "<none>"))
	if len(info.Attrs) == 0 {
		fmt.Fprintln(w, "No Active Owner attributes defined")
	} else {
		fmt.Fprintln(w, "Active Owner Attributes:")
		keys := make([]string, 0, len(info.Attrs))
		for k := range info.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", k, info.Attrs[k])
		}
	}
	affinity := "none"
	if info.BlockNode != "" {
		affinity = "host:" + info.BlockNode
	}
	fmt.Fprintf(w, "Block: %s (affinity %s)\n", info.Block, affinity)
	return nil
}

// writeUsage prints upstream's `ipam show` table: one "IP Pool" row per pool and, with showBlocks, a
// "Block" row per block (with an AFFINITY column naming the block's node).
func writeUsage(w io.Writer, usage []ipam.PoolUsage, showBlocks bool) error {
	headers := []string{"GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"}
	if showBlocks {
		headers = append(headers, "AFFINITY")
	}
	row := func(grouping, cidr string, total, inUse float64) []string {
		pct := func(n float64) string {
			p := 0.0
			if total > 0 {
				p = 100 * n / total
			}
			return fmt.Sprintf("%.5g (%.f%%)", n, p)
		}
		return []string{grouping, cidr, fmt.Sprintf("%.5g", total), pct(inUse), pct(total - inUse)}
	}
	var rows [][]string
	for _, u := range usage {
		r := row("IP Pool", u.CIDR.String(), u.Size, float64(u.InUse))
		if !showBlocks {
			rows = append(rows, r)
			continue
		}
		rows = append(rows, append(r, ""))
		blocks := slices.Clone(u.Blocks)
		slices.SortFunc(blocks, func(a, b ipam.BlockUsage) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
		for _, b := range blocks {
			affinity := ""
			if b.Node != "" {
				affinity = "host:" + b.Node
			}
			rows = append(rows, append(row("Block", b.CIDR.String(), float64(b.Size), float64(b.InUse)), affinity))
		}
	}
	return writeBoxTable(w, headers, rows, boxLayout{centreHeadings: true, rightAlign: map[int]bool{2: true}})
}

// boxLayout is how a bordered table aligns: upstream's `ipam show` (tablewriter) centres its headings,
// its `node status` (go-pretty) aligns them left; columns in rightAlign are aligned right, the others left.
type boxLayout struct {
	centreHeadings bool
	rightAlign     map[int]bool
}

// writeBoxTable draws a bordered table like the ones upstream calicoctl prints.
func writeBoxTable(w io.Writer, headers []string, rows [][]string, layout boxLayout) error {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, wd := range widths {
			b.WriteString("+" + strings.Repeat("-", wd+2))
		}
		b.WriteString("+\n")
	}
	line := func(cells []string, align func(i int, cell string) string) {
		for i := range widths {
			cell := ""
			if i < len(cells) {
				cell = cells[i]
			}
			b.WriteString("| " + align(i, cell) + " ")
		}
		b.WriteString("|\n")
	}
	pad := func(s string, n int) string { return strings.Repeat(" ", max(n, 0)) + s }
	rule()
	line(headers, func(i int, cell string) string {
		gap := widths[i] - utf8.RuneCountInString(cell)
		if !layout.centreHeadings {
			return cell + strings.Repeat(" ", gap)
		}
		return pad(cell, gap/2) + strings.Repeat(" ", gap-gap/2)
	})
	rule()
	for _, r := range rows {
		line(r, func(i int, cell string) string {
			gap := widths[i] - utf8.RuneCountInString(cell)
			if layout.rightAlign[i] {
				return pad(cell, gap)
			}
			return cell + strings.Repeat(" ", gap)
		})
	}
	rule()
	_, err := io.WriteString(w, b.String())
	return err
}

func newIPAMCheckCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Look for IPAM inconsistencies",
		Long: `Compare IPAM allocations with the addresses in use (every WorkloadEndpoint's ipNetworks and every
Node's tunnel addresses) and with the IPAM handles, and list each problem found: addresses allocated but
not in use (leaked), addresses in use but not allocated, and handles that disagree with the allocations.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withIPAM(cmd.Context(), func(store *datastore.Store, m *ipam.IPAM) error {
				return runCheck(cmd.Context(), o.stdout, store, m)
			})
		},
	}
}

func runCheck(ctx context.Context, w io.Writer, store *datastore.Store, m *ipam.IPAM) error {
	fmt.Fprintln(w, "Checking IPAM for inconsistencies...")
	weps, err := datastore.List[*api.WorkloadEndpoint](ctx, store, "")
	if err != nil {
		return err
	}
	nodes, err := datastore.List[*api.Node](ctx, store, "")
	if err != nil {
		return err
	}
	live := map[netip.Addr]bool{}
	workloadIPs := 0
	for _, wep := range weps {
		for _, n := range wep.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				live[p.Addr().Unmap()] = true
				workloadIPs++
			} else if a, err := netip.ParseAddr(n); err == nil {
				live[a.Unmap()] = true
				workloadIPs++
			}
		}
	}
	tunnelIPs := 0
	for _, node := range nodes {
		addrs := []string{node.Spec.IPv4VXLANTunnelAddr, node.Spec.IPv6VXLANTunnelAddr}
		if node.Spec.BGP != nil {
			addrs = append(addrs, node.Spec.BGP.IPv4IPIPTunnelAddr)
		}
		for _, s := range addrs {
			if a, err := netip.ParseAddr(s); err == nil {
				live[a.Unmap()] = true
				tunnelIPs++
			}
		}
	}
	fmt.Fprintf(w, "Found %d workload IPs and %d node tunnel IPs in use.\n", workloadIPs, tunnelIPs)
	rep, err := m.Check(ctx, live)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Found %d IPAM allocations.\n", rep.Allocations)

	fmt.Fprintln(w, "Scanning for IPs that are allocated but not actually in use...")
	leaked := slices.Clone(rep.Leaked)
	slices.SortFunc(leaked, func(a, b ipam.AllocationInfo) int { return a.IP.Compare(b.IP) })
	for _, a := range leaked {
		owner := "node " + orDefault(a.Attrs[ipam.AttrNode], "unknown")
		fmt.Fprintf(w, "  %s leaked: allocated to handle %s (%s) in block %s, used by no workload or node\n",
			a.IP, orDefault(a.Handle, "<none>"), owner, a.Block)
	}
	fmt.Fprintf(w, "Found %d IPs that are allocated in IPAM but not actually in use.\n", len(leaked))

	fmt.Fprintln(w, "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...")
	for _, ip := range rep.NotAllocated {
		fmt.Fprintf(w, "  %s is in use but not allocated in IPAM\n", ip)
	}
	fmt.Fprintf(w, "Found %d in-use IPs that are not allocated in IPAM.\n", len(rep.NotAllocated))

	fmt.Fprintln(w, "Scanning for IPAM handles that disagree with the allocations...")
	for _, h := range rep.Handles {
		if h.Missing {
			fmt.Fprintf(w, "  handle %s: missing, but %d allocations in block %s carry it\n", h.Handle, h.Actual, h.Block)
		} else {
			fmt.Fprintf(w, "  handle %s: records %d allocations in block %s, found %d\n", h.Handle, h.Recorded, h.Block, h.Actual)
		}
	}
	fmt.Fprintf(w, "Found %d handle problems.\n", len(rep.Handles))
	if len(rep.Unaffine) > 0 {
		cidrs := make([]string, len(rep.Unaffine))
		for i, c := range rep.Unaffine {
			cidrs[i] = c.String()
		}
		sort.Strings(cidrs)
		fmt.Fprintf(w, "Note: %d blocks have no node affinity (not a problem): %s\n", len(cidrs), strings.Join(cidrs, ", "))
	}
	fmt.Fprintf(w, "Check complete; found %d problems.\n", rep.Problems())
	return nil
}

func newIPAMReleaseCommand(o *options) *cobra.Command {
	var ipFlag string
	cmd := &cobra.Command{
		Use:   "release --ip IP",
		Short: "Release an IP address from IPAM",
		Long: `Release an allocated address. Only the IPAM allocation is freed: a workload endpoint still using the
address is not changed (use ipam check to find addresses that are allocated but not in use).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, err := parseIP(ipFlag)
			if err != nil {
				return err
			}
			return o.withIPAM(cmd.Context(), func(_ *datastore.Store, m *ipam.IPAM) error {
				released, err := m.ReleaseIP(cmd.Context(), ip)
				if err != nil {
					return err
				}
				if !released {
					return fmt.Errorf("IP address %s is not assigned", ip)
				}
				fmt.Fprintf(o.stdout, "Successfully released IP address %s\n", ip)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&ipFlag, "ip", "", "the address to release")
	_ = cmd.MarkFlagRequired("ip")
	return cmd
}
