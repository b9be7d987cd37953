package calicoctl

import (
	"fmt"

	"github.com/spf13/cobra"
)

// fileFlags are the flags shared by the commands that take resources from a file.
type fileFlags struct {
	filename  string
	namespace string
}

func (f *fileFlags) register(cmd *cobra.Command, verb string) {
	cmd.Flags().StringVarP(&f.filename, "filename", "f", "", "file to "+verb+" the resources from (YAML or JSON); \"-\" reads stdin")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace for namespaced resources that do not name one (default \"default\")")
	_ = cmd.MarkFlagRequired("filename")
}

// runFileAction reads the file, fills in namespaces and performs the action on every resource.
func (o *options) runFileAction(cmd *cobra.Command, act action, f *fileFlags, skip bool) error {
	objs, err := readResources(f.filename, o.stdin)
	if err != nil {
		return fmt.Errorf("Failed to execute command: %v", err)
	}
	for _, obj := range objs {
		if err := applyNamespace(obj, f.namespace); err != nil {
			return fmt.Errorf("Failed to execute command: %v", err)
		}
	}
	return o.runAction(cmd.Context(), act, objs, skip)
}

func newCreateCommand(o *options) *cobra.Command {
	var f fileFlags
	var skipExists bool
	cmd := &cobra.Command{
		Use:   "create -f FILENAME [--skip-exists] [-n NAMESPACE]",
		Short: "Create resources from a file or stdin",
		Long: `Create the resources in a YAML or JSON file (or stdin with -f -). Creating a resource that already
exists is an error unless --skip-exists is given. Resources are created in file order; the first
failure stops the command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.runFileAction(cmd, actionCreate, &f, skipExists)
		},
	}
	f.register(cmd, "create")
	cmd.Flags().BoolVar(&skipExists, "skip-exists", false, "treat resources that already exist as successfully created")
	return cmd
}
