package ipam

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

// block2018 is the 2018-era libnetwork block from the research notes (allocation without handle).
const block2018 = `{"cidr":"192.168.0.0/30","affinity":"host:test","strictAffinity":false,
 "allocations":[0,null,null,null],"unallocated":[1,2,3],
 "attributes":[{"handle_id":null,"secondary":null}]}`

// blockCurrent has every field current Calico writes, plus members this version does not know.
const blockCurrent = `{"cidr":"fd00:10::/126","affinity":"host:node1","affinity_claim_time":"2024-05-01T10:00:00Z",
 "allocations":[0,null,1,null],"unallocated":[3,1],
 "attributes":[{"handle_id":"k8s-pod-network.abc","secondary":{"namespace":"default","node":"node1","pod":"web"}},
  {"handle_id":"vxlan-v6-tunnel-addr-node1","secondary":{"node":"node1","type":"vxlanV6TunnelAddress"},"releasedAt":"2024-05-01T10:01:00Z"}],
 "sequenceNumber":1714557600000000007,"sequenceNumberForAllocation":{"0":1714557600000000003,"2":1714557600000000005},
 "deleted":false,"futureField":{"x":[1,2]}}`

func decodeGeneric(t *testing.T, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return m
}

func TestBlockJSONRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		owner    string
		inUse    int
		added    []string // members we write that the input lacked
	}{
		{"2018", block2018, "test", 1, []string{"sequenceNumber", "deleted"}},
		{"current", blockCurrent, "node1", 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Block
			if err := json.Unmarshal([]byte(tc.in), &b); err != nil {
				t.Fatal(err)
			}
			if b.Owner() != tc.owner || b.InUse() != tc.inUse {
				t.Fatalf("owner %q inUse %d, want %q %d", b.Owner(), b.InUse(), tc.owner, tc.inUse)
			}
			out, err := json.Marshal(&b)
			if err != nil {
				t.Fatal(err)
			}
			in, got := decodeGeneric(t, []byte(tc.in)), decodeGeneric(t, out)
			for _, k := range tc.added {
				delete(got, k)
			}
			if !reflect.DeepEqual(in, got) {
				t.Errorf("round trip changed the block:\n in: %v\nout: %v", in, got)
			}
		})
	}
}

func TestBlockKeepsUnknownFieldsAcrossChanges(t *testing.T) {
	var b Block
	if err := json.Unmarshal([]byte(blockCurrent), &b); err != nil {
		t.Fatal(err)
	}
	ord, ok := b.AssignNext(newAttribute("h1", map[string]string{"node": "node1"}))
	if !ok || ord != 3 {
		t.Fatalf("AssignNext = %d %v, want 3 (head of the free list)", ord, ok)
	}
	b.Release(0)
	b.Compact()
	got := decodeGeneric(t, mustJSON(&b))
	if got["futureField"] == nil {
		t.Error("unknown block member futureField was dropped")
	}
	attrs := got["attributes"].([]any)
	if len(attrs) != 2 || attrs[0].(map[string]any)["releasedAt"] == nil {
		t.Errorf("attribute member releasedAt lost or attributes not compacted: %v", attrs)
	}

	var old Block
	if err := json.Unmarshal([]byte(block2018), &old); err != nil {
		t.Fatal(err)
	}
	old.AssignNext(newAttribute("", nil))
	if got := decodeGeneric(t, mustJSON(&old)); got["strictAffinity"] != false {
		t.Errorf("2018 member strictAffinity not kept: %v", got)
	}
}

func TestBlockReadsLegacyHostAffinity(t *testing.T) {
	var b Block
	in := `{"cidr":"10.0.0.0/31","affinity":null,"hostAffinity":"old","allocations":[null,null],"unallocated":[0,1],"attributes":[]}`
	if err := json.Unmarshal([]byte(in), &b); err != nil {
		t.Fatal(err)
	}
	if b.Owner() != "old" {
		t.Errorf("owner %q, want old", b.Owner())
	}
}

func TestBlockRejectsDamage(t *testing.T) {
	for name, in := range map[string]string{
		"short allocations": `{"cidr":"10.0.0.0/30","allocations":[null],"unallocated":[],"attributes":[]}`,
		"bad index":         `{"cidr":"10.0.0.0/31","allocations":[3,null],"unallocated":[1],"attributes":[]}`,
		"no cidr":           `{"allocations":[],"unallocated":[],"attributes":[]}`,
	} {
		var b Block
		if err := json.Unmarshal([]byte(in), &b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOrdinals(t *testing.T) {
	for _, tc := range []struct {
		cidr, ip string
		ord      int
	}{
		{"192.168.0.0/26", "192.168.0.0", 0},
		{"192.168.0.0/26", "192.168.0.63", 63},
		{"10.1.255.192/26", "10.1.255.255", 63},
		{"fd00::/122", "fd00::3f", 63},
		{"fd00:0:0:ffff:ffff:ffff:ffff:ffc0/122", "fd00:0:0:ffff:ffff:ffff:ffff:ffc5", 5},
		{"10.0.0.0/32", "10.0.0.0", 0},
	} {
		b := NewBlock(netip.MustParsePrefix(tc.cidr), "n", time.Now())
		ip := netip.MustParseAddr(tc.ip)
		if ord, ok := b.Ordinal(ip); !ok || ord != tc.ord {
			t.Errorf("%s in %s: ordinal %d %v, want %d", ip, tc.cidr, ord, ok, tc.ord)
		}
		if got := b.Addr(tc.ord); got != ip {
			t.Errorf("%s ordinal %d: %s, want %s", tc.cidr, tc.ord, got, ip)
		}
	}
	b := NewBlock(netip.MustParsePrefix("10.0.0.0/30"), "", time.Now())
	if _, ok := b.Ordinal(netip.MustParseAddr("10.0.0.4")); ok {
		t.Error("10.0.0.4 reported inside 10.0.0.0/30")
	}
}

func TestAssignReleaseFIFO(t *testing.T) {
	b := NewBlock(netip.MustParsePrefix("10.0.0.0/30"), "n1", time.Unix(100, 0))
	a := newAttribute("h", map[string]string{"node": "n1"})
	for want := range 2 {
		if ord, ok := b.AssignNext(a); !ok || ord != want {
			t.Fatalf("AssignNext = %d %v, want %d", ord, ok, want)
		}
	}
	if len(b.Attributes) != 1 {
		t.Errorf("equal attributes not shared: %d", len(b.Attributes))
	}
	if b.AssignAt(1, a) {
		t.Error("AssignAt of an allocated ordinal succeeded")
	}
	if !b.AssignAt(3, newAttribute("other", nil)) || !slices.Equal(b.Unallocated, []int{2}) {
		t.Fatalf("AssignAt(3): unallocated %v", b.Unallocated)
	}
	if held := b.Release(0); held == nil || held.Handle() != "h" {
		t.Fatalf("Release(0) = %v", held)
	}
	if b.Release(0) != nil {
		t.Error("second release of 0 returned an attribute")
	}
	if !slices.Equal(b.Unallocated, []int{2, 0}) {
		t.Errorf("released ordinal not appended: %v", b.Unallocated)
	}
	b.Release(1)
	b.Compact()
	if len(b.Attributes) != 1 || b.Attr(3).Handle() != "other" || *b.Allocations[3] != 0 {
		t.Errorf("compaction: attributes %v allocations %v", b.Attributes, b.Allocations)
	}
	if got := b.HandleCounts(); !reflect.DeepEqual(got, map[string]int{"other": 1}) {
		t.Errorf("HandleCounts = %v", got)
	}
	for range 3 {
		b.AssignNext(a)
	}
	if _, ok := b.AssignNext(a); ok || b.HasFree() {
		t.Error("full block handed out another address")
	}
}

func TestNewBlock(t *testing.T) {
	now := time.Unix(1700000000, 5)
	b := NewBlock(netip.MustParsePrefix("10.0.0.5/29"), "n1", now)
	got := decodeGeneric(t, mustJSON(b))
	if got["cidr"] != "10.0.0.0/29" || got["affinity"] != "host:n1" || got["affinity_claim_time"] != "2023-11-14T22:13:20Z" {
		t.Errorf("new block: %v", got)
	}
	if len(got["allocations"].([]any)) != 8 || len(got["unallocated"].([]any)) != 8 || got["attributes"] == nil {
		t.Errorf("new block arrays: %v", got)
	}
	if b.Sequence != uint64(now.UnixNano()) {
		t.Errorf("sequence %d, want the clock", b.Sequence)
	}
}

func TestKeys(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("192.168.0.0/26"), netip.MustParsePrefix("fd00::/122")
	for got, want := range map[string]string{
		BlockKey(v4):              "/calico/ipam/v2/assignment/ipv4/block/192.168.0.0-26",
		BlockKey(v6):              "/calico/ipam/v2/assignment/ipv6/block/fd00::-122",
		affinityKey("h1", v4):     "/calico/ipam/v2/host/h1/ipv4/block/192.168.0.0-26",
		affinityKey("h1", v6):     "/calico/ipam/v2/host/h1/ipv6/block/fd00::-122",
		handleKey("libnetwork.1"): "/calico/ipam/v2/handle/libnetwork.1",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
	node, cidr, ok := parseAffinityKey(affinityKey("h1", v6))
	if !ok || node != "h1" || cidr != v6 {
		t.Errorf("parseAffinityKey = %q %s %v", node, cidr, ok)
	}
	if _, _, ok := parseAffinityKey("/calico/ipam/v2/host/h1/ipv4/block"); ok {
		t.Error("parsed a key without a CIDR")
	}
}

func TestSubnets(t *testing.T) {
	pool := netip.MustParsePrefix("10.0.0.0/24")
	if n := subnetCount(pool, 26); n != 4 {
		t.Errorf("subnetCount = %d", n)
	}
	if got := nthSubnet(pool, 26, 3); got != netip.MustParsePrefix("10.0.0.192/26") {
		t.Errorf("nthSubnet = %s", got)
	}
	v6 := netip.MustParsePrefix("fd00::/48")
	if got := nthSubnet(v6, 122, 1<<60+1); got != netip.MustParsePrefix("fd00:0:0:4::40/122") {
		t.Errorf("nthSubnet v6 = %s", got)
	}
	if n := subnetCount(v6, 122); n != 1<<62 {
		t.Errorf("huge pool subnetCount = %d", n)
	}
}
