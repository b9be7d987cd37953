package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

var bg = context.Background()

func TestAutoAssignWritesCalicoRecords(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "default-ipv4-ippool", "192.168.0.0/16", 26, nil)
		m := newIPAM(testStore, "host1", unbatched)
		before := time.Now().UTC().Truncate(time.Second)
		ip, pool, err := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.ep1", Attrs: map[string]string{"libnetwork-container": "web"}})
		if err != nil {
			t.Fatal(err)
		}
		if pool.Name != "default-ipv4-ippool" {
			t.Errorf("pool %q", pool.Name)
		}
		block := blockFor(ip, 26)
		kv, err := testStore.Get(bg, "/calico/ipam/v2/assignment/ipv4/block/"+strings.Replace(block.String(), "/", "-", 1))
		if err != nil {
			t.Fatal(err)
		}
		raw := decodeGeneric(t, kv.Value)
		if raw["affinity"] != "host:host1" || raw["cidr"] != block.String() {
			t.Errorf("block: %s", kv.Value)
		}
		attrs := raw["attributes"].([]any)[0].(map[string]any)
		sec := attrs["secondary"].(map[string]any)
		ts, err := time.Parse(time.RFC3339, sec["timestamp"].(string))
		if attrs["handle_id"] != "libnetwork.ep1" || sec["node"] != "host1" || sec["libnetwork-container"] != "web" || err != nil || ts.Before(before) {
			t.Errorf("attributes: %v", attrs)
		}
		h, err := testStore.Get(bg, "/calico/ipam/v2/handle/libnetwork.ep1")
		if err != nil || string(h.Value) != `{"block":{"`+block.String()+`":1},"deleted":false}` {
			t.Errorf("handle: %s %v", h.Value, err)
		}
		aff, err := testStore.Get(bg, "/calico/ipam/v2/host/host1/ipv4/block/"+strings.Replace(block.String(), "/", "-", 1))
		if err != nil || string(aff.Value) != `{"state":"confirmed","deleted":false}` {
			t.Errorf("affinity: %s %v", aff.Value, err)
		}
		// The next address comes from the same block.
		ip2, _, err := m.AutoAssign(bg, Request{Family: 4})
		if err != nil || !block.Contains(ip2) || ip2 == ip {
			t.Errorf("second address %s %v", ip2, err)
		}
		assertConsistent(t, testStore)
	})
}

func TestAutoAssignIPv6(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "v6", "fd00:10::/120", 122, nil)
	m := newIPAM(testStore, "host1", false)
	ip, _, err := m.AutoAssign(bg, Request{Family: 6, Handle: "libnetwork.v6"})
	if err != nil || !ip.Is6() || !netip.MustParsePrefix("fd00:10::/120").Contains(ip) {
		t.Fatalf("%s %v", ip, err)
	}
	if _, err := testStore.Get(bg, "/calico/ipam/v2/assignment/ipv6/block/"+cidrSegment(blockFor(ip, 122))); err != nil {
		t.Error(err)
	}
	if _, _, err := m.AutoAssign(bg, Request{Family: 4}); err == nil || err.Error() != "no enabled IPv4 pool" {
		t.Errorf("IPv4 with only an IPv6 pool: %v", err)
	}
}

func TestExhaustion(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "default-ipv4-ippool", "192.168.0.0/30", 30, nil)
		m := newIPAM(testStore, "host1", unbatched)
		seen := map[netip.Addr]bool{}
		for range 4 {
			ip, _, err := m.AutoAssign(bg, Request{Family: 4})
			if err != nil || seen[ip] {
				t.Fatalf("%s %v", ip, err)
			}
			seen[ip] = true
		}
		_, _, err := m.AutoAssign(bg, Request{Family: 4})
		if err == nil || err.Error() != `IPv4 pool "default-ipv4-ippool" (192.168.0.0/30) is exhausted` || !errors.Is(err, ErrExhausted) {
			t.Errorf("exhausted pool: %v", err)
		}
	})
}

func TestNoPool(t *testing.T) {
	reset(t, testStore)
	m := newIPAM(testStore, "host1", false)
	if _, _, err := m.AutoAssign(bg, Request{Family: 4}); err == nil || err.Error() != "no enabled IPv4 pool" || !errors.Is(err, ErrNoPool) {
		t.Errorf("no pools: %v", err)
	}
	if _, _, err := m.AutoAssign(bg, Request{Family: 5}); err == nil {
		t.Error("family 5 accepted")
	}
	if _, _, err := m.AutoAssign(bg, Request{Family: 4, Pools: []string{"nope"}}); err == nil || err.Error() != `IP pool "nope" not found` {
		t.Errorf("unknown pool: %v", err)
	}
}

func TestPoolSelection(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "a-disabled", "10.1.0.0/24", 26, func(s *api.IPPoolSpec) { s.Disabled = true })
	createPool(t, testStore, "b-manual", "10.2.0.0/24", 26, func(s *api.IPPoolSpec) { s.AssignmentMode = api.AssignManual })
	createPool(t, testStore, "c-rack", "10.3.0.0/24", 26, func(s *api.IPPoolSpec) { s.NodeSelector = `rack == "r1"` })
	createPool(t, testStore, "d-tunnel", "10.4.0.0/24", 26, func(s *api.IPPoolSpec) { s.AllowedUses = []string{"Tunnel"} })
	createPool(t, testStore, "v6", "fd00::/120", 122, nil)
	m := newIPAM(testStore, "host1", false)
	if _, _, err := m.AutoAssign(bg, Request{Family: 4}); err == nil || err.Error() != `no enabled IPv4 pool selects node "host1"` {
		t.Fatalf("only unusable pools: %v", err)
	}
	node := &api.Node{ObjectMeta: api.ObjectMeta{Name: "host1", Labels: map[string]string{"rack": "r1"}}}
	if err := testStore.Create(bg, node); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		ip, pool, err := m.AutoAssign(bg, Request{Family: 4})
		if err != nil || pool.Name != "c-rack" || !netip.MustParsePrefix("10.3.0.0/24").Contains(ip) {
			t.Fatalf("selected pool: %s %v %v", ip, pool, err)
		}
	}
	ip, pool, err := m.AutoAssign(bg, Request{Family: 4, Pools: []string{"b-manual"}})
	if err != nil || pool.Name != "b-manual" || !netip.MustParsePrefix("10.2.0.0/24").Contains(ip) {
		t.Errorf("named manual pool: %s %v", ip, err)
	}
	for name, want := range map[string]string{
		"a-disabled": `IP pool "a-disabled" (10.1.0.0/24) is disabled`,
		"d-tunnel":   `IP pool "d-tunnel" (10.4.0.0/24) does not allow Workload addresses`,
		"v6":         `IP pool "v6" (fd00::/120) is not an IPv4 pool`,
	} {
		if _, _, err := m.AutoAssign(bg, Request{Family: 4, Pools: []string{name}}); err == nil || err.Error() != want {
			t.Errorf("pool %s: %v, want %s", name, err, want)
		}
	}
	for cidr := range storedBlocks(t, testStore) {
		if !netip.MustParsePrefix("10.3.0.0/24").Contains(cidr.Addr()) && !netip.MustParsePrefix("10.2.0.0/24").Contains(cidr.Addr()) {
			t.Errorf("block %s claimed in an unusable pool", cidr)
		}
	}
}

func TestAssignIP(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "default-ipv4-ippool", "192.168.0.0/16", 26, nil)
		createPool(t, testStore, "off", "10.8.0.0/16", 26, func(s *api.IPPoolSpec) { s.Disabled = true })
		m := newIPAM(testStore, "host1", unbatched)
		ip := netip.MustParseAddr("192.168.0.5")
		pool, err := m.AssignIP(bg, ip, "libnetwork.a", nil)
		if err != nil || pool.Name != "default-ipv4-ippool" {
			t.Fatalf("AssignIP: %v %v", pool, err)
		}
		b := storedBlocks(t, testStore)[netip.MustParsePrefix("192.168.0.0/26")]
		if b == nil || b.Owner() != "host1" || b.Attr(5).Handle() != "libnetwork.a" {
			t.Fatalf("block not claimed for the node: %+v", b)
		}
		_, err = newIPAM(testStore, "host2", unbatched).AssignIP(bg, ip, "libnetwork.b", nil)
		if err == nil || err.Error() != "address 192.168.0.5 is already in use" || !errors.Is(err, ErrInUse) {
			t.Errorf("second AssignIP: %v", err)
		}
		for _, bad := range []string{"10.9.9.9", "10.8.0.1"} {
			_, err = m.AssignIP(bg, netip.MustParseAddr(bad), "", nil)
			if err == nil || err.Error() != bad+" is not in any enabled IP pool" {
				t.Errorf("AssignIP %s: %v", bad, err)
			}
		}
		// Another node may take a free address of host1's block (Calico borrows for AssignIP too).
		if _, err := newIPAM(testStore, "host2", unbatched).AssignIP(bg, netip.MustParseAddr("192.168.0.6"), "", nil); err != nil {
			t.Errorf("AssignIP in another node's block: %v", err)
		}
		// AutoAssign continues after the specific addresses.
		got, _, err := m.AutoAssign(bg, Request{Family: 4})
		if err != nil || got == ip || got.String() == "192.168.0.6" {
			t.Errorf("AutoAssign after AssignIP: %s %v", got, err)
		}
		assertConsistent(t, testStore)
	})
}

func TestRelease(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "default-ipv4-ippool", "192.168.0.0/16", 26, nil)
		m := newIPAM(testStore, "host1", unbatched)
		ip, _, err := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.x"})
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"0.0.0.0", "::", "192.168.0.63", "172.16.0.1", "fd00::1"} {
			if ok, err := m.ReleaseIP(bg, netip.MustParseAddr(other)); ok || err != nil {
				t.Errorf("ReleaseIP(%s) = %v %v, want false nil", other, ok, err)
			}
		}
		if ok, err := m.ReleaseIP(bg, ip); !ok || err != nil {
			t.Fatalf("ReleaseIP = %v %v", ok, err)
		}
		if ok, err := m.ReleaseIP(bg, ip); ok || err != nil {
			t.Errorf("second ReleaseIP = %v %v", ok, err)
		}
		if _, err := testStore.Get(bg, handleKey("libnetwork.x")); !errors.Is(err, datastore.ErrNotFound) {
			t.Errorf("handle left after its last address: %v", err)
		}
		// The affine block stays, empty.
		if b := storedBlocks(t, testStore)[blockFor(ip, 26)]; b == nil || b.InUse() != 0 {
			t.Errorf("affine block after release: %+v", b)
		}
		assertConsistent(t, testStore)
	})
}

func TestReleaseDeletesEmptyUnaffineBlock(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "p", "10.0.0.0/24", 26, nil)
	m := newIPAM(testStore, "host1", false)
	ip, _, err := m.AutoAssign(bg, Request{Family: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Make the block unaffine, as Calico does when a node gives up a block that still has addresses.
	key := BlockKey(blockFor(ip, 26))
	kv, _ := testStore.Get(bg, key)
	b, _ := decodeBlock(kv)
	b.SetOwner("")
	if _, err := testStore.Txn(bg, datastore.Put(key, mustJSON(b), kv.Revision)); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.ReleaseIP(bg, ip); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := testStore.Get(bg, key); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("empty unaffine block kept: %v", err)
	}
}

func TestReleaseByHandle(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "v4", "10.0.0.0/24", 26, nil)
		createPool(t, testStore, "v6", "fd00::/120", 122, nil)
		m := newIPAM(testStore, "host1", unbatched)
		var mine []netip.Addr
		for _, fam := range []int{4, 4, 6} {
			ip, _, err := m.AutoAssign(bg, Request{Family: fam, Handle: "libnetwork.multi"})
			if err != nil {
				t.Fatal(err)
			}
			mine = append(mine, ip)
		}
		other, _, _ := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.other"})
		kv, _ := testStore.Get(bg, handleKey("libnetwork.multi"))
		want := `{"block":{"` + blockFor(mine[0], 26).String() + `":2,"` + blockFor(mine[2], 122).String() + `":1},"deleted":false}`
		if string(kv.Value) != want {
			t.Errorf("handle %s, want %s", kv.Value, want)
		}
		if err := m.ReleaseByHandle(bg, "libnetwork.multi"); err != nil {
			t.Fatal(err)
		}
		got := allocations(t, testStore)
		for _, ip := range mine {
			if _, ok := got[ip]; ok {
				t.Errorf("%s still allocated", ip)
			}
		}
		if got[other] != "libnetwork.other" {
			t.Errorf("other handle's address lost: %v", got)
		}
		if err := m.ReleaseByHandle(bg, "libnetwork.unknown"); err != nil {
			t.Errorf("unknown handle: %v", err)
		}
		assertConsistent(t, testStore)
	})
}

func TestSetAttributes(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "p", "10.0.0.0/24", 26, nil)
		m := newIPAM(testStore, "host1", unbatched)
		ip, _, _ := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.e", Attrs: map[string]string{"a": "1"}})
		peer, _, _ := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.e", Attrs: map[string]string{"a": "1"}})
		if err := m.SetAttributes(bg, ip, map[string]string{"endpoint": "ep1", "a": "2"}); err != nil {
			t.Fatal(err)
		}
		info, err := m.Allocation(bg, ip)
		if err != nil || info.Attrs["endpoint"] != "ep1" || info.Attrs["a"] != "2" || info.Attrs["node"] != "host1" || info.Handle != "libnetwork.e" {
			t.Errorf("after SetAttributes: %+v %v", info, err)
		}
		if info, _ := m.Allocation(bg, peer); info.Attrs["endpoint"] != "" {
			t.Errorf("attributes shared with another allocation changed: %v", info.Attrs)
		}
		err = m.SetAttributes(bg, netip.MustParseAddr("10.0.0.77"), map[string]string{"x": "y"})
		if !errors.Is(err, ErrNotAllocated) {
			t.Errorf("SetAttributes on a free address: %v", err)
		}
		assertConsistent(t, testStore)
	})
}

func TestBorrowing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		strict func(*IPAM) error
		pool   func(*api.IPPoolSpec)
	}{
		{name: "borrow"},
		{name: "config-strict", strict: func(m *IPAM) error {
			return m.UpdateConfig(bg, func(c *Config) { c.StrictAffinity = true })
		}},
		{name: "pool-strict", pool: func(s *api.IPPoolSpec) { s.StrictAffinity = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reset(t, testStore)
			createPool(t, testStore, "small", "10.0.0.0/25", 26, tc.pool)
			a, b := newIPAM(testStore, "nodeA", false), newIPAM(testStore, "nodeB", true)
			for range 65 { // fills one block and claims the other
				if _, _, err := a.AutoAssign(bg, Request{Family: 4}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.strict != nil {
				if err := tc.strict(a); err != nil {
					t.Fatal(err)
				}
			}
			ip, _, err := b.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.b"})
			if tc.name != "borrow" {
				if err == nil || err.Error() != `IPv4 pool "small" (10.0.0.0/25) is exhausted` {
					t.Errorf("strict affinity: got %s %v", ip, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, _ := b.Allocation(bg, ip)
			if info.BlockNode != "nodeA" || info.Attrs["node"] != "nodeB" {
				t.Errorf("borrowed allocation: %+v", info)
			}
			if blocks := storedBlocks(t, testStore); len(blocks) != 2 {
				t.Errorf("%d blocks", len(blocks))
			}
			assertConsistent(t, testStore)
		})
	}
}

// Concurrent updates of different fields of the IPAM configuration all take effect.
func TestUpdateConfigConcurrently(t *testing.T) {
	reset(t, testStore)
	m := newIPAM(testStore, "host1", false)
	var wg sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.UpdateConfig(bg, func(c *Config) {
				if i == 8 {
					c.StrictAffinity = true
				} else {
					c.MaxBlocksPerHost = max(c.MaxBlocksPerHost, i)
				}
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c, err := m.Config(bg); err != nil || !c.StrictAffinity || c.MaxBlocksPerHost != 7 {
		t.Errorf("after concurrent updates: %+v %v", c, err)
	}
}

func TestAutoAllocateBlocksOff(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "p", "10.0.0.0/24", 26, nil)
	m := newIPAM(testStore, "host1", false)
	if err := m.UpdateConfig(bg, func(c *Config) { c.StrictAffinity, c.AutoAllocateBlocks = true, false }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.AutoAssign(bg, Request{Family: 4}); !errors.Is(err, ErrExhausted) {
		t.Errorf("claimed a block with auto_allocate_blocks off: %v", err)
	}
	if err := m.UpdateConfig(bg, func(c *Config) { c.StrictAffinity = false }); err == nil {
		t.Error("both false accepted")
	}
	kv, _ := testStore.Get(bg, configKey)
	if string(kv.Value) != `{"strict_affinity":true,"auto_allocate_blocks":false}` {
		t.Errorf("config: %s", kv.Value)
	}
}

func TestUses2018Block(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "p", "192.168.0.0/16", 30, nil)
		cidr := netip.MustParsePrefix("192.168.0.0/30")
		if _, err := testStore.Txn(bg, datastore.Put(BlockKey(cidr), []byte(block2018), 0),
			datastore.Put(affinityKey("test", cidr), []byte(`{"state":"confirmed","deleted":false}`), 0)); err != nil {
			t.Fatal(err)
		}
		m := newIPAM(testStore, "test", unbatched)
		ip, _, err := m.AutoAssign(bg, Request{Family: 4})
		if err != nil || ip.String() != "192.168.0.1" {
			t.Fatalf("%s %v", ip, err)
		}
		if ok, err := m.ReleaseIP(bg, netip.MustParseAddr("192.168.0.0")); !ok || err != nil {
			t.Errorf("releasing the handle-less 2018 allocation: %v %v", ok, err)
		}
		kv, _ := testStore.Get(bg, BlockKey(cidr))
		var raw map[string]any
		_ = json.Unmarshal(kv.Value, &raw)
		if raw["strictAffinity"] != false || raw["unallocated"] == nil {
			t.Errorf("rewritten 2018 block: %s", kv.Value)
		}
		assertConsistent(t, testStore)
	})
}

func TestDeletePool(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "gone", "10.5.0.0/24", 26, nil)
	createPool(t, testStore, "kept", "10.6.0.0/24", 26, nil)
	m := newIPAM(testStore, "host1", false)
	ip, _, _ := m.AutoAssign(bg, Request{Family: 4, Pools: []string{"gone"}, Handle: "libnetwork.g"})
	kept, _, _ := m.AutoAssign(bg, Request{Family: 4, Pools: []string{"kept"}, Handle: "libnetwork.k"})
	err := m.DeletePool(bg, "gone", false)
	if err == nil || !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), `IP pool "gone" (10.5.0.0/24) still has 1 addresses in use`) {
		t.Fatalf("delete of a pool in use: %v", err)
	}
	if p, _ := datastore.Get[*api.IPPool](bg, testStore, "", "gone"); p == nil || p.Spec.Disabled {
		t.Fatalf("refused deletion changed the pool: %+v", p)
	}
	if err := m.DeletePool(bg, "gone", true); err != nil {
		t.Fatal(err)
	}
	if _, err := datastore.Get[*api.IPPool](bg, testStore, "", "gone"); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("pool still there: %v", err)
	}
	got := allocations(t, testStore)
	if _, ok := got[ip]; ok || got[kept] != "libnetwork.k" {
		t.Errorf("allocations after delete: %v", got)
	}
	kvs, _, _ := testStore.List(bg, hostPrefix)
	for _, kv := range kvs {
		if strings.Contains(kv.Key, "10.5.") {
			t.Errorf("affinity left: %s", kv.Key)
		}
	}
	if _, err := testStore.Get(bg, handleKey("libnetwork.g")); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("handle of a force-released address left: %v", err)
	}
	if err := m.DeletePool(bg, "kept", false); !errors.Is(err, ErrInUse) {
		t.Errorf("kept: %v", err)
	}
	m.ReleaseIP(bg, kept)
	if err := m.DeletePool(bg, "kept", false); err != nil {
		t.Errorf("delete of an empty pool: %v", err)
	}
	if n := len(storedBlocks(t, testStore)); n != 0 {
		t.Errorf("%d blocks left", n)
	}
	assertConsistent(t, testStore)
}
