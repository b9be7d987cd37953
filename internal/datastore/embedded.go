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

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EndpointFile, under the data directory, records the embedded etcd's client URL so that calicoctl on the
// same host finds the datastore with no configuration.
const EndpointFile = "etcd-endpoint"

// EmbeddedDir, under the data directory, holds the embedded etcd's data.
const EmbeddedDir = "etcd"

// Embedded is a single-node etcd running inside this process.
type Embedded struct {
	etcd     *embed.Etcd
	Endpoint string
	pki      PKIFiles
	file     string
}

// StartEmbedded runs a single-member etcd with its data in dataDir/etcd, listening on a free loopback port
// (recorded in dataDir/etcd-endpoint, readable by root only). State persists across restarts.
//
// Every local user can connect to a loopback port, so etcd serves TLS and admits only clients with a
// certificate from the CA in dataDir/etcd-pki (see LoadOrCreatePKI), whose keys only root can read.
func StartEmbedded(dataDir string, log *slog.Logger) (*Embedded, error) {
	return startEmbedded(dataDir, raftLogLimits{singleMemberSnapshotCount, singleMemberCatchUpEntries}, log)
}

// raftLogLimits bounds the raft log etcd holds in memory: the entries since its last snapshot (a snapshot
// every snapshotCount writes) plus catchUpEntries kept after one for slow followers. Entries are whole
// write requests, IPAM blocks and endpoints included.
type raftLogLimits struct{ snapshotCount, catchUpEntries uint64 }

// The daemon's raft log limits: a single member has no follower to keep entries for. etcd's defaults
// (10,000 and 5,000) let a busy host's daemon grow by tens of MiB before the first snapshot
// (docs/benchmarks.md, "Memory over repeated soaks").
const singleMemberSnapshotCount, singleMemberCatchUpEntries = 1000, 100

func startEmbedded(dataDir string, raftLog raftLogLimits, log *slog.Logger) (*Embedded, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("CALICO_DATA_DIR: cannot create %s: %w", dataDir, err)
	}
	pki, err := LoadOrCreatePKI(filepath.Join(dataDir, PKIDir), log)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd certificates: %w", err)
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
	cfg.Dir = filepath.Join(dataDir, EmbeddedDir)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*clientURL}, []url.URL{*clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peerURL}, []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	// The peer listener gets the same protection: raft messages could otherwise write to the store.
	tlsInfo := transport.TLSInfo{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, TrustedCAFile: pki.CACert, ClientCertAuth: true}
	cfg.ClientTLSInfo, cfg.PeerTLSInfo = tlsInfo, tlsInfo
	// etcd's own logs would interleave JSON with ours and report routine shutdowns as errors.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// The peer URL changes on every start (a free port); a single member may rewrite its own peer URL.
	cfg.StrictReconfigCheck = false
	// Keep the database small on long-running hosts: compact history older than an hour.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "1h"
	cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = raftLog.snapshotCount, raftLog.catchUpEntries
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
	emb := &Embedded{etcd: e, Endpoint: clientURL.String(), pki: pki, file: filepath.Join(dataDir, EndpointFile)}
	if err := os.WriteFile(emb.file, []byte(emb.Endpoint+"\n"), 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("recording the embedded etcd endpoint: %w", err)
	}
	log.Info("embedded etcd ready", "endpoint", emb.Endpoint, "dataDir", cfg.Dir)
	return emb, nil
}

// ClientConfig is how to reach the server: its endpoint and the client certificate.
func (e *Embedded) ClientConfig() ClientConfig { return e.pki.ClientConfig(e.Endpoint) }

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

// EmbeddedClientConfig is how to reach the embedded etcd of a daemon running with dataDir: the endpoint it
// recorded and the client certificate under dataDir/etcd-pki.
func EmbeddedClientConfig(dataDir string) (ClientConfig, error) {
	ep, err := ReadEndpointFile(dataDir)
	if err != nil {
		return ClientConfig{}, err
	}
	return pkiFilesIn(filepath.Join(dataDir, PKIDir)).ClientConfig(ep), nil
}

func freeLoopbackURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free loopback port for embedded etcd: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return &url.URL{Scheme: "https", Host: addr}, nil
}
