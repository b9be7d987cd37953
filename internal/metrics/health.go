package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// healthTimeout bounds the datastore read of one health check: a probe wants a quick answer, and etcd
// answers a healthy cluster's read in milliseconds.
const healthTimeout = 2 * time.Second

// healthReport is /healthz's body: each check's outcome, "ok" or what is wrong.
type healthReport struct {
	Status    string `json:"status"` // "ok", "degraded" or "unhealthy"
	Datastore string `json:"datastore"`
	Dataplane string `json:"dataplane"`
	Routing   string `json:"routing,omitempty"` // what pools cannot be routed between hosts, when any
}

// health answers 200 when etcd answers a read and the dataplane agent has completed its first sync (or the
// dataplane is disabled), 503 otherwise. A dataplane that has synced but whose kernel refuses some objects
// is "degraded" (still 200: every other endpoint is served, and those objects' endpoints fail closed), and
// the report names them; so is one with pools it cannot route between hosts.
type health struct{ src Sources }

func (h health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := healthReport{Status: "ok", Datastore: "ok", Dataplane: "ok"}
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := h.src.Store.Ping(ctx); err != nil {
		rep.Status, rep.Datastore = "unhealthy", err.Error()
	}
	if h.src.DataplaneSynced == nil {
		rep.Dataplane = "disabled (CALICO_DATAPLANE=none)"
	} else {
		select {
		case <-h.src.DataplaneSynced:
			if refused := h.src.refused(); len(refused) > 0 {
				rep.Dataplane = "degraded: the kernel refuses " + strings.Join(refused, "; ")
				if rep.Status == "ok" {
					rep.Status = "degraded"
				}
			}
		default:
			rep.Status, rep.Dataplane = "unhealthy", "not yet synced with the datastore"
		}
	}
	if h.src.Unroutable != nil {
		if problems := h.src.Unroutable(); len(problems) > 0 {
			rep.Routing = "degraded: " + strings.Join(problems, "; ")
			if rep.Status == "ok" {
				rep.Status = "degraded"
			}
		}
	}
	status := http.StatusOK
	if rep.Status == "unhealthy" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A write error means the prober hung up; there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(rep)
}

func (s Sources) refused() []string {
	if s.DataplaneRefused == nil {
		return nil
	}
	return s.DataplaneRefused()
}
