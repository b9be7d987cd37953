package calicoctl

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/bgpstatus"
	"github.com/projectcalico/calico-libnetwork/internal/config"
)

func newNodeCommand(o *options) *cobra.Command {
	node := &cobra.Command{Use: "node", Short: "Commands about this host's Calico node"}
	node.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show this host's BGP sessions (calico-libnetwork with CALICO_NETWORKING_BACKEND=bird)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := config.DatastoreFromEnv(o.lookupEnv)
			if err != nil {
				return err
			}
			return nodeStatus(cmd.OutOrStdout(), ds.DataDir, time.Now())
		},
	})
	return node
}

// errNotRunning ends `node status` with status 1 once it has said so, as upstream's does.
var errNotRunning = errors.New("calico-libnetwork's BGP speaker is not running on this host (CALICO_NETWORKING_BACKEND=bird)")

// nodeStatus prints the sessions the daemon last reported, in upstream calicoctl's layout (from its
// calicoctl/commands/node/status.go), one table per address family.
func nodeStatus(w io.Writer, dataDir string, now time.Time) error {
	r, running, err := bgpstatus.Read(dataDir, now)
	if err != nil {
		return err
	}
	if !running {
		fmt.Fprintln(w, "Calico process is not running.")
		return errNotRunning
	}
	fmt.Fprintln(w, "Calico process is running.")
	for _, family := range []struct {
		name string
		is6  bool
	}{{"IPv4", false}, {"IPv6", true}} {
		var rows [][]string
		for _, s := range r.Sessions {
			if a, err := netip.ParseAddr(s.Peer); err == nil && a.Is6() == family.is6 {
				state := "start"
				if s.State == "Established" {
					state = "up"
				}
				rows = append(rows, []string{s.Peer, s.Type, state, s.Since, s.State})
			}
		}
		fmt.Fprintf(w, "\n%s BGP status\n", family.name)
		if len(rows) == 0 {
			fmt.Fprintf(w, "No %s peers found.\n", family.name)
			continue
		}
		if err := writeBoxTable(w, []string{"PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"}, rows, boxLayout{}); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "\n")
	return err
}
