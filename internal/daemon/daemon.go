// Package daemon wires calico-libnetwork together: datastore, node registration, IPAM, dataplane agent,
// driver and the two plugin sockets. It holds no logic of its own beyond start-up order.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/routing"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
	"github.com/projectcalico/calico-libnetwork/internal/driver"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

// Socket names under the plugin directory; Docker finds plugins by these names.
const (
	NetworkSocket = "calico.sock"
	IpamSocket    = "calico-ipam.sock"
)

// Run starts everything and blocks until ctx ends, then shuts down cleanly (sockets removed first, so
// Docker never waits on a dead plugin).
func Run(ctx context.Context, cfg *config.Config, version string, log *slog.Logger) error {
	store, closeStore, err := openDatastore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	if err := register(ctx, store, cfg, version, log); err != nil {
		return err
	}

	addrs := ipam.New(store, ipam.Options{Node: cfg.NodeName, Log: log})
	var dp driver.Dataplane = dataplane.Disabled{}
	if cfg.Dataplane == config.DataplaneLinux {
		agent := dataplane.New(dataplane.Config{Node: cfg.NodeName, EndpointToHost: cfg.EndpointToHost}, store, log)
		if err := agent.Start(); err != nil {
			return fmt.Errorf("preparing the host dataplane (set CALICO_DATAPLANE=none if calico/node programs this host): %w", err)
		}
		go agent.Run(ctx)
		go routing.New(routing.Config{Node: cfg.NodeName}, store, addrs, log).Run(ctx)
		dp = agent
	}
	dockerAPI, err := docker.New(cfg.DockerHost)
	if err != nil {
		return err
	}
	d := driver.New(driver.Config{
		Node: cfg.NodeName, IfPrefix: cfg.IfPrefix, MTU: cfg.VethMTU, CreateProfiles: cfg.CreateProfiles,
		LabelEndpoints: cfg.LabelEndpoints, LabelPollTimeout: cfg.LabelPollTimeout,
		GCGrace: cfg.IPAMGCGrace, GCInterval: collectInterval(cfg.IPAMGCGrace),
	}, store, addrs, link.Ops{}, dp, dockerAPI, log)
	go d.Run(ctx)
	collector := &ipam.Collector{IPAM: addrs, Grace: cfg.IPAMGCGrace, Interval: collectInterval(cfg.IPAMGCGrace),
		IsLive: d.AllocationLive, Log: log}
	go collector.Run(ctx)

	errs := make(chan error, 2)
	go func() {
		errs <- libnetwork.Serve(ctx, filepath.Join(cfg.PluginDir, NetworkSocket), libnetwork.NewNetworkHandler(d.Network(), log))
	}()
	go func() {
		errs <- libnetwork.Serve(ctx, filepath.Join(cfg.PluginDir, IpamSocket), libnetwork.NewIpamHandler(d.IPAM(), log))
	}()
	log.Info("calico-libnetwork ready", "version", version, "node", cfg.NodeName, "pluginDir", cfg.PluginDir,
		"dataplane", cfg.Dataplane)
	var firstErr error
	for range 2 {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// collectInterval runs the leak collectors (addresses, and endpoints Docker no longer has) often enough that a
// leak goes about one grace period after it is seen: every half grace period, at most every second and at
// least every minute.
func collectInterval(grace time.Duration) time.Duration {
	return min(max(grace/2, time.Second), time.Minute)
}

// openDatastore connects to the external cluster, or runs the embedded etcd when none is configured.
func openDatastore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*datastore.Store, func(), error) {
	endpoints := cfg.Endpoints
	stopEmbedded := func() {}
	if len(endpoints) == 0 {
		emb, err := datastore.StartEmbedded(cfg.DataDir, log)
		if err != nil {
			return nil, nil, err
		}
		endpoints, stopEmbedded = []string{emb.Endpoint}, emb.Close
	}
	store, err := datastore.Connect(datastore.ClientConfig{Endpoints: endpoints, CACertFile: cfg.CACertFile,
		CertFile: cfg.CertFile, Key: cfg.KeyFile})
	if err != nil {
		stopEmbedded()
		return nil, nil, err
	}
	if err := store.WaitReady(ctx, log); err != nil {
		store.Close()
		stopEmbedded()
		return nil, nil, err
	}
	return store, func() { store.Close(); stopEmbedded() }, nil
}
