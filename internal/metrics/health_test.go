package metrics

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func healthz(t *testing.T, h http.Handler) (int, healthReport) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var rep healthReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("/healthz body %q: %v", rec.Body, err)
	}
	return rec.Code, rep
}

func TestHealthzDataplane(t *testing.T) {
	src := sources(t)
	synced := make(chan struct{})
	src.DataplaneSynced = synced
	h := New().Handler(src, slog.New(slog.DiscardHandler))

	code, rep := healthz(t, h)
	if code != http.StatusServiceUnavailable || rep.Status != "unhealthy" || rep.Datastore != "ok" ||
		!strings.Contains(rep.Dataplane, "not yet synced") {
		t.Errorf("before the first sync: %d %+v", code, rep)
	}
	close(synced)
	if code, rep := healthz(t, h); code != http.StatusOK || rep != (healthReport{"ok", "ok", "ok", ""}) {
		t.Errorf("after the first sync: %d %+v", code, rep)
	}

	// Objects the kernel refuses: degraded, still 200 (other endpoints are served), and named.
	src.DataplaneRefused = func() []string { return []string{"pi-bad-x (gnp/bad/ingress): invalid argument"} }
	code, rep = healthz(t, New().Handler(src, slog.New(slog.DiscardHandler)))
	if code != http.StatusOK || rep.Status != "degraded" || !strings.Contains(rep.Dataplane, "gnp/bad/ingress") {
		t.Errorf("with a refused object: %d %+v", code, rep)
	}

	// A pool routing cannot route: degraded too, and said under routing.
	src.DataplaneRefused = nil
	src.Unroutable = func() []string { return []string{"IP-in-IP pools: this kernel has no IP-in-IP"} }
	code, rep = healthz(t, New().Handler(src, slog.New(slog.DiscardHandler)))
	if code != http.StatusOK || rep.Status != "degraded" || rep.Dataplane != "ok" || !strings.Contains(rep.Routing, "no IP-in-IP") {
		t.Errorf("with an unroutable pool: %d %+v", code, rep)
	}

	src.DataplaneSynced, src.Unroutable = nil, nil
	code, rep = healthz(t, New().Handler(src, slog.New(slog.DiscardHandler)))
	if code != http.StatusOK || rep.Status != "ok" || !strings.Contains(rep.Dataplane, "disabled") {
		t.Errorf("dataplane disabled: %d %+v", code, rep)
	}
}

// With etcd gone, /healthz says so within its timeout, the failed read is counted, and the metrics that
// need the datastore are left out of the scrape while the others are still served.
func TestHealthzDatastoreDown(t *testing.T) {
	emb, err := datastore.StartEmbedded(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	running := true
	defer func() {
		if running {
			emb.Close()
		}
	}()
	m := New()
	cfg := emb.ClientConfig()
	cfg.OnError, cfg.RequestTimeout = m.EtcdError, time.Second
	store, err := datastore.Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	src := sources(t)
	src.Store = store
	h := m.Handler(src, slog.New(slog.DiscardHandler))
	if code, rep := healthz(t, h); code != http.StatusOK {
		t.Fatalf("etcd up: %d %+v", code, rep)
	}

	emb.Close()
	running = false
	code, rep := healthz(t, h)
	if code != http.StatusServiceUnavailable || rep.Status != "unhealthy" || !strings.Contains(rep.Datastore, "etcd") ||
		rep.Dataplane != "ok" {
		t.Errorf("etcd down: %d %+v", code, rep)
	}
	samples := scrape(t, h)
	if samples[`calico_libnetwork_etcd_errors_total{op="list"}`] < 1 {
		t.Errorf("failed etcd read not counted: %v", samples[`calico_libnetwork_etcd_errors_total{op="list"}`])
	}
	if _, ok := samples["calico_libnetwork_local_endpoints"]; ok {
		t.Error("local endpoints reported with etcd down")
	}
}
