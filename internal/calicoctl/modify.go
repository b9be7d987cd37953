package calicoctl

import (
	"context"
	"errors"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// modifyResource reads a stored resource, lets change edit it (or return a replacement), and writes it back with compare-and-swap
// at the revision it was read at, starting again from a fresh read when someone else wrote in between.
// Fields this version does not model are carried over from the stored value. change's error is returned
// as it is; datastore errors are phrased as upstream calicoctl's.
func modifyResource(ctx context.Context, store *datastore.Store, info api.KindInfo, namespace, name string, change func(api.Object) (api.Object, error)) error {
	if info.Kind == api.KindClusterInformation {
		return notSupported("update", info.New())
	}
	id := resourceID(info, namespace, name)
	for attempt := 1; ; attempt++ {
		obj, err := store.GetResource(ctx, info, namespace, name)
		if err != nil {
			return describeError(id, err)
		}
		current := obj
		if obj, err = change(obj); err != nil {
			return err
		}
		if err := checkUpdate(current, obj); err != nil {
			return err
		}
		err = store.Update(ctx, obj)
		if !errors.Is(err, datastore.ErrConflict) || attempt >= 5 {
			return describeError(id, err)
		}
	}
}

// lookupNamespace is the namespace a command given KIND NAME [-n NAMESPACE] acts in: none for
// cluster-wide kinds, else the flag, else (like delete) the one namespace holding a WorkloadEndpoint of
// that name, else "default".
func lookupNamespace(ctx context.Context, store *datastore.Store, info api.KindInfo, flagNS, name string) (string, error) {
	switch {
	case !info.Namespaced:
		return "", nil
	case flagNS != "":
		return flagNS, nil
	case info.Kind == api.KindWorkloadEndpoint:
		return findNamespace(ctx, store, info, name)
	}
	return "default", nil
}
