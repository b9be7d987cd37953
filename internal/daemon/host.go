package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/cleanup"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// What the plugin leaves on a host, and when it takes it away.

// removeOwnDataplane runs when the daemon starts with the dataplane off: it removes what an earlier run of
// its own dataplane left (see package cleanup), above all table inet calico, whose dispatch chains drop
// the traffic of every interface they do not know, so every container calico/node serves after a
// handover. A daemon that programs this host's dataplane (it holds the claim) keeps what it made.
func removeOwnDataplane(log *slog.Logger) error {
	claim, err := dataplane.Claim()
	var held *dataplane.ClaimHeldError
	switch {
	case errors.As(err, &held):
		log.Info("another calico-libnetwork programs this host's dataplane; leaving its routes and firewall",
			"holder", held.Holder)
		return nil
	case err != nil:
		// A kernel without owned tables: no daemon can hold the claim, so none can be running.
		log.Warn("cannot claim this host's dataplane to clean it; cleaning without", "error", err.Error())
	default:
		defer claim.Close()
	}
	if err := cleanup.Remove(cleanup.Options{Log: log}); err != nil {
		return fmt.Errorf("removing what an earlier run of this plugin's dataplane left on the host (its "+
			"firewall would drop the traffic of containers it does not know, such as calico/node's): %w", err)
	}
	return nil
}

// Uninstall removes everything the plugin put on this host: its firewall, routes, VXLAN device and
// workload interfaces (package cleanup). It refuses while this node has workload endpoints in the
// datastore or workload interfaces on the host, whose containers would lose their networking, unless
// force; and while a daemon programs the host's dataplane, which would put everything back. It needs no
// Docker, and with force no datastore. The datastore's contents and CALICO_DATA_DIR stay.
func Uninstall(ctx context.Context, cfg *config.Config, force bool, log *slog.Logger) error {
	if !force {
		if err := checkNoWorkloads(ctx, cfg, log); err != nil {
			return err
		}
	}
	claim, err := dataplane.Claim()
	if held := (*dataplane.ClaimHeldError)(nil); errors.As(err, &held) {
		return fmt.Errorf("calico-libnetwork (%s) is running on this host and would put everything back: stop "+
			"it first (the systemd unit: systemctl stop calico-libnetwork; a managed plugin: docker plugin "+
			"disable, after removing its networks)", held.Holder)
	}
	if err != nil {
		return err
	}
	defer claim.Close()
	if err := cleanup.Remove(cleanup.Options{Log: log, Interfaces: true}); err != nil {
		return err
	}
	log.Info("removed the plugin's dataplane from this host; the datastore and CALICO_DATA_DIR are kept",
		"dataDir", cfg.DataDir)
	return nil
}

// uninstallStoreTimeout bounds how long Uninstall waits for the datastore.
const uninstallStoreTimeout = 30 * time.Second

// checkNoWorkloads refuses while containers use the plugin on this host: endpoints of this node in the
// datastore, or the plugin's workload interfaces.
func checkNoWorkloads(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ifaces, err := cleanup.Interfaces()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, uninstallStoreTimeout)
	defer cancel()
	endpoints, err := localEndpointCount(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("cannot read this node's (%s) workload endpoints from the datastore: %w; make it "+
			"reachable, or pass --force to remove the plugin from the host without looking", cfg.NodeName, err)
	}
	if endpoints == 0 && len(ifaces) == 0 {
		return nil
	}
	shown := ifaces[:min(len(ifaces), 5)]
	if len(ifaces) > len(shown) {
		shown = append(shown, "...")
	}
	return fmt.Errorf("containers still use the plugin on this host: node %s has %d workload endpoint(s) in the "+
		"datastore and %d container interface(s) here [%s]; remove those containers and their networks while "+
		"the plugin runs (docker rm -f CONTAINER, docker network rm NETWORK), then stop it and uninstall; or "+
		"pass --force (make uninstall FORCE=1) to remove everything anyway: those containers lose their "+
		"networking and their endpoints stay in the datastore", cfg.NodeName, endpoints, len(ifaces),
		strings.Join(shown, " "))
}

// localEndpointCount counts this node's workload endpoints. With the embedded etcd it asks a running
// daemon's, else starts it from CALICO_DATA_DIR; if that holds no etcd, there are none.
func localEndpointCount(ctx context.Context, cfg *config.Config, log *slog.Logger) (int, error) {
	count := func(c datastore.ClientConfig) (int, error) {
		store, err := datastore.Connect(c)
		if err != nil {
			return 0, err
		}
		defer store.Close()
		if err := store.WaitReady(ctx, log); err != nil {
			return 0, err
		}
		weps, err := datastore.LocalEndpoints(ctx, store, cfg.NodeName)
		return len(weps), err
	}
	if len(cfg.Endpoints) > 0 {
		return count(datastore.ClientConfig{Endpoints: cfg.Endpoints, CACertFile: cfg.CACertFile,
			CertFile: cfg.CertFile, Key: cfg.KeyFile})
	}
	if running, err := datastore.EmbeddedClientConfig(cfg.DataDir); err == nil {
		return count(running)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, datastore.EmbeddedDir)); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	emb, err := datastore.StartEmbedded(cfg.DataDir, log)
	if err != nil {
		return 0, err
	}
	defer emb.Close()
	return count(emb.ClientConfig())
}
