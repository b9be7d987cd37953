package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
)

func TestCreateDefaultFelixConfiguration(t *testing.T) {
	store := datastoretest.Start(t).Store
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := createDefaultFelixConfiguration(ctx, store); err != nil {
		t.Fatal(err)
	}
	fc, err := datastore.Get[*api.FelixConfiguration](ctx, store, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	if fc.Spec.LogSeverityScreen != "Info" || fc.Spec.ReportingInterval != "0s" || fc.UID == "" {
		t.Errorf("default FelixConfiguration %+v", fc)
	}

	// What an operator (or calico/node) set is never overwritten.
	yes := true
	fc.Spec = api.FelixConfigurationSpec{LogSeverityScreen: "Debug", VXLANEnabled: &yes}
	if err := store.Update(ctx, fc); err != nil {
		t.Fatal(err)
	}
	if err := createDefaultFelixConfiguration(ctx, store); err != nil {
		t.Fatal(err)
	}
	again, err := datastore.Get[*api.FelixConfiguration](ctx, store, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	if again.Spec.LogSeverityScreen != "Debug" || again.Spec.VXLANEnabled == nil || !*again.Spec.VXLANEnabled {
		t.Errorf("existing FelixConfiguration overwritten: %+v", again.Spec)
	}
}

// The ClusterInformation records no Calico version, so that upstream calicoctl does not refuse the cluster
// as a version mismatch; one an earlier calico-libnetwork recorded is cleared, calico/node's is kept.
func TestRegisterClusterLeavesCalicoVersionUnset(t *testing.T) {
	store := datastoretest.Start(t).Store
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	get := func() *api.ClusterInformation {
		t.Helper()
		info, err := datastore.Get[*api.ClusterInformation](ctx, store, "", "default")
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	if err := registerCluster(ctx, store); err != nil {
		t.Fatal(err)
	}
	info := get()
	if info.Spec.CalicoVersion != "" || info.Spec.ClusterType != "libnetwork" || info.Spec.ClusterGUID == "" {
		t.Errorf("created %+v", info.Spec)
	}
	guid := info.Spec.ClusterGUID
	for _, tc := range []struct{ clusterType, version, want string }{
		{"libnetwork", "979a8a5", ""},
		{"typha,kdd,bgp", "v3.30.0", "v3.30.0"},
	} {
		info := get()
		info.Spec.ClusterType, info.Spec.CalicoVersion = tc.clusterType, tc.version
		if err := store.Update(ctx, info); err != nil {
			t.Fatal(err)
		}
		if err := registerCluster(ctx, store); err != nil {
			t.Fatal(err)
		}
		if got := get(); got.Spec.CalicoVersion != tc.want || got.Spec.ClusterGUID != guid {
			t.Errorf("clusterType %s, calicoVersion %s: now %+v", tc.clusterType, tc.version, got.Spec)
		}
	}
}
