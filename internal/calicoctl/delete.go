package calicoctl

import (
	"context"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func newDeleteCommand(o *options) *cobra.Command {
	var f fileFlags
	var skipNotExists, force bool
	cmd := &cobra.Command{
		Use:   "delete (-f FILENAME | KIND NAME...) [-n NAMESPACE] [--skip-not-exists]",
		Short: "Delete resources by file, stdin, or kind and name",
		Long: `Delete the resources in a YAML or JSON file (or stdin with -f -), or the named resources of one kind.
Deleting a resource that does not exist is an error unless --skip-not-exists is given. A namespaced
resource is looked up in --namespace (default "default"); a WorkloadEndpoint named without
--namespace is looked up in every namespace. An IP pool that still holds allocations is kept unless
--force is given.`,
		Example: `  calicoctl delete -f pool.yaml
  calicoctl delete ippool pool1
  calicoctl delete networkpolicy allow-web -n libnetwork`,
		RunE: func(cmd *cobra.Command, args []string) error {
			act := actionDelete
			if force {
				act = actionForceDelete
			}
			if f.filename != "" {
				if len(args) > 0 {
					return errors.New("give either -f FILENAME or KIND NAME, not both")
				}
				return o.runFileAction(cmd, act, &f, skipNotExists)
			}
			if len(args) < 2 {
				return errors.New("delete needs -f FILENAME, or a resource kind and at least one name")
			}
			info, err := api.LookupKind(args[0])
			if err != nil {
				return err
			}
			objs := make([]api.Object, 0, len(args)-1)
			for _, name := range args[1:] {
				obj := info.New()
				obj.GetObjectMeta().Name = name
				obj.GetObjectMeta().Namespace = f.namespace
				objs = append(objs, obj)
			}
			if info.Namespaced && f.namespace == "" && info.Kind != api.KindWorkloadEndpoint {
				for _, obj := range objs {
					obj.GetObjectMeta().Namespace = "default"
				}
			}
			return o.runAction(cmd.Context(), act, objs, skipNotExists)
		},
	}
	cmd.Flags().StringVarP(&f.filename, "filename", "f", "", "file with the resources to delete (YAML or JSON); \"-\" reads stdin")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace of namespaced resources (default \"default\")")
	cmd.Flags().BoolVar(&skipNotExists, "skip-not-exists", false, "treat resources that do not exist as successfully deleted")
	cmd.Flags().BoolVar(&force, "force", false, "delete IP pools even while they hold allocations (releasing them)")
	return cmd
}

// findNamespace looks a namespaced resource named without a namespace up in every namespace; it returns
// ErrNotFound if there is none and an error if the name is ambiguous.
func findNamespace(ctx context.Context, store *datastore.Store, info api.KindInfo, name string) (string, error) {
	objs, _, err := store.ListResources(ctx, info, "")
	if err != nil {
		return "", err
	}
	var found []string
	for _, obj := range objs {
		if m := obj.GetObjectMeta(); m.Name == name {
			found = append(found, m.Namespace)
		}
	}
	switch len(found) {
	case 0:
		return "", datastore.ErrNotFound
	case 1:
		return found[0], nil
	}
	return "", errors.New(info.Kind + " " + name + " exists in several namespaces (" + strings.Join(found, ", ") + "): give --namespace")
}
