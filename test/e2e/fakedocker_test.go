package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeDocker answers the few Docker API calls the plugin makes in the background (network inspect and list,
// the event stream), for tests that play Docker's part over the plugin sockets themselves: Docker never
// sends a network's name to a driver, so the plugin learns it here.
type fakeDocker struct {
	host string // DOCKER_HOST value

	mu    sync.Mutex
	names map[string]string // network ID → name
}

func startFakeDocker(t *testing.T) *fakeDocker {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("fake Docker API: %v", err)
	}
	f := &fakeDocker{host: "unix://" + sock, names: map[string]string{}}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return f
}

// addNetwork makes Docker know a network, as `docker network create` does before the plugin asks.
func (f *fakeDocker) addNetwork(id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names[id] = name
}

type fakeNetwork struct {
	ID   string `json:"Id"`
	Name string `json:"Name"`
}

// fakeAPIVersion is the API version the fake announces; Docker's client then puts it before every path.
const fakeAPIVersion = "1.41"

func (f *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_ping" {
		w.Header().Set("Api-Version", fakeAPIVersion)
		return
	}
	r.URL.Path = strings.TrimPrefix(r.URL.Path, "/v"+fakeAPIVersion)
	f.mu.Lock()
	var list []fakeNetwork
	for id, name := range f.names {
		list = append(list, fakeNetwork{ID: id, Name: name})
	}
	name, known := f.names[strings.TrimPrefix(r.URL.Path, "/networks/")]
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/networks":
		_ = json.NewEncoder(w).Encode(list)
	case strings.HasPrefix(r.URL.Path, "/networks/") && known:
		_ = json.NewEncoder(w).Encode(fakeNetwork{ID: strings.TrimPrefix(r.URL.Path, "/networks/"), Name: name})
	case r.URL.Path == "/events":
		// A stream with no events, open until the plugin hangs up.
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
	}
}
