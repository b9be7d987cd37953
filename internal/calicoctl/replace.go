package calicoctl

import "github.com/spf13/cobra"

func newReplaceCommand(o *options) *cobra.Command {
	var f fileFlags
	cmd := &cobra.Command{
		Use:   "replace -f FILENAME [-n NAMESPACE]",
		Short: "Replace existing resources from a file or stdin",
		Long: `Replace existing resources with those in a YAML or JSON file (or stdin with -f -). Every resource must
already exist; if the file gives a resourceVersion it must be the current one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.runFileAction(cmd, actionReplace, &f, false)
		},
	}
	f.register(cmd, "replace")
	return cmd
}
