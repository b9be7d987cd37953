package calicoctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// connect finds the datastore (ETCD_ENDPOINTS etc., else the embedded etcd recorded by the daemon under
// CALICO_DATA_DIR) and checks that it answers, so that an unreachable etcd fails fast with a clear message.
func (o *options) connect(ctx context.Context) (*datastore.Store, error) {
	ds, err := config.DatastoreFromEnv(o.lookupEnv)
	if err != nil {
		return nil, err
	}
	cfg := datastore.ClientConfig{Endpoints: ds.Endpoints, CACertFile: ds.CACertFile, CertFile: ds.CertFile, Key: ds.KeyFile}
	if len(cfg.Endpoints) == 0 {
		// The embedded etcd admits only its own client certificate, which the daemon keeps beside the endpoint.
		file := filepath.Join(ds.DataDir, datastore.EndpointFile)
		cfg, err = datastore.EmbeddedClientConfig(ds.DataDir)
		switch {
		case errors.Is(err, fs.ErrNotExist) || (err == nil && cfg.Endpoints[0] == ""):
			return nil, fmt.Errorf("no datastore configured: set ETCD_ENDPOINTS, or start calico-libnetwork on this host (no embedded etcd endpoint in %s)", file)
		case err != nil:
			return nil, fmt.Errorf("no datastore configured: ETCD_ENDPOINTS is not set and the embedded etcd endpoint cannot be read: %w (calicoctl may need to run as root)", err)
		}
	}
	endpoints := cfg.Endpoints
	cfg.RequestTimeout = o.requestTimeout
	store, err := datastore.Connect(cfg)
	if err != nil {
		if len(ds.Endpoints) == 0 {
			return nil, fmt.Errorf("the embedded etcd's client certificate under %s: %w (calicoctl may need to run as root)", filepath.Join(ds.DataDir, datastore.PKIDir), err)
		}
		return nil, err
	}
	if err := store.Ping(ctx); err != nil {
		store.Close()
		var ke *datastore.KeyError
		if errors.As(err, &ke) {
			err = ke.Err
		}
		return nil, fmt.Errorf("cannot reach the datastore at %s: %w", strings.Join(endpoints, ","), err)
	}
	return store, nil
}

// withStore runs fn with a connected datastore and closes it afterwards.
func (o *options) withStore(ctx context.Context, fn func(*datastore.Store) error) error {
	store, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

// ensureInitialized creates what upstream calicoctl creates on first use of an empty datastore: the
// "default" ClusterInformation (with a new cluster GUID, datastoreReady) and the "default" Tier. Existing
// ones are left alone.
func ensureInitialized(ctx context.Context, store *datastore.Store) error {
	var guid [16]byte
	if _, err := rand.Read(guid[:]); err != nil {
		return err
	}
	ready := true
	info := &api.ClusterInformation{Spec: api.ClusterInformationSpec{ClusterGUID: hex.EncodeToString(guid[:]), DatastoreReady: &ready}}
	info.Name = "default"
	order := 1000000.0
	tier := &api.Tier{Spec: api.TierSpec{Order: &order, DefaultAction: "Deny"}}
	tier.Name = "default"
	for _, obj := range []api.Object{info, tier} {
		if err := store.Create(ctx, obj); err != nil && !errors.Is(err, datastore.ErrExists) {
			return fmt.Errorf("initialising the datastore: %w", err)
		}
	}
	return nil
}
