package calicoctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func newLabelCommand(o *options) *cobra.Command {
	var namespace string
	var overwrite, remove bool
	cmd := &cobra.Command{
		Use:   "label KIND NAME (key=value [--overwrite] | key --remove) [-n NAMESPACE]",
		Short: "Add, update or remove a label of a resource",
		Long: `Set a label on an existing resource with key=value (--overwrite replaces a different existing value),
or remove one by giving its key with --remove. The resource is updated in place: everything else in it,
including fields this version does not know, is kept.`,
		Example: `  calicoctl label ippool pool1 zone=a
  calicoctl label ippool pool1 zone=b --overwrite
  calicoctl label networkpolicy allow-web team --remove -n libnetwork`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name := args[0], args[1]
			key, value, ok := args[2], "", true
			if !remove {
				key, value, ok = strings.Cut(args[2], "=")
			}
			if !ok {
				return fmt.Errorf("invalid label %s", args[2])
			}
			info, err := api.LookupKind(kind)
			if err != nil {
				return fmt.Errorf("failed to get %s %s, error %v", kind, name, err)
			}
			var verb string
			err = o.withStore(cmd.Context(), func(store *datastore.Store) error {
				ns, err := lookupNamespace(cmd.Context(), store, info, namespace, name)
				if err != nil {
					return err
				}
				read := false
				err = modifyResource(cmd.Context(), store, info, ns, name, func(obj api.Object) (api.Object, error) {
					read = true
					verb, err = setLabel(obj.GetObjectMeta(), key, value, remove, overwrite)
					switch {
					case errors.Is(err, errLabelMissing):
						return nil, &labelError{fmt.Sprintf("cannot remove label of %s %s, key %s does not exist", kind, name, key)}
					case err != nil:
						return nil, &labelError{fmt.Sprintf("failed to update label of %s %s, key %s is already present. please use '--overwrite' to set a new value", kind, name, key)}
					}
					return obj, nil
				})
				var le *labelError
				switch {
				case err == nil, errors.As(err, &le), !read:
					return err
				}
				return fmt.Errorf("failed to update %s %s, label not changed: %w", kind, name, err)
			})
			switch {
			case errors.Is(err, datastore.ErrNotFound):
				return fmt.Errorf("%s %s not found", kind, name)
			case err != nil:
				return err
			case remove:
				fmt.Fprintf(o.stdout, "Successfully removed label %s from %s %s\n", key, kind, name)
			default:
				fmt.Fprintf(o.stdout, "Successfully %s label %s on %s %s\n", verb, key, kind, name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of a namespaced resource (default \"default\")")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace the value of a label that is already set")
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the label with the given key")
	return cmd
}

// labelError is a refusal to change a label, reported as it is.
type labelError struct{ msg string }

func (e *labelError) Error() string { return e.msg }

var (
	errLabelExists  = errors.New("failed to update label")
	errLabelMissing = errors.New("cannot remove label")
)

// setLabel applies one label change to m and says, as upstream does, whether the label was "set" (new) or
// "updated" (it existed; setting the same value again needs no --overwrite).
func setLabel(m *api.ObjectMeta, key, value string, remove, overwrite bool) (string, error) {
	old, exists := m.Labels[key]
	switch {
	case remove && !exists:
		return "", errLabelMissing
	case remove:
		delete(m.Labels, key)
		return "removed", nil
	case exists && old != value && !overwrite:
		return "", errLabelExists
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[key] = value
	if exists {
		return "updated", nil
	}
	return "set", nil
}
