package calicoctl

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func newPatchCommand(o *options) *cobra.Command {
	var namespace, patch, patchType string
	cmd := &cobra.Command{
		Use:   "patch KIND NAME -p PATCH [-n NAMESPACE]",
		Short: "Patch an existing resource in place",
		Long: `Change fields of an existing resource without giving all of it: PATCH is a JSON merge patch
(RFC 7386), in JSON or YAML, applied to the resource as "calicoctl get -o json" shows it. Objects merge
member by member, null removes a member, anything else (lists too) replaces the value. The result is
checked like apply's input; name, namespace, uid and creation time are kept, and so are stored fields
this version does not know.`,
		Example: `  calicoctl patch ippool pool1 -p '{"spec":{"disabled":true}}'
  calicoctl patch networkpolicy allow-web -n libnetwork -p '{"spec":{"order":10}}'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch patchType {
			case "strategic", "merge":
			default:
				return fmt.Errorf("hit error: patch type %q is not supported: give a JSON merge patch (--type merge; strategic, the default, is treated the same)", patchType)
			}
			var p any
			if err := yaml.Unmarshal([]byte(patch), &p); err != nil || p == nil {
				return errors.New("hit error: performing merge patch: invalid JSON or YAML document")
			}
			info, err := api.LookupKind(args[0])
			if err != nil {
				return err
			}
			name := args[1]
			err = o.withStore(cmd.Context(), func(store *datastore.Store) error {
				ns, err := lookupNamespace(cmd.Context(), store, info, namespace, name)
				if err != nil {
					return describeError(resourceID(info, namespace, name), err)
				}
				return modifyResource(cmd.Context(), store, info, ns, name, func(obj api.Object) (api.Object, error) {
					patched, err := applyPatch(obj, p)
					if err != nil {
						return nil, err
					}
					return patched, checkFilters(cmd.Context(), store, patched)
				})
			})
			if err != nil {
				return fmt.Errorf("hit error: %w", err)
			}
			fmt.Fprintf(o.stdout, "Successfully patched 1 '%s' resource\n", info.Kind)
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of a namespaced resource (default \"default\")")
	cmd.Flags().StringVarP(&patch, "patch", "p", "", "the merge patch, JSON or YAML")
	cmd.Flags().StringVarP(&patchType, "type", "t", "strategic", "patch type: merge, or strategic (the same here: Calico's types define no merge strategies)")
	return cmd
}

// applyPatch merge-patches obj as it is displayed and returns the result, decoded and checked as apply's
// input is, with the stored identity and bookkeeping metadata.
func applyPatch(obj api.Object, patch any) (api.Object, error) {
	info := api.KindOf(obj)
	prepareForDisplay(info, obj)
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, err
	}
	merged := mergePatch(doc, patch)
	if m, ok := merged.(map[string]any); !ok || m["kind"] != info.Kind || m["apiVersion"] != api.APIVersion {
		return nil, fmt.Errorf("the patch may not change the kind or apiVersion of %s", objectID(obj))
	}
	patched, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	result, err := decodeResource(patched)
	if err != nil {
		return nil, err
	}
	m, rm := obj.GetObjectMeta(), result.GetObjectMeta()
	rm.Name, rm.Namespace, rm.UID, rm.CreationTimestamp = m.Name, m.Namespace, m.UID, m.CreationTimestamp
	rm.ResourceVersion, rm.Stored = m.ResourceVersion, m.Stored
	return result, nil
}
