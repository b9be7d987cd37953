// Package metrics serves the daemon's Prometheus metrics and health check over HTTP (CALICO_METRICS_ADDR).
//
// The collectors live in a registry of each daemon's own. Other packages report through small hooks that know
// nothing of Prometheus (libnetwork.Observer, dataplane.Config.ObserveConvergence and ObserveUnenforced,
// datastore.ClientConfig.OnError); the daemon connects them to the methods here. What the datastore holds (pool
// usage, local endpoints) is read at scrape time, so it is never stale and costs nothing between scrapes.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

const namespace = "calico_libnetwork"

// scrapeTimeout bounds the datastore reads of one scrape, below Prometheus' default scrape timeout (10 s).
const scrapeTimeout = 5 * time.Second

// Metrics holds what the daemon counts as it runs. Its methods are safe for concurrent use.
type Metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	convergence prometheus.Histogram
	unenforced  prometheus.Gauge
	refused     prometheus.Gauge
	etcdErrors  *prometheus.CounterVec
}

// New returns a daemon's metrics, with the Go runtime's and the process's own.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Docker plugin calls by subsystem (NetworkDriver, IpamDriver), method and result (ok, error).",
		}, []string{"subsystem", "method", "result"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "How long Docker plugin calls took to answer, by subsystem and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"subsystem", "method"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "dataplane_convergence_seconds",
			Help:    "How long the dataplane agent took from receiving a batch of datastore changes to having them in the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms to about 8 s
		}),
		unenforced: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_rules_unenforced",
			Help: "Policy and profile rules with a match this dataplane cannot enforce (HTTP, services), enforced " +
				"failing closed: an Allow or Log left out, a Deny or Pass denying everything else it matches.",
		}),
		refused: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "dataplane_objects_refused",
			Help: "nftables objects the kernel refuses (a policy's chain, a set); the endpoints they apply to fail " +
				"closed, and /healthz names them.",
		}),
		etcdErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "etcd_errors_total",
			Help: "Datastore operations etcd failed (no answer in time, connection lost, ...), by operation.",
		}, []string{"op"}),
	}
	m.registry.MustRegister(m.requests, m.durations, m.convergence, m.unenforced, m.refused, m.etcdErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest counts one plugin call; it is a libnetwork.Observer.
func (m *Metrics) ObserveRequest(subsystem, method string, elapsed time.Duration, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	m.requests.WithLabelValues(subsystem, method, result).Inc()
	m.durations.WithLabelValues(subsystem, method).Observe(elapsed.Seconds())
}

// ObserveConvergence records one dataplane pass (dataplane.Config.ObserveConvergence).
func (m *Metrics) ObserveConvergence(d time.Duration) { m.convergence.Observe(d.Seconds()) }

// ObserveUnenforced records how many rules fail closed (dataplane.Config.ObserveUnenforced).
func (m *Metrics) ObserveUnenforced(n int) { m.unenforced.Set(float64(n)) }

// ObserveRefused records how many nftables objects the kernel refuses (dataplane.Config.ObserveRefused).
func (m *Metrics) ObserveRefused(n int) { m.refused.Set(float64(n)) }

// EtcdError counts a failed datastore operation (datastore.ClientConfig.OnError).
func (m *Metrics) EtcdError(op string) { m.etcdErrors.WithLabelValues(op).Inc() }

// Sources are what /metrics reads from the datastore at scrape time and /healthz checks.
type Sources struct {
	Node  string
	Store *datastore.Store
	IPAM  *ipam.IPAM
	// DataplaneSynced is closed once the dataplane agent has programmed the datastore's state; nil when the
	// dataplane is disabled (CALICO_DATAPLANE=none).
	DataplaneSynced <-chan struct{}
	// DataplaneRefused lists what the kernel refuses of the dataplane (nil: nothing to ask).
	DataplaneRefused func() []string
	// Unroutable lists the pools whose mode cross-host routing cannot route (nil: nothing to ask).
	Unroutable func() []string
}

// Handler serves /metrics (Prometheus text format) and /healthz. A metric the datastore cannot supply is left
// out of the scrape, with a warning in log; the others are still served.
func (m *Metrics) Handler(src Sources, log *slog.Logger) http.Handler {
	state := prometheus.NewRegistry()
	state.MustRegister(stateCollector{src})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{m.registry, state}, promhttp.HandlerOpts{
		ErrorLog:      scrapeLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.Handle("/healthz", health{src})
	return mux
}

// scrapeLog reports scrape errors (promhttp.Logger).
type scrapeLog struct{ log *slog.Logger }

func (l scrapeLog) Println(v ...any) {
	l.log.Warn("metrics scrape incomplete", "error", fmt.Sprint(v...))
}

var (
	poolAddressesDesc = prometheus.NewDesc(namespace+"_ipam_pool_addresses",
		"Addresses in each IP pool (its capacity).", []string{"pool", "cidr"}, nil)
	poolInUseDesc = prometheus.NewDesc(namespace+"_ipam_pool_addresses_in_use",
		"Addresses of each IP pool allocated by IPAM, on every node.", []string{"pool", "cidr"}, nil)
	localEndpointsDesc = prometheus.NewDesc(namespace+"_local_endpoints",
		"Workload endpoints of this node's Docker containers in the datastore.", nil, nil)
)

// stateCollector reads pool usage and this node's endpoints from the datastore on every scrape.
type stateCollector struct{ src Sources }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolAddressesDesc
	ch <- poolInUseDesc
	ch <- localEndpointsDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if pools, err := c.src.IPAM.Usage(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(poolInUseDesc, fmt.Errorf("reading IP pool usage: %w", err))
	} else {
		for _, p := range pools {
			ch <- prometheus.MustNewConstMetric(poolAddressesDesc, prometheus.GaugeValue, p.Size, p.Pool.Name, p.CIDR.String())
			ch <- prometheus.MustNewConstMetric(poolInUseDesc, prometheus.GaugeValue, float64(p.InUse), p.Pool.Name, p.CIDR.String())
		}
	}
	if n, err := c.localEndpoints(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(localEndpointsDesc, fmt.Errorf("reading workload endpoints: %w", err))
	} else {
		ch <- prometheus.MustNewConstMetric(localEndpointsDesc, prometheus.GaugeValue, float64(n))
	}
}

func (c stateCollector) localEndpoints(ctx context.Context) (int, error) {
	weps, err := datastore.LocalEndpoints(ctx, c.src.Store, c.src.Node)
	return len(weps), err
}
