package calicoctl

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

func newIPAMConfigureCommand(o *options) *cobra.Command {
	var strictAffinity, maxBlocks string
	cmd := &cobra.Command{
		Use:   "configure [--strictaffinity=true|false] [--max-blocks-per-host=N]",
		Short: "Configure IPAM",
		Long: `Change the cluster-wide IPAM configuration: strict affinity (no borrowing of addresses from other
nodes' blocks) and the most blocks one node may claim (0: no limit). Other stored settings are kept.`,
		Example: `  calicoctl ipam configure --strictaffinity=true`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var strict *bool
			if strictAffinity != "" {
				v, err := strconv.ParseBool(strictAffinity)
				if err != nil {
					return errors.New("invalid value. Use true or false to set strictaffinity")
				}
				strict = &v
			}
			var blocks *int
			if maxBlocks != "" {
				v, err := strconv.Atoi(maxBlocks)
				if err != nil {
					return errors.New("invalid value for maxblockhost. Use a valid number")
				}
				blocks = &v
			}
			if strict == nil && blocks == nil {
				return errors.New("at least one configuration option must be specified")
			}
			err := o.withIPAM(cmd.Context(), func(_ *datastore.Store, m *ipam.IPAM) error {
				return m.UpdateConfig(cmd.Context(), func(cfg *ipam.Config) {
					if strict != nil {
						cfg.StrictAffinity = *strict
					}
					if blocks != nil {
						cfg.MaxBlocksPerHost = *blocks
					}
				})
			})
			if err != nil {
				return fmt.Errorf("error: %w", err)
			}
			if strict != nil {
				fmt.Fprintln(o.stdout, "Successfully set StrictAffinity to:", *strict)
			}
			if blocks != nil {
				fmt.Fprintln(o.stdout, "Successfully set MaxBlocksPerHost to:", *blocks)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&strictAffinity, "strictaffinity", "", "set StrictAffinity to true/false")
	cmd.Flags().StringVar(&maxBlocks, "max-blocks-per-host", "", "set the maximum number of blocks that can be affine to a host (0: no limit)")
	return cmd
}

// writeIPAMConfig prints the IPAM configuration as upstream's `ipam show --show-configuration` does.
func writeIPAMConfig(w io.Writer, cfg ipam.Config) error {
	return writeBoxTable(w, []string{"PROPERTY", "VALUE"}, [][]string{
		{"StrictAffinity", strconv.FormatBool(cfg.StrictAffinity)},
		{"AutoAllocateBlocks", strconv.FormatBool(cfg.AutoAllocateBlocks)},
		{"MaxBlocksPerHost", strconv.Itoa(cfg.MaxBlocksPerHost)},
	}, boxLayout{})
}
