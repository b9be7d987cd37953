package metrics

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

const testNode = "node1"

// testStore talks to the embedded etcd this package's tests share; tests clear what they wrote.
var testStore *datastore.Store

func TestMain(m *testing.M) {
	os.Exit(datastoretest.Main(m, func(e *datastoretest.Etcd) { testStore = e.Store }))
}

// sources are the shared datastore's, for a dataplane that has synced.
func sources(t *testing.T) Sources {
	t.Helper()
	t.Cleanup(func() {
		if _, err := testStore.Client().Delete(context.Background(), "/calico/", clientv3.WithPrefix()); err != nil {
			t.Error(err)
		}
	})
	synced := make(chan struct{})
	close(synced)
	return Sources{Node: testNode, Store: testStore, IPAM: ipam.New(testStore, ipam.Options{Node: testNode}), DataplaneSynced: synced}
}

// scrape fetches /metrics and returns each sample's value by its series, as written in the text format
// (`name{label="value",...}`, labels sorted by name).
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d: %s", rec.Code, rec.Body)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// want checks samples against expected values.
func want(t *testing.T, samples map[string]float64, expected map[string]float64) {
	t.Helper()
	for series, v := range expected {
		got, ok := samples[series]
		switch {
		case !ok:
			t.Errorf("no series %s", series)
		case got != v:
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
}
