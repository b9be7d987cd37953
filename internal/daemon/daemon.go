// Package daemon wires calico-libnetwork together: datastore, node registration, IPAM, dataplane agent,
// driver and the two plugin sockets. It holds no logic of its own beyond start-up order.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/bgp"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/routing"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
	"github.com/projectcalico/calico-libnetwork/internal/driver"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
	"github.com/projectcalico/calico-libnetwork/internal/metrics"
	"github.com/projectcalico/calico-libnetwork/internal/tunneladdr"
)

// Socket names under the plugin directory; Docker finds plugins by these names.
const (
	NetworkSocket = "calico.sock"
	IpamSocket    = "calico-ipam.sock"
)

// Run starts everything and blocks until ctx ends, then shuts down cleanly (sockets removed first, so
// Docker never waits on a dead plugin). The sockets appear only once the dataplane has programmed the
// datastore's state (see serve).
func Run(ctx context.Context, cfg *config.Config, version string, log *slog.Logger) error {
	if err := makeSysctlsWritable(log); err != nil {
		return err
	}
	switch cfg.Dataplane {
	case config.DataplaneLinux:
		// First, so a second daemon on the host fails at once, before it touches the datastore.
		claim, err := dataplane.Claim()
		if err != nil {
			return err
		}
		defer claim.Close()
	case config.DataplaneNone:
		if err := removeOwnDataplane(log); err != nil {
			return err
		}
	}
	// Counted whether or not CALICO_METRICS_ADDR serves them: it costs next to nothing.
	stats := metrics.New()
	store, closeStore, err := openDatastore(ctx, cfg, stats.EtcdError, log)
	if err != nil {
		return err
	}
	defer closeStore()

	if err := register(ctx, store, cfg, log); err != nil {
		return err
	}

	addrs := ipam.New(store, ipam.Options{Node: cfg.NodeName, Log: log})
	// calico/node's job, not Felix's: it runs whoever programs the host.
	go tunneladdr.New(cfg.NodeName, store, addrs, log).Run(ctx)
	var dp driver.Dataplane = dataplane.Disabled{}
	var agent *dataplane.Agent          // nil: no dataplane to wait for
	var dataplaneSynced <-chan struct{} // likewise
	var dataplaneRefused, unroutable func() []string
	if cfg.Dataplane == config.DataplaneLinux {
		agent = dataplane.New(dataplane.Config{Node: cfg.NodeName, EndpointToHost: cfg.EndpointToHost,
			ObserveConvergence: stats.ObserveConvergence, ObserveUnenforced: stats.ObserveUnenforced,
			ObserveRefused: stats.ObserveRefused}, store, log)
		if err := agent.Start(); err != nil {
			return fmt.Errorf("preparing the host dataplane (set CALICO_DATAPLANE=none if calico/node programs this host): %w", err)
		}
		go agent.Run(ctx)
		dp, dataplaneSynced, dataplaneRefused = agent, agent.Synced(), agent.Refused
		if cfg.Backend != config.BackendNone {
			rc := routing.Config{Node: cfg.NodeName}
			// A mark in the data directory tells a later run without BGP that learnt routes in the
			// kernel are this plugin's to remove.
			learntMark := filepath.Join(cfg.Datastore.DataDir, bgp.LearntRoutesMark)
			if cfg.Backend == config.BackendBird {
				if err := os.WriteFile(learntMark, nil, 0o644); err != nil {
					return fmt.Errorf("marking that BGP programs routes here: %w", err)
				}
				rc.BGP = bgp.New(log)
				go rc.BGP.Report(ctx, cfg.Datastore.DataDir)
				defer rc.BGP.Stop()
			} else if _, err := os.Stat(learntMark); err == nil {
				rc.LearntRoutesLeft = func() { os.Remove(learntMark) }
			}
			routes := routing.New(rc, store, log)
			go routes.Run(ctx)
			unroutable = routes.Unroutable
		}
	}
	dockerAPI, err := docker.New(docker.Config{Host: cfg.DockerHost, CertPath: cfg.DockerCertPath}, log)
	if err != nil {
		return err
	}
	defer dockerAPI.Close()
	ipamDriver := driver.DefaultIPAMDriver
	if cfg.PluginSocket != "" {
		// Docker names a managed plugin's drivers after the plugin, which the plugin is never told.
		ipamDriver = "with this plugin's name, as given to -d"
	}
	d := driver.New(driver.Config{
		Node: cfg.NodeName, IfPrefix: cfg.IfPrefix, MTU: cfg.VethMTU, CreateProfiles: cfg.CreateProfiles,
		LabelEndpoints: cfg.LabelEndpoints, LabelPollTimeout: cfg.LabelPollTimeout,
		GCGrace: cfg.IPAMGCGrace, GCInterval: collectInterval(cfg.IPAMGCGrace), IPAMDriver: ipamDriver,
	}, store, addrs, link.Ops{HostRoot: hostRoot(cfg.HostRoot)}, dp, dockerAPI, log)
	go d.Run(ctx)
	collector := &ipam.Collector{IPAM: addrs, Grace: cfg.IPAMGCGrace, Interval: collectInterval(cfg.IPAMGCGrace),
		IsLive: d.AllocationLive, Log: log}
	go collector.Run(ctx)
	if cfg.MetricsAddr != "" {
		h := stats.Handler(metrics.Sources{Node: cfg.NodeName, Store: store, IPAM: addrs, DataplaneSynced: dataplaneSynced,
			DataplaneRefused: dataplaneRefused, Unroutable: unroutable}, log)
		if err := metrics.Start(ctx, cfg.MetricsAddr, h, log); err != nil {
			return err
		}
	}

	sockets := map[string]http.Handler{
		NetworkSocket: libnetwork.NewNetworkHandler(d.Network(), log, stats.ObserveRequest),
		IpamSocket:    libnetwork.NewIpamHandler(d.IPAM(), log, stats.ObserveRequest),
	}
	if cfg.PluginSocket != "" {
		// A managed plugin has one socket, serving both drivers.
		sockets = map[string]http.Handler{cfg.PluginSocket: libnetwork.NewPluginHandler(d.Network(), d.IPAM(), log, stats.ObserveRequest)}
	}
	return serve(ctx, cfg, sockets, agent, store, version, log)
}

// serve serves the plugin sockets until ctx ends, once the dataplane agent (nil: none, and the datastore
// answered already) has programmed the datastore's state: a Join served before then could not program
// its endpoint's policy. Until then no socket exists (Docker retries its calls meanwhile), systemd is
// told only why (STATUS=), so docker.service, ordered after the unit, waits; READY=1 follows the sockets.
func serve(ctx context.Context, cfg *config.Config, sockets map[string]http.Handler, agent *dataplane.Agent,
	store *datastore.Store, version string, log *slog.Logger) error {
	if agent != nil && !awaitSync(ctx, agent, store, cfg.NotifySocket, log) {
		return nil
	}
	listeners := make(map[string]net.Listener, len(sockets))
	for name := range sockets {
		l, err := libnetwork.Listen(filepath.Join(cfg.PluginDir, name))
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		listeners[name] = l
	}
	errs := make(chan error, len(sockets))
	for name, h := range sockets {
		go func() { errs <- libnetwork.ServeListener(ctx, listeners[name], h) }()
	}
	log.Info("calico-libnetwork ready", "version", version, "node", cfg.NodeName, "pluginDir", cfg.PluginDir,
		"sockets", slices.Sorted(maps.Keys(sockets)), "dataplane", cfg.Dataplane)
	if err := notify(cfg.NotifySocket, "READY=1"); err != nil {
		log.Warn("could not tell systemd the plugin is ready", "error", err.Error())
	}
	var firstErr error
	for range len(sockets) {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// syncReportInterval is how often a daemon waiting for its dataplane says why.
const syncReportInterval = 5 * time.Second

// awaitSync waits until the agent has synced, saying every syncReportInterval what it waits for; false
// if ctx ended first.
func awaitSync(ctx context.Context, agent *dataplane.Agent, store *datastore.Store, notifySocket string, log *slog.Logger) bool {
	if agent.SyncStatus() == nil {
		return true
	}
	log.Info("waiting for the dataplane to program the datastore's state; the plugin sockets appear once it has")
	// Ends with the sync, so that no wait (for the datastore's answer too) holds readiness back.
	waiting, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-agent.Synced():
			stop()
		case <-waiting.Done():
		}
	}()
	status := func(s string) {
		if err := notify(notifySocket, "STATUS="+s); err != nil {
			log.Warn("could not tell systemd the plugin's status", "error", err.Error())
		}
	}
	told := false // systemd shows the last status until another replaces it
	tick := time.NewTicker(syncReportInterval)
	defer tick.Stop()
	for {
		select {
		case <-waiting.Done():
			if ctx.Err() != nil {
				return false
			}
			if told {
				status("the dataplane has programmed the datastore's state")
			}
			return true
		case <-tick.C:
		}
		why := agent.SyncStatus()
		if why == nil {
			continue
		}
		attrs := []any{"reason", why.Error()}
		if err := store.Ping(waiting); waiting.Err() != nil {
			continue
		} else if err != nil {
			attrs = append(attrs, "datastore", err.Error())
		}
		log.Warn("not ready: the plugin sockets appear once the dataplane has programmed the datastore's state", attrs...)
		status("not ready: " + why.Error())
		told = true
	}
}

// collectInterval runs the leak collectors (addresses, and endpoints Docker no longer has) often enough that a
// leak goes about one grace period after it is seen: every half grace period, at most every second and at
// least every minute.
func collectInterval(grace time.Duration) time.Duration {
	return min(max(grace/2, time.Second), time.Minute)
}

// openDatastore connects to the external cluster, or runs the embedded etcd when none is configured.
// onError is told of every failed etcd operation.
func openDatastore(ctx context.Context, cfg *config.Config, onError func(op string), log *slog.Logger) (*datastore.Store, func(), error) {
	clientCfg := datastore.ClientConfig{Endpoints: cfg.Endpoints, CACertFile: cfg.CACertFile, CertFile: cfg.CertFile, Key: cfg.KeyFile}
	stopEmbedded := func() {}
	if len(cfg.Endpoints) == 0 {
		emb, err := datastore.StartEmbedded(cfg.DataDir, log)
		if err != nil {
			return nil, nil, err
		}
		clientCfg, stopEmbedded = emb.ClientConfig(), emb.Close
	}
	clientCfg.OnError = onError
	store, err := datastore.Connect(clientCfg)
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
