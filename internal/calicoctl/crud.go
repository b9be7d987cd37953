package calicoctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// action is one of the resource-changing commands.
type action struct {
	verb, past string
	// write says whether the datastore is initialised (ClusterInformation, default Tier) first.
	write bool
	run   func(ctx context.Context, store *datastore.Store, obj api.Object) error
	// skippable reports the error that --skip-exists / --skip-not-exists turn into success.
	skippable error
}

var (
	actionCreate  = action{verb: "create", past: "created", write: true, run: createResource, skippable: datastore.ErrExists}
	actionApply   = action{verb: "apply", past: "applied", write: true, run: applyResource}
	actionReplace = action{verb: "replace", past: "replaced", write: true, run: replaceResource}
	actionDelete  = action{verb: "delete", past: "deleted", run: deleteResource(false), skippable: datastore.ErrNotFound}
	// actionForceDelete also deletes IP pools that still hold allocations, releasing them.
	actionForceDelete = action{verb: "delete", past: "deleted", run: deleteResource(true), skippable: datastore.ErrNotFound}
)

// resourceID names a resource the way Calico's errors do: Kind(name) or Kind(namespace/name).
func resourceID(info api.KindInfo, namespace, name string) string {
	if info.Namespaced && namespace != "" {
		return fmt.Sprintf("%s(%s/%s)", info.Kind, namespace, name)
	}
	return fmt.Sprintf("%s(%s)", info.Kind, name)
}

func objectID(obj api.Object) string {
	m := obj.GetObjectMeta()
	return resourceID(api.KindOf(obj), m.Namespace, m.Name)
}

// calicoError phrases a datastore error the way upstream calicoctl reports it, keeping errors.Is working.
type calicoError struct {
	msg string
	err error
}

func (e *calicoError) Error() string { return e.msg }
func (e *calicoError) Unwrap() error { return e.err }

func describeError(id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, datastore.ErrExists):
		return &calicoError{msg: "resource already exists: " + id, err: err}
	case errors.Is(err, datastore.ErrNotFound):
		return &calicoError{msg: "resource does not exist: " + id, err: err}
	case errors.Is(err, datastore.ErrConflict):
		return &calicoError{msg: "update conflict: " + id, err: err}
	}
	return err
}

func notSupported(op string, obj api.Object) error {
	return fmt.Errorf("operation %s is not supported on %s: resource is read-only", op, api.KindOf(obj).Kind)
}

func createResource(ctx context.Context, store *datastore.Store, obj api.Object) error {
	if _, ok := obj.(*api.ClusterInformation); ok {
		return notSupported("create", obj)
	}
	if err := checkFilters(ctx, store, obj); err != nil {
		return err
	}
	// As upstream: only name, namespace, resourceVersion, labels and annotations are taken from the file.
	m := obj.GetObjectMeta()
	m.UID, m.CreationTimestamp, m.Stored = "", nil, nil
	if pool, ok := obj.(*api.IPPool); ok {
		return describeError(objectID(obj), ipam.New(store, ipam.Options{}).CreatePool(ctx, pool))
	}
	return describeError(objectID(obj), store.Create(ctx, obj))
}

// bgpFiltersPrefix is where upstream keeps BGPFilters, a kind this project does not model.
const bgpFiltersPrefix = datastore.ResourcePrefix + "bgpfilters/"

// checkFilters refuses a BGPPeer naming BGPFilters that do not exist, as upstream's BGPPeer client does
// before it validates the peer.
func checkFilters(ctx context.Context, store *datastore.Store, obj api.Object) error {
	peer, ok := obj.(*api.BGPPeer)
	if !ok {
		return nil
	}
	var missing []string
	for _, name := range peer.Spec.Filters {
		_, err := store.Get(ctx, bgpFiltersPrefix+name)
		if errors.Is(err, datastore.ErrNotFound) {
			missing = append(missing, name)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return &api.FieldError{Kind: api.KindBGPPeer, Name: peer.Name, Field: "spec.filters",
			Reason: "BGPFilter(s) not found: " + strings.Join(missing, ", ")}
	}
	return nil
}

func applyResource(ctx context.Context, store *datastore.Store, obj api.Object) error {
	if _, ok := obj.(*api.ClusterInformation); ok {
		return notSupported("apply", obj)
	}
	m := obj.GetObjectMeta()
	rv := m.ResourceVersion
	m.ResourceVersion = ""
	err := createResource(ctx, store, obj)
	if !errors.Is(err, datastore.ErrExists) {
		return err
	}
	m.ResourceVersion = rv
	return updateResource(ctx, store, obj)
}

func replaceResource(ctx context.Context, store *datastore.Store, obj api.Object) error {
	if _, ok := obj.(*api.ClusterInformation); ok {
		return notSupported("replace", obj)
	}
	return updateResource(ctx, store, obj)
}

// updateResource replaces an existing resource. A resourceVersion given in the file must be the current
// one; without one, the current version is read and the update retried on concurrent changes. The stored
// uid and creationTimestamp are kept; labels and annotations come from the file.
func updateResource(ctx context.Context, store *datastore.Store, obj api.Object) error {
	if err := checkFilters(ctx, store, obj); err != nil {
		return err
	}
	info := api.KindOf(obj)
	m := obj.GetObjectMeta()
	id := objectID(obj)
	wantRV := m.ResourceVersion
	for attempt := 1; ; attempt++ {
		current, err := store.GetResource(ctx, info, m.Namespace, m.Name)
		if err != nil {
			return describeError(id, err)
		}
		cm := current.GetObjectMeta()
		if wantRV != "" && wantRV != cm.ResourceVersion {
			return &calicoError{
				msg: fmt.Sprintf("update conflict: %s: resource version '%s' is out of date (latest: %s). Update the resource YAML/JSON in order to make changes.", id, wantRV, cm.ResourceVersion),
				err: datastore.ErrConflict,
			}
		}
		if err := checkUpdate(current, obj); err != nil {
			return err
		}
		m.UID, m.CreationTimestamp, m.ResourceVersion, m.Stored = cm.UID, cm.CreationTimestamp, cm.ResourceVersion, cm.Stored
		err = store.Update(ctx, obj)
		if !errors.Is(err, datastore.ErrConflict) || wantRV != "" || attempt >= 5 {
			return describeError(id, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// checkUpdate refuses the changes upstream's clients refuse on an update.
func checkUpdate(current, obj api.Object) error {
	if old, ok := current.(*api.IPPool); ok {
		return ipam.CheckPoolUpdate(old, obj.(*api.IPPool))
	}
	return nil
}

// deleteResource deletes one resource; pools go through IPAM, which refuses (unless force) while the
// pool still holds allocations and removes its blocks and affinities.
func deleteResource(force bool) func(ctx context.Context, store *datastore.Store, obj api.Object) error {
	return func(ctx context.Context, store *datastore.Store, obj api.Object) error {
		switch o := obj.(type) {
		case *api.ClusterInformation:
			return notSupported("delete", obj)
		case *api.Node:
			return deleteNode(ctx, store, o)
		case *api.IPPool:
			return describeError(objectID(obj), ipam.New(store, ipam.Options{}).DeletePool(ctx, o.Name, force))
		}
		return deletePlain(ctx, store, obj)
	}
}

func deletePlain(ctx context.Context, store *datastore.Store, obj api.Object) error {
	info := api.KindOf(obj)
	m := obj.GetObjectMeta()
	if info.Namespaced && m.Namespace == "" {
		ns, err := findNamespace(ctx, store, info, m.Name)
		if err != nil {
			return describeError(objectID(obj), err)
		}
		m.Namespace = ns
	}
	err := store.DeleteResource(ctx, info, m.Namespace, m.Name, m.ResourceVersion)
	return describeError(objectID(obj), err)
}

// applyNamespace fills in the namespace of a namespaced resource from --namespace (or "default"), and
// rejects a resource whose own namespace contradicts the flag.
func applyNamespace(obj api.Object, flagNS string) error {
	if !api.KindOf(obj).Namespaced {
		return nil
	}
	m := obj.GetObjectMeta()
	switch {
	case m.Namespace == "" && flagNS != "":
		m.Namespace = flagNS
	case m.Namespace == "":
		m.Namespace = "default"
	case flagNS != "" && m.Namespace != flagNS:
		return fmt.Errorf("resource namespace does not match client namespace: %s has namespace %q but --namespace is %q",
			objectID(obj), m.Namespace, flagNS)
	}
	return nil
}

// runAction performs act on each resource in order, stopping at the first failure, and reports like
// upstream calicoctl: a success line on stdout, or an error (after a "Partial success" line when some
// resources were handled).
func (o *options) runAction(ctx context.Context, act action, objs []api.Object, skip bool) error {
	if len(objs) == 0 {
		fmt.Fprintln(o.stdout, "No resources specified")
		return nil
	}
	singleKind := api.KindOf(objs[0]).Kind
	for _, obj := range objs[1:] {
		if api.KindOf(obj).Kind != singleKind {
			singleKind = ""
		}
	}
	handled := 0
	var failure error
	err := o.withStore(ctx, func(store *datastore.Store) error {
		if act.write {
			if err := ensureInitialized(ctx, store); err != nil {
				return err
			}
		}
		for _, obj := range objs {
			err := act.run(ctx, store, obj)
			if err != nil && !(skip && act.skippable != nil && errors.Is(err, act.skippable)) {
				failure = err
				return nil
			}
			handled++
		}
		return nil
	})
	if err != nil {
		return err
	}
	kindWord := func(plural bool) string {
		s := "resource"
		if plural {
			s = "resources"
		}
		if singleKind != "" {
			return fmt.Sprintf("'%s' %s", singleKind, s)
		}
		return s
	}
	switch {
	case failure == nil:
		if singleKind != "" {
			fmt.Fprintf(o.stdout, "Successfully %s %d '%s' resource(s)\n", act.past, handled, singleKind)
		} else {
			fmt.Fprintf(o.stdout, "Successfully %s %d resource(s)\n", act.past, handled)
		}
		return nil
	case handled == 0 && len(objs) == 1:
		return fmt.Errorf("Failed to %s %s: %w", act.verb, kindWord(false), failure)
	case handled == 0:
		return fmt.Errorf("Failed to %s any %s: %w", act.verb, kindWord(true), failure)
	default:
		fmt.Fprintf(o.stdout, "Partial success: %s the first %d out of %d %s:\n", act.past, handled, len(objs), kindWord(true))
		return fmt.Errorf("Hit error: %w", failure)
	}
}
