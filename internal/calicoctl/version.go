package calicoctl

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func newVersionCommand(o *options) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version [--client]",
		Short: "Print the client version, and the cluster's Calico version and type",
		Long: `Print the client version and the git commit it was built from, then the cluster's Calico version and
type from ClusterInformation "default" ("unknown" where it records none). Without a reachable datastore
only the client version is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(o.stdout, "Client Version:   ", o.version)
			fmt.Fprintln(o.stdout, "Git commit:       ", gitCommit())
			if clientOnly {
				return nil
			}
			store, err := o.connect(cmd.Context())
			if err != nil {
				// The client version is still useful without a datastore; say why there is no more.
				fmt.Fprintf(o.stderr, "Unable to retrieve Cluster Version or Type: %v\n", err)
				return nil
			}
			defer store.Close()
			info, err := datastore.Get[*api.ClusterInformation](cmd.Context(), store, "", "default")
			if err != nil {
				return fmt.Errorf("unable to retrieve Cluster Version or Type: %w", describeError(resourceID(api.KindInfo{Kind: api.KindClusterInformation}, "", "default"), err))
			}
			fmt.Fprintln(o.stdout, "Cluster Version:  ", orDefault(info.Spec.CalicoVersion, "unknown"))
			fmt.Fprintln(o.stdout, "Cluster Type:     ", orDefault(info.Spec.ClusterType, "unknown"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print the client version only")
	return cmd
}

// gitCommit is the revision the binary was built from, as the Go toolchain recorded it.
func gitCommit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
