package datastore

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EndpointFile, under the data directory, records the embedded etcd's client URL so that calicoctl on the
// same host finds the datastore with no configuration.
const EndpointFile = "etcd-endpoint"

// Embedded is a single-node etcd running inside this process.
type Embedded struct {
	etcd     *embed.Etcd
	Endpoint string
	file     string
}

// StartEmbedded runs a single-member etcd with its data in dataDir/etcd, listening on a free loopback port
// (recorded in dataDir/etcd-endpoint, readable by root only). State persists across restarts.
func StartEmbedded(dataDir string, log *slog.Logger) (*Embedded, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("CALICO_DATA_DIR: cannot create %s: %w", dataDir, err)
	}
	clientURL, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}
	peerURL, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "calico-libnetwork"
	cfg.Dir = filepath.Join(dataDir, "etcd")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*clientURL}, []url.URL{*clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peerURL}, []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	// etcd's own logs would interleave JSON with ours and report routine shutdowns as errors.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// The peer URL changes on every start (a free port); a single member may rewrite its own peer URL.
	cfg.StrictReconfigCheck = false
	// Keep the database small on long-running hosts: compact history older than an hour.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "1h"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready within 60s", cfg.Dir)
	}
	emb := &Embedded{etcd: e, Endpoint: clientURL.String(), file: filepath.Join(dataDir, EndpointFile)}
	if err := os.WriteFile(emb.file, []byte(emb.Endpoint+"\n"), 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("recording the embedded etcd endpoint: %w", err)
	}
	log.Info("embedded etcd ready", "endpoint", emb.Endpoint, "dataDir", cfg.Dir)
	return emb, nil
}

// Close stops the server and forgets its endpoint.
func (e *Embedded) Close() {
	os.Remove(e.file)
	e.etcd.Close()
}

// ReadEndpointFile returns the embedded etcd's URL recorded under dataDir, if a daemon is running there.
func ReadEndpointFile(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, EndpointFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func freeLoopbackURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free loopback port for embedded etcd: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return &url.URL{Scheme: "http", Host: addr}, nil
}
