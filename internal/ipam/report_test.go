package ipam

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func TestUsage(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "v4", "10.0.0.0/24", 26, nil)
	createPool(t, testStore, "v6", "fd00::/64", 122, nil)
	a, b := newIPAM(testStore, "a", false), newIPAM(testStore, "b", false)
	for range 3 {
		a.AutoAssign(bg, Request{Family: 4})
	}
	b.AutoAssign(bg, Request{Family: 4})
	usage, err := a.Usage(bg)
	if err != nil || len(usage) != 2 {
		t.Fatalf("%v %v", usage, err)
	}
	v4, v6 := usage[0], usage[1]
	if v4.Pool.Name != "v4" || v4.Size != 256 || v4.InUse != 4 || v4.Free() != 252 || len(v4.Blocks) != 2 {
		t.Errorf("v4 usage: %+v", v4)
	}
	for _, blk := range v4.Blocks {
		if blk.Size != 64 || (blk.Node == "a") != (blk.InUse == 3) {
			t.Errorf("block usage: %+v", blk)
		}
	}
	if v6.Size != 1<<64 || v6.InUse != 0 || len(v6.Blocks) != 0 {
		t.Errorf("v6 usage: %+v", v6)
	}
}

func TestCheckAndAllocation(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "p", "10.0.0.0/24", 26, nil)
	m := newIPAM(testStore, "host1", false)
	used, _, _ := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.used", Attrs: map[string]string{"k": "v"}})
	leaked, _, _ := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.leaked"})
	ghost := netip.MustParseAddr("10.0.0.200")

	info, err := m.Allocation(bg, used)
	if err != nil || info.Handle != "libnetwork.used" || info.Attrs["k"] != "v" || info.BlockNode != "host1" || info.Block != blockFor(used, 26) {
		t.Errorf("Allocation: %+v %v", info, err)
	}
	if _, err := m.Allocation(bg, ghost); !errors.Is(err, ErrNotAllocated) || err.Error() != "10.0.0.200 is not assigned" {
		t.Errorf("Allocation of a free address: %v", err)
	}

	// Break one handle record the way a crashed old writer could.
	if _, err := testStore.Txn(bg, datastore.Put(handleKey("libnetwork.stale"), []byte(`{"block":{"10.0.0.0/26":2},"deleted":false}`), 0)); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Check(bg, map[netip.Addr]bool{used: true, ghost: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Allocations != 2 || len(rep.Leaked) != 1 || rep.Leaked[0].IP != leaked || len(rep.NotAllocated) != 1 || rep.NotAllocated[0] != ghost {
		t.Errorf("report: %+v", rep)
	}
	if len(rep.Handles) != 1 || rep.Handles[0] != (HandleProblem{Handle: "libnetwork.stale", Block: netip.MustParsePrefix("10.0.0.0/26"), Recorded: 2}) {
		t.Errorf("handle problems: %+v", rep.Handles)
	}
	if rep.Problems() != 3 || len(rep.Unaffine) != 0 {
		t.Errorf("problems %d unaffine %v", rep.Problems(), rep.Unaffine)
	}
}
