package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// CreatePool creates an IPPool unless its CIDR overlaps another pool's, enabled or not, as Calico's IPPool
// client refuses it. The write holds only while no pool was created or changed since the pools were read,
// so two overlapping pools created at once cannot both succeed.
func (m *IPAM) CreatePool(ctx context.Context, ip *api.IPPool) error {
	kind := api.KindOf(ip)
	for attempt := 1; ; attempt++ {
		pools, rev, err := m.store.ListResources(ctx, kind, "")
		if err != nil {
			return err
		}
		if err := overlapping(ip, pools); err != nil {
			return err
		}
		err = m.store.Create(ctx, ip, datastore.Unchanged(datastore.KindPrefix(kind, ""), rev))
		if attempt >= 5 || !errors.Is(err, datastore.ErrConflict) {
			return err
		}
	}
}

// overlapping refuses a new pool whose CIDR overlaps another pool's, naming each such pool as Calico does.
// A pool of the same name is left to the create, which reports that it exists.
func overlapping(ip *api.IPPool, pools []api.Object) error {
	cidr, err := netip.ParsePrefix(ip.Spec.CIDR)
	if err != nil {
		return nil // the create's validation reports it
	}
	var reasons []string
	for _, o := range pools {
		other := o.(*api.IPPool)
		otherCIDR, err := netip.ParsePrefix(other.Spec.CIDR)
		if other.Name == ip.Name || err != nil || !otherCIDR.Masked().Overlaps(cidr.Masked()) {
			continue
		}
		reasons = append(reasons, fmt.Sprintf("IPPool(%s) CIDR overlaps with IPPool(%s) CIDR %s", ip.Name, other.Name, other.Spec.CIDR))
	}
	if len(reasons) == 0 {
		return nil
	}
	return &api.FieldError{Kind: api.KindIPPool, Name: ip.Name, Field: "spec.cidr", Reason: strings.Join(reasons, "; ")}
}

// CheckPoolUpdate refuses what Calico's IPPool client refuses on an update: a new CIDR (which could
// overlap another pool, or leave the pool's blocks outside it) or block size. Both pools are defaulted
// first, as the write would.
func CheckPoolUpdate(old, ip *api.IPPool) error {
	api.Default(old)
	api.Default(ip)
	oldCIDR, errOld := netip.ParsePrefix(old.Spec.CIDR)
	cidr, err := netip.ParsePrefix(ip.Spec.CIDR)
	switch {
	case errOld == nil && err == nil && oldCIDR.Masked() != cidr.Masked(): // host bits are validation's to report
		return &api.FieldError{Kind: api.KindIPPool, Name: ip.Name, Field: "spec.cidr",
			Reason: fmt.Sprintf("IPPool CIDR cannot be modified (it is %s)", old.Spec.CIDR)}
	case old.Spec.BlockSize != ip.Spec.BlockSize:
		return &api.FieldError{Kind: api.KindIPPool, Name: ip.Name, Field: "spec.blockSize",
			Reason: fmt.Sprintf("IPPool BlockSize cannot be modified (it is %d)", old.Spec.BlockSize)}
	}
	return nil
}
