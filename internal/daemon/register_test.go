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
