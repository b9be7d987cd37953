package ipam

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
)

// testStore talks to the embedded etcd this package's tests share; tests clear what they wrote.
var testStore *datastore.Store

func TestMain(m *testing.M) {
	os.Exit(datastoretest.Main(m, func(e *datastoretest.Etcd) { testStore = e.Store }))
}

// reset empties the datastore of everything IPAM tests write.
func reset(tb testing.TB, s *datastore.Store) {
	tb.Helper()
	for _, prefix := range []string{ipamPrefix, datastore.ResourcePrefix} {
		if _, err := s.Client().Delete(context.Background(), prefix, clientv3.WithPrefix()); err != nil {
			tb.Fatal(err)
		}
	}
}

// createPool stores an IPPool; edit adjusts its spec.
func createPool(tb testing.TB, s *datastore.Store, name, cidr string, blockSize int, edit func(*api.IPPoolSpec)) *api.IPPool {
	tb.Helper()
	p := &api.IPPool{ObjectMeta: api.ObjectMeta{Name: name}, Spec: api.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}}
	if edit != nil {
		edit(&p.Spec)
	}
	if err := s.Create(context.Background(), p); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newIPAM(s *datastore.Store, node string, unbatched bool) *IPAM {
	return New(s, Options{Node: node, Unbatched: unbatched})
}

// modes runs a test in both write modes.
func modes(t *testing.T, f func(t *testing.T, unbatched bool)) {
	t.Run("batch", func(t *testing.T) { f(t, false) })
	t.Run("percas", func(t *testing.T) { f(t, true) })
}

// storedBlocks reads every block.
func storedBlocks(tb testing.TB, s *datastore.Store) map[netip.Prefix]*Block {
	tb.Helper()
	kvs, _, err := s.List(context.Background(), blockPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[netip.Prefix]*Block{}
	for _, kv := range kvs {
		b, err := decodeBlock(kv)
		if err != nil {
			tb.Fatal(err)
		}
		out[b.CIDR] = b
	}
	return out
}

// allocations maps every allocated address to its handle.
func allocations(tb testing.TB, s *datastore.Store) map[netip.Addr]string {
	tb.Helper()
	out := map[netip.Addr]string{}
	for _, b := range storedBlocks(tb, s) {
		for ord, a := range b.Allocated() {
			out[b.Addr(ord)] = a.Handle()
		}
	}
	return out
}

// assertConsistent checks the invariants concurrent writers must never break: every handle's per-block
// counts equal the allocations carrying it, every handle an allocation names exists, every block's owner
// holds an affinity for it (still pending if its claim was interrupted) and no other node holds a
// confirmed one.
func assertConsistent(tb testing.TB, s *datastore.Store) {
	tb.Helper()
	rep, err := New(s, Options{}).Check(context.Background(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range rep.Handles {
		tb.Errorf("handle %s block %s: recorded %d, allocated %d (missing record: %v)", p.Handle, p.Block, p.Recorded, p.Actual, p.Missing)
	}
	kvs, _, err := s.List(context.Background(), hostPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	holders := map[netip.Prefix]map[string]affinity{}
	for _, kv := range kvs {
		node, cidr, ok := parseAffinityKey(kv.Key)
		var a affinity
		if !ok || json.Unmarshal(kv.Value, &a) != nil {
			tb.Errorf("bad affinity %s = %s", kv.Key, kv.Value)
			continue
		}
		if holders[cidr] == nil {
			holders[cidr] = map[string]affinity{}
		}
		holders[cidr][node] = a
	}
	for cidr, b := range storedBlocks(tb, s) {
		owner := b.Owner()
		if _, ok := holders[cidr][owner]; owner != "" && !ok {
			tb.Errorf("block %s owned by %q, which holds no affinity for it", cidr, owner)
		}
		for node, a := range holders[cidr] {
			if node != owner && a.confirmed() {
				tb.Errorf("block %s owned by %q but %q holds a confirmed affinity for it", cidr, owner, node)
			}
		}
	}
}
