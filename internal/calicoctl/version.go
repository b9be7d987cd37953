package calicoctl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func newVersionCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client version, and the cluster's Calico version if the datastore records one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(o.stdout, "Client Version:    %s\n", o.version)
			err := o.withStore(cmd.Context(), func(store *datastore.Store) error {
				info, err := datastore.Get[*api.ClusterInformation](cmd.Context(), store, "", "default")
				if errors.Is(err, datastore.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				if v := info.Spec.CalicoVersion; v != "" {
					fmt.Fprintf(o.stdout, "Cluster Version:   %s\n", v)
				}
				if t := info.Spec.ClusterType; t != "" {
					fmt.Fprintf(o.stdout, "Cluster Type:      %s\n", t)
				}
				return nil
			})
			if err != nil {
				// The client version is still useful without a datastore; say why there is no more.
				fmt.Fprintf(o.stderr, "Unable to retrieve Cluster Version or Type: %v\n", err)
			}
			return nil
		},
	}
}
