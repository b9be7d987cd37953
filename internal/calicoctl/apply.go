package calicoctl

import "github.com/spf13/cobra"

func newApplyCommand(o *options) *cobra.Command {
	var f fileFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILENAME [-n NAMESPACE]",
		Short: "Create or update resources from a file or stdin",
		Long: `Apply the resources in a YAML or JSON file (or stdin with -f -): each resource is created, or updated
if it already exists (keeping its uid and creation time). A resourceVersion in the file must be current.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.runFileAction(cmd, actionApply, &f, false)
		},
	}
	f.register(cmd, "apply")
	return cmd
}
