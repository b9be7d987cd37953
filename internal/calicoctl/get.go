package calicoctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

type getFlags struct {
	namespace     string
	allNamespaces bool
	output        string
}

func newGetCommand(o *options) *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...] [-n NAMESPACE | -A] [-o ps|wide|yaml|json]",
		Short: "Display resources",
		Long: `Display one kind of resource, all of them or the named ones, as a table (ps, the default, or wide) or
as YAML or JSON. Several resources print as a <Kind>List.

Kinds: ` + strings.Join(api.KindNames(), ", ") + ` (plural and short forms such as ippools, wep, gnp work too).

NetworkPolicies are listed from --namespace (default "default"); WorkloadEndpoints from every namespace
unless --namespace is given (calico-libnetwork's endpoints are in namespace "libnetwork").`,
		Example: `  calicoctl get ippools -o wide
  calicoctl get workloadendpoints -A
  calicoctl get profile mynet -o yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runGet(cmd, args[0], args[1:], &f)
		},
	}
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace of namespaced resources")
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "list namespaced resources in every namespace")
	cmd.Flags().StringVarP(&f.output, "output", "o", "ps", "output format: ps, wide, yaml or json")
	return cmd
}

func (o *options) runGet(cmd *cobra.Command, kind string, names []string, f *getFlags) error {
	switch f.output {
	case "ps", "wide", "yaml", "yml", "json":
	default:
		return fmt.Errorf("unrecognized output format '%s'", f.output)
	}
	info, err := api.LookupKind(kind)
	if err != nil {
		return err
	}
	namespace := ""
	if info.Namespaced {
		switch {
		case f.allNamespaces:
		case f.namespace != "":
			namespace = f.namespace
		case info.Kind != api.KindWorkloadEndpoint:
			namespace = "default"
		}
	}
	store, err := o.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer store.Close()
	objs, rev, err := store.ListResources(cmd.Context(), info, namespace)
	if err != nil {
		return fmt.Errorf("Failed to get resources: %w", err)
	}
	if len(names) > 0 {
		if objs, err = selectNamed(info, namespace, objs, names); err != nil {
			return fmt.Errorf("Failed to get resources: %w", err)
		}
	}
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i].GetObjectMeta(), objs[j].GetObjectMeta()
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Namespace < b.Namespace
	})
	for _, obj := range objs {
		prepareForDisplay(info, obj)
	}
	if objs == nil {
		objs = []api.Object{}
	}
	var doc any
	if len(names) == 1 && len(objs) == 1 {
		doc = objs[0]
	} else {
		doc = &resourceList{Kind: info.Kind + "List", APIVersion: api.APIVersion,
			Metadata: listMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: objs}
	}
	switch f.output {
	case "yaml", "yml":
		return writeYAML(o.stdout, doc)
	case "json":
		return writeJSON(o.stdout, doc)
	}
	format := tableFormat{wide: f.output == "wide", printNamespace: info.Namespaced && (f.allNamespaces || f.namespace != "")}
	if format.wide && info.Kind == api.KindNode {
		format.clusterAS = clusterASNumber(cmd.Context(), store)
	}
	return writeTable(o.stdout, info, objs, format)
}

// clusterASNumber is the AS number of nodes that have none of their own, as upstream calicoctl shows it:
// BGPConfiguration "default"'s, calico/node's default without one, "unknown" when it cannot be read.
func clusterASNumber(ctx context.Context, store *datastore.Store) string {
	cfg, err := datastore.Get[*api.BGPConfiguration](ctx, store, "", "default")
	switch {
	case err == nil && cfg.Spec.ASNumber != nil:
		return cfg.Spec.ASNumber.String()
	case err == nil, errors.Is(err, datastore.ErrNotFound):
		return api.DefaultASNumber.String()
	}
	return "unknown"
}

// selectNamed keeps the named resources, failing on the first name that does not exist.
func selectNamed(info api.KindInfo, namespace string, objs []api.Object, names []string) ([]api.Object, error) {
	byName := map[string][]api.Object{}
	for _, obj := range objs {
		n := obj.GetObjectMeta().Name
		byName[n] = append(byName[n], obj)
	}
	var out []api.Object
	seen := map[string]bool{}
	for _, n := range names {
		found, ok := byName[n]
		if !ok {
			return nil, describeError(resourceID(info, namespace, n), datastore.ErrNotFound)
		}
		if !seen[n] {
			out = append(out, found...)
			seen[n] = true
		}
	}
	return out, nil
}

// prepareForDisplay makes a stored object look as upstream prints it: kind and apiVersion set, and IP
// pools with Calico's defaults for omitted fields.
func prepareForDisplay(info api.KindInfo, obj api.Object) {
	tm := obj.GetTypeMeta()
	tm.Kind, tm.APIVersion = info.Kind, api.APIVersion
	if pool, ok := obj.(*api.IPPool); ok {
		api.Default(pool)
	}
}

// resourceList is the <Kind>List form of several resources.
type resourceList struct {
	Kind       string       `json:"kind"`
	APIVersion string       `json:"apiVersion"`
	Metadata   listMeta     `json:"metadata"`
	Items      []api.Object `json:"items"`
}

type listMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

func writeYAML(w io.Writer, v any) error {
	out, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

func writeJSON(w io.Writer, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}
