package datastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ClientConfig says how to reach an etcd cluster.
type ClientConfig struct {
	Endpoints                 []string
	CACertFile, CertFile, Key string
	// RequestTimeout bounds each request (default 5 s).
	RequestTimeout time.Duration
	// OnError, if set, is called with the operation (get, list, transaction, delete, watch) whenever etcd
	// fails one, for metrics. A request its caller cancelled has not failed.
	OnError func(op string)
}

// Connect creates a client for the cluster. It does not wait for etcd to answer (see WaitReady): the
// client reconnects by itself, so a daemon can start before its datastore.
func Connect(cfg ClientConfig) (*Store, error) {
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		// gRPC's default reconnect backoff grows to 2 minutes, so after a long etcd outage requests would
		// keep timing out for up to that long once etcd is back. Keep retrying every few seconds instead.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	st := NewStore(cli, cfg.RequestTimeout)
	st.tls, st.onError = tlsCfg, cfg.OnError
	return st, nil
}

func tlsConfig(cfg ClientConfig) (*tls.Config, error) {
	if cfg.CACertFile == "" && cfg.CertFile == "" && cfg.Key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("ETCD_CA_CERT_FILE: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ETCD_CA_CERT_FILE: %s holds no PEM certificate", cfg.CACertFile)
		}
	}
	if (cfg.CertFile == "") != (cfg.Key == "") {
		return nil, errors.New("ETCD_CERT_FILE and ETCD_KEY_FILE must be set together")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("ETCD_CERT_FILE/ETCD_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Ping checks that etcd answers a read within the request timeout.
func (s *Store) Ping(ctx context.Context) error {
	_, _, err := s.List(ctx, "/calico/ping-does-not-exist")
	return err
}

// WaitReady blocks until etcd answers, retrying with exponential backoff (capped at 10 s) and logging what
// it is waiting for, or until ctx ends.
func (s *Store) WaitReady(ctx context.Context, log *slog.Logger) error {
	delay := 250 * time.Millisecond
	for {
		// The etcd client retries failed TLS handshakes silently and reports only a timeout, so look first.
		err := s.tlsProblem()
		if err == nil {
			if err = s.Ping(ctx); err == nil {
				return nil
			}
		}
		if isTLSError(err) {
			return fmt.Errorf("etcd at %s rejected our TLS settings: %w", strings.Join(s.cli.Endpoints(), ","), err)
		}
		log.Warn("waiting for etcd", "endpoints", strings.Join(s.cli.Endpoints(), ","), "retryIn", delay.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for etcd at %s: %w", strings.Join(s.cli.Endpoints(), ","), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// isTLSError recognises certificate failures, which retrying cannot fix.
func isTLSError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "certificate") || strings.Contains(msg, "x509") || strings.Contains(msg, "tls:")
}

// tlsProblem makes a TLS connection to each https endpoint with the client's settings and returns the first
// certificate failure seen, either ours (the server's certificate is not trusted) or the server's (it refused
// our client certificate, which with TLS 1.3 arrives as an alert after the handshake). Endpoints that cannot
// be reached at all are not its concern.
func (s *Store) tlsProblem() error {
	for _, ep := range s.cli.Endpoints() {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" {
			continue
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.tls != nil {
			cfg = s.tls.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"h2"}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", u.Host, cfg)
		if err != nil {
			if isTLSError(err) {
				return fmt.Errorf("%s: %w", ep, err)
			}
			continue
		}
		// An HTTP/2 server speaks first (its settings frame); a rejection arrives instead as an alert.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if err != nil && isTLSError(err) {
			return fmt.Errorf("%s: %w", ep, err)
		}
	}
	return nil
}
