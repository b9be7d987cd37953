package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// annotationOwner marks profiles this plugin created, so it never deletes one an operator wrote.
const annotationOwner = "libnetwork.projectcalico.org/created-by"

// NetworkProfile is the profile of a Docker network: its endpoints carry the label NAME and accept traffic
// only from endpoints that carry it too, so containers on one network reach each other and no other
// network's.
func NetworkProfile(name string) *api.Profile {
	p := &api.Profile{Spec: api.ProfileSpec{
		LabelsToApply: map[string]string{name: ""},
		Ingress:       []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: fmt.Sprintf("has(%s)", name)}}},
		Egress:        []api.Rule{{Action: api.ActionAllow}},
	}}
	p.Name = name
	p.Annotations = map[string]string{annotationOwner: "calico-libnetwork"}
	return p
}

// ensureProfile creates the network's profile unless a profile of that name exists (ours from another
// host, or one an operator wrote: theirs wins). It reads first: the profile nearly always exists, and a read
// costs etcd no disk write, unlike a refused create.
func (d *Driver) ensureProfile(ctx context.Context, name string) error {
	_, err := datastore.Get[*api.Profile](ctx, d.store, "", name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("reading the profile of network %q: %w", name, err)
	}
	err = d.store.Create(ctx, NetworkProfile(name))
	if err == nil || errors.Is(err, datastore.ErrExists) {
		return nil
	}
	return fmt.Errorf("creating profile for network %q: %w", name, err)
}

// deleteProfile removes the network's profile if this plugin created it.
func (d *Driver) deleteProfile(ctx context.Context, name string) error {
	p, err := datastore.Get[*api.Profile](ctx, d.store, "", name)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	if err != nil || p.Annotations[annotationOwner] == "" {
		return err
	}
	err = d.store.DeleteResource(ctx, api.KindOf(p), "", name, p.ResourceVersion)
	if errors.Is(err, datastore.ErrNotFound) || errors.Is(err, datastore.ErrConflict) {
		return nil
	}
	return err
}
