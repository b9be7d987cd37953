package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

// Start listens on addr (CALICO_METRICS_ADDR: host:port, or unix:/path for a socket only root and its
// group reach, like the plugin's) and serves h in the background until ctx ends. It returns once listening,
// so that a bad or busy address stops start-up with a clear error; a later failure is only logged, since
// metrics are not worth stopping the plugin for. A TCP address reachable from other hosts is served with a
// warning: the metrics name this node and its pools.
func Start(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	l, err := listen(addr)
	if err != nil {
		return fmt.Errorf("CALICO_METRICS_ADDR: %w", err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("metrics and health server reachable from other hosts; its metrics name this node and its pools: prefer a loopback address such as 127.0.0.1:9091",
			"addr", l.Addr().String())
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics and health server stopped", "addr", addr, "error", err.Error())
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if srv.Shutdown(shutdownCtx) != nil {
			srv.Close() // a scrape still running after 5 s is cut off
		}
	}()
	log.Info("serving metrics and health", "addr", l.Addr().String(), "paths", "/metrics /healthz")
	return nil
}

func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return libnetwork.Listen(path)
	}
	return net.Listen("tcp", addr)
}
