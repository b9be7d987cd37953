package metrics

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

func TestRequestMetrics(t *testing.T) {
	m := New()
	h := m.Handler(sources(t), slog.New(slog.DiscardHandler))
	m.ObserveRequest("NetworkDriver", "CreateNetwork", 20*time.Millisecond, true)
	m.ObserveRequest("NetworkDriver", "CreateNetwork", 3*time.Second, false)
	m.ObserveRequest("IpamDriver", "RequestAddress", time.Millisecond, true)
	const (
		createOK   = `calico_libnetwork_requests_total{method="CreateNetwork",result="ok",subsystem="NetworkDriver"}`
		createErr  = `calico_libnetwork_requests_total{method="CreateNetwork",result="error",subsystem="NetworkDriver"}`
		requestOK  = `calico_libnetwork_requests_total{method="RequestAddress",result="ok",subsystem="IpamDriver"}`
		createTook = `calico_libnetwork_request_duration_seconds_bucket{method="CreateNetwork",subsystem="NetworkDriver",le="0.025"}`
		createN    = `calico_libnetwork_request_duration_seconds_count{method="CreateNetwork",subsystem="NetworkDriver"}`
	)
	want(t, scrape(t, h), map[string]float64{createOK: 1, createErr: 1, requestOK: 1, createTook: 1, createN: 2})

	m.ObserveRequest("NetworkDriver", "CreateNetwork", 10*time.Millisecond, true)
	want(t, scrape(t, h), map[string]float64{createOK: 2, createErr: 1, createTook: 2, createN: 3})
}

func TestConvergenceAndEtcdErrors(t *testing.T) {
	m := New()
	h := m.Handler(sources(t), slog.New(slog.DiscardHandler))
	samples := scrape(t, h)
	want(t, samples, map[string]float64{"calico_libnetwork_dataplane_convergence_seconds_count": 0})
	if _, ok := samples["process_start_time_seconds"]; !ok {
		t.Error("no process metrics")
	}

	m.ObserveConvergence(7 * time.Millisecond)
	m.ObserveConvergence(time.Second)
	m.EtcdError("get")
	m.EtcdError("get")
	m.EtcdError("watch")
	m.ObserveUnenforced(3)
	m.ObserveRefused(1)
	want(t, scrape(t, h), map[string]float64{
		"calico_libnetwork_policy_rules_unenforced":                          3,
		"calico_libnetwork_dataplane_objects_refused":                        1,
		"calico_libnetwork_dataplane_convergence_seconds_count":              2,
		`calico_libnetwork_dataplane_convergence_seconds_bucket{le="0.008"}`: 1,
		`calico_libnetwork_etcd_errors_total{op="get"}`:                      2,
		`calico_libnetwork_etcd_errors_total{op="watch"}`:                    1,
	})
}

// Every daemon counts in a registry of its own.
func TestRegistryPerDaemon(t *testing.T) {
	src := sources(t)
	a, b := New(), New()
	a.EtcdError("list")
	if _, ok := scrape(t, b.Handler(src, slog.New(slog.DiscardHandler)))[`calico_libnetwork_etcd_errors_total{op="list"}`]; ok {
		t.Error("one daemon's metrics show in another's")
	}
	want(t, scrape(t, a.Handler(src, slog.New(slog.DiscardHandler))), map[string]float64{`calico_libnetwork_etcd_errors_total{op="list"}`: 1})
}

func TestDatastoreMetrics(t *testing.T) {
	ctx := context.Background()
	src := sources(t)
	h := New().Handler(src, slog.New(slog.DiscardHandler))
	want(t, scrape(t, h), map[string]float64{"calico_libnetwork_local_endpoints": 0})

	pool := &api.IPPool{ObjectMeta: api.ObjectMeta{Name: "pool1"}, Spec: api.IPPoolSpec{CIDR: "10.65.0.0/16", BlockSize: 26}}
	if err := testStore.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for i, ep := range []struct{ node, id string }{{testNode, "aa"}, {testNode, "bb"}, {"node2", "cc"}} {
		ip := netip.AddrFrom4([4]byte{10, 65, 0, byte(i + 1)})
		if _, err := src.IPAM.AssignIP(ctx, ip, "libnetwork."+ep.id, nil); err != nil {
			t.Fatal(err)
		}
		wep, err := api.LibnetworkEndpoint(ep.node, strings.Repeat(ep.id, 32))
		if err != nil {
			t.Fatal(err)
		}
		wep.Spec.InterfaceName, wep.Spec.IPNetworks = "cali"+ep.id, []string{ip.String() + "/32"}
		if err := testStore.Create(ctx, wep); err != nil {
			t.Fatal(err)
		}
	}
	want(t, scrape(t, h), map[string]float64{
		`calico_libnetwork_ipam_pool_addresses{cidr="10.65.0.0/16",pool="pool1"}`:        65536,
		`calico_libnetwork_ipam_pool_addresses_in_use{cidr="10.65.0.0/16",pool="pool1"}`: 3,
		"calico_libnetwork_local_endpoints":                                              2,
	})

	if _, err := src.IPAM.ReleaseIP(ctx, netip.MustParseAddr("10.65.0.1")); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, h), map[string]float64{
		`calico_libnetwork_ipam_pool_addresses_in_use{cidr="10.65.0.0/16",pool="pool1"}`: 2,
	})
}
