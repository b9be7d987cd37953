package ipam

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

func TestCollector(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "p", "10.0.0.0/24", 26, nil)
	m := newIPAM(testStore, "host1", false)
	assign := func(m *IPAM, handle string) netip.Addr {
		ip, _, err := m.AutoAssign(bg, Request{Family: 4, Handle: handle})
		if err != nil {
			t.Fatal(err)
		}
		return ip
	}
	dead, alive, foreign := assign(m, "libnetwork.dead"), assign(m, "libnetwork.alive"), assign(m, "k8s-pod-network.x")
	other := assign(newIPAM(testStore, "host2", false), "libnetwork.other")

	now := time.Now()
	var asked []netip.Addr
	c := &Collector{IPAM: m, Grace: time.Minute, Now: func() time.Time { return now },
		IsLive: func(_ context.Context, a AllocationInfo) (bool, error) {
			asked = append(asked, a.IP)
			return a.Handle == "libnetwork.alive", nil
		}}
	run := func(step string, want ...netip.Addr) {
		t.Helper()
		got, err := c.RunOnce(bg)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: released %v (%v), want %v", step, got, err, want)
		}
	}
	run("young allocations")
	if len(asked) != 0 {
		t.Errorf("asked about allocations younger than the grace period: %v", asked)
	}
	now = now.Add(2 * time.Minute)
	run("first seen dead")
	now = now.Add(30 * time.Second)
	run("dead for less than the grace period")
	now = now.Add(31 * time.Second)
	run("dead for longer than the grace period", dead)
	for _, ip := range asked {
		if ip == foreign || ip == other {
			t.Errorf("asked about %s, which is not this node's libnetwork allocation", ip)
		}
	}
	got := allocations(t, testStore)
	if _, ok := got[dead]; ok || got[alive] == "" || got[foreign] == "" || got[other] == "" {
		t.Errorf("allocations after collection: %v", got)
	}

	// Once host1's block is empty for the grace period, it is given up; host2's is not touched.
	for _, ip := range []netip.Addr{alive, foreign} {
		if _, err := m.ReleaseIP(bg, ip); err != nil {
			t.Fatal(err)
		}
	}
	run("block empty")
	now = now.Add(2 * time.Minute)
	run("block empty for longer than the grace period")
	mine := blockFor(dead, 26)
	if _, err := testStore.Get(bg, BlockKey(mine)); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("empty block kept: %v", err)
	}
	if _, err := testStore.Get(bg, affinityKey("host1", mine)); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("affinity of the empty block kept: %v", err)
	}
	if _, err := testStore.Get(bg, BlockKey(blockFor(other, 26))); err != nil {
		t.Errorf("other node's block: %v", err)
	}
	assertConsistent(t, testStore)
}

func TestCollectorKeepsReusedAddress(t *testing.T) {
	reset(t, testStore)
	createPool(t, testStore, "p", "10.0.0.0/24", 26, nil)
	m := newIPAM(testStore, "host1", false)
	ip, _, _ := m.AutoAssign(bg, Request{Family: 4, Handle: "libnetwork.old"})
	now := time.Now().Add(time.Hour)
	c := &Collector{IPAM: m, Grace: time.Minute, Now: func() time.Time { return now },
		IsLive: func(context.Context, AllocationInfo) (bool, error) { return false, nil }}
	if _, err := c.RunOnce(bg); err != nil {
		t.Fatal(err)
	}
	// The address is released and handed to a new endpoint before the collector looks again: the new
	// allocation has its own clock.
	m.ReleaseIP(bg, ip)
	if _, err := m.AssignIP(bg, ip, "libnetwork.new", nil); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if got, err := c.RunOnce(bg); err != nil || len(got) != 0 {
		t.Errorf("released %v (%v): the new allocation was only seen dead now", got, err)
	}
	now = now.Add(2 * time.Minute)
	if got, err := c.RunOnce(bg); err != nil || !slices.Equal(got, []netip.Addr{ip}) {
		t.Errorf("released %v (%v), want %s", got, err, ip)
	}
}
