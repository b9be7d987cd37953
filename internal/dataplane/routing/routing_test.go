package routing

import (
	"encoding/json"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// The view is withheld until every watch has listed once, and follows puts and deletes after that.
func TestSnapshot(t *testing.T) {
	r := New(Config{Node: "a"}, nil, quietLog())
	nodeKV := func(name, addr string) datastore.KV {
		data, _ := json.Marshal(testNode(name, addr, "", ""))
		return datastore.KV{Key: "/calico/resources/v3/projectcalico.org/nodes/" + name, Value: data, Revision: 1}
	}
	blockKV := func(cidr, owner string) datastore.KV {
		data, _ := json.Marshal(testBlock(cidr, owner, nil))
		return datastore.KV{Key: blockPrefix + "ipv4/block/" + cidr, Value: data, Revision: 1}
	}
	r.nodes.apply(datastore.Event{Type: datastore.EventResync, Snapshot: []datastore.KV{nodeKV("a", "198.18.0.11/24")}})
	r.pools.apply(datastore.Event{Type: datastore.EventResync})
	felixKV := func(name, spec string) datastore.KV {
		return datastore.KV{Key: "/calico/resources/v3/projectcalico.org/felixconfigurations/" + name, Revision: 1,
			Value: []byte(`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"` + name + `"},"spec":` + spec + `}`)}
	}
	r.felix.apply(datastore.Event{Type: datastore.EventResync, Snapshot: []datastore.KV{
		felixKV("default", `{"vxlanVNI":4097,"vxlanPort":8472}`), felixKV("node.a", `{"vxlanVNI":4098}`),
		felixKV("node.b", `{"vxlanMTU":1300}`)}})
	if _, ok := r.snapshot(); ok {
		t.Fatal("snapshot before the blocks were listed")
	}
	r.blocks.apply(datastore.Event{Type: datastore.EventResync, Snapshot: []datastore.KV{blockKV("198.19.0.0/26", "b")}})
	r.nodes.apply(datastore.Event{Type: datastore.EventPut, KV: nodeKV("b", "198.18.0.12/24")})
	v, ok := r.snapshot()
	if !ok || len(v.nodes) != 2 || v.nodes["b"] == nil || len(v.blocks) != 1 {
		t.Fatalf("snapshot %+v, %v", v, ok)
	}
	// This node's configuration overrides default field by field; another node's does not apply.
	if f := v.felix; f.VXLANVNI == nil || *f.VXLANVNI != 4098 || f.VXLANPort == nil || *f.VXLANPort != 8472 || f.VXLANMTU != nil {
		t.Errorf("Felix settings %+v, want VNI 4098 (node.a), port 8472 (default), no MTU", f)
	}
	if got := describe(v.compute()); got != "198.19.0.0/26 via 198.18.0.12" {
		t.Errorf("routes %q", got)
	}

	// An invalid FelixConfiguration counts as none: Calico's defaults apply.
	r.felix.apply(datastore.Event{Type: datastore.EventPut, KV: felixKV("default", `{"vxlanVNI":0}`)})
	r.felix.apply(datastore.Event{Type: datastore.EventDelete, KV: datastore.KV{Key: felixKV("node.a", "").Key}})
	if v, _ := r.snapshot(); v.felix.VXLANVNI != nil || v.felix.VXLANPort != nil {
		t.Errorf("invalid FelixConfiguration used: %+v", v.felix)
	}

	// A listing in pages (a resync after compaction) keeps what it has not reached yet, and drops what it
	// did not contain only after its last page.
	r.blocks.apply(datastore.Event{Type: datastore.EventPut, KV: blockKV("198.19.1.0/26", "a")})
	r.blocks.apply(datastore.Event{Type: datastore.EventResync, Revision: 9, More: true, Snapshot: []datastore.KV{blockKV("198.19.0.0/26", "a")}})
	if v, _ := r.snapshot(); len(v.blocks) != 2 {
		t.Errorf("blocks during a paged listing: %+v", v.blocks)
	}
	r.blocks.apply(datastore.Event{Type: datastore.EventResync, Revision: 9, Snapshot: []datastore.KV{blockKV("198.19.2.0/26", "a")}})
	if v, _ := r.snapshot(); len(v.blocks) != 2 || r.blocks.items[blockKV("198.19.1.0/26", "").Key].owner != "" {
		t.Errorf("blocks after the paged listing: %+v", v.blocks)
	}
	r.blocks.apply(datastore.Event{Type: datastore.EventResync, Snapshot: []datastore.KV{blockKV("198.19.0.0/26", "b")}})

	// A damaged value and a delete both drop the entry.
	r.blocks.apply(datastore.Event{Type: datastore.EventPut, KV: datastore.KV{Key: blockKV("198.19.0.0/26", "b").Key, Value: []byte("{")}})
	r.nodes.apply(datastore.Event{Type: datastore.EventDelete, KV: datastore.KV{Key: nodeKV("b", "").Key}})
	if v, _ := r.snapshot(); len(v.blocks) != 0 || len(v.nodes) != 1 {
		t.Errorf("after damage and delete: %+v", v)
	}
}

// A block change reaches the routes only when what they depend on changes: the block's existence, CIDR,
// owner, or an address borrowed by another node; the owner's own allocations route nothing.
func TestBlockChangesThatRoute(t *testing.T) {
	c := cache[blockRoute]{decode: decodeBlock, items: map[string]blockRoute{}, same: blockRoute.equal}
	put := func(b *ipam.Block) bool {
		value, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return c.apply(datastore.Event{Type: datastore.EventPut, KV: datastore.KV{Key: "b", Value: value}})
	}
	for _, step := range []struct {
		what   string
		block  *ipam.Block
		routes bool
	}{
		{"a new block", testBlock("10.65.0.0/26", "host2", nil), true},
		{"the owner's allocation", testBlock("10.65.0.0/26", "host2", map[int]string{0: "host2", 1: ""}), false},
		{"an address borrowed by host3", testBlock("10.65.0.0/26", "host2", map[int]string{0: "host2", 5: "host3"}), true},
		{"the same again", testBlock("10.65.0.0/26", "host2", map[int]string{0: "host2", 5: "host3"}), false},
		{"a new owner", testBlock("10.65.0.0/26", "host3", map[int]string{0: "host2", 5: "host3"}), true},
	} {
		if got := put(step.block); got != step.routes {
			t.Errorf("%s: reaches the routes %v, want %v", step.what, got, step.routes)
		}
	}
	if !c.apply(datastore.Event{Type: datastore.EventDelete, KV: datastore.KV{Key: "b"}}) {
		t.Error("a deleted block does not reach the routes")
	}
	if c.apply(datastore.Event{Type: datastore.EventDelete, KV: datastore.KV{Key: "b"}}) {
		t.Error("deleting a block that is not there reaches the routes")
	}
}
