package dataplane

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// A listing in pages keeps what it has not reached yet and drops what it did not contain only after its
// last page; an endpoint EndpointUp wrote after the listing's revision stays.
func TestViewPagedResync(t *testing.T) {
	v := newView(policy.NewIndex(testNode), testNode, slog.New(slog.DiscardHandler))
	kv := func(name string, n int, rev int64) datastore.KV {
		w := libnetworkWEP(t, name, api.LibnetworkInterface(endpointID(name)), n)
		data, err := api.Marshal(w)
		linktest.Must(t, err)
		return datastore.KV{Key: datastore.ResourceKey(api.KindOf(w), w.Namespace, w.Name), Value: data, Revision: rev}
	}
	e1, gone, up, e4 := kv("e1", 1, 5), kv("gone", 2, 6), kv("up", 3, 20), kv("e4", 4, 9)
	for _, put := range []datastore.KV{e1, gone, up} {
		v.fold(event{kindWEP, datastore.Event{Type: datastore.EventPut, KV: put, Revision: put.Revision}})
	}
	held := func() []string {
		var keys []string
		for key := range v.revs[kindWEP] {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		return keys
	}
	sorted := func(kvs ...datastore.KV) []string {
		var keys []string
		for _, kv := range kvs {
			keys = append(keys, kv.Key)
		}
		slices.Sort(keys)
		return keys
	}

	v.fold(event{kindWEP, datastore.Event{Type: datastore.EventResync, Revision: 10, More: true, Snapshot: []datastore.KV{e1}}})
	if got := held(); !slices.Equal(got, sorted(e1, gone, up)) || v.resynced[kindWEP] {
		t.Errorf("after the first page: %v, listed %v", got, v.resynced[kindWEP])
	}
	v.fold(event{kindWEP, datastore.Event{Type: datastore.EventResync, Revision: 10, Snapshot: []datastore.KV{e4}}})
	if got := held(); !slices.Equal(got, sorted(e1, up, e4)) || !v.resynced[kindWEP] {
		t.Errorf("after the last page: %v, listed %v", got, v.resynced[kindWEP])
	}
}
