package ipam

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// Pools created at once whose CIDRs all overlap: exactly one is stored, every other is refused as an
// overlap naming it, or (when its read raced the winner's write every time) as a conflict; none is left
// half-made.
func TestCreatePoolConcurrentOverlap(t *testing.T) {
	reset(t, testStore)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := &api.IPPool{ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("race%d", i)},
				Spec: api.IPPoolSpec{CIDR: fmt.Sprintf("10.%d.0.0/%d", 40, 16+i)}}
			errs[i] = New(testStore, Options{}).CreatePool(context.Background(), p)
		})
	}
	wg.Wait()
	pools, err := datastore.List[*api.IPPool](context.Background(), testStore, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 {
		t.Fatalf("%d overlapping pools stored, want 1: %v", len(pools), errs)
	}
	for i, err := range errs {
		var fe *api.FieldError
		switch name := fmt.Sprintf("race%d", i); {
		case name == pools[0].Name && err != nil:
			t.Errorf("%s: stored, but its create failed: %v", name, err)
		case name != pools[0].Name && !errors.As(err, &fe) && !errors.Is(err, datastore.ErrConflict):
			t.Errorf("%s: %v, want an overlap or a conflict", name, err)
		}
	}
}

func TestOverlapping(t *testing.T) {
	pool := func(name, cidr string) *api.IPPool {
		return &api.IPPool{ObjectMeta: api.ObjectMeta{Name: name}, Spec: api.IPPoolSpec{CIDR: cidr}}
	}
	existing := []api.Object{pool("a", "10.1.0.0/16"), pool("b", "10.2.0.0/16"), pool("v6", "fd00::/64"), pool("bad", "nonsense")}
	for _, c := range []struct{ name, cidr, want string }{
		{"x", "10.3.0.0/16", ""},
		{"x", "10.1.2.0/24", `IPPool "x": spec.cidr: IPPool(x) CIDR overlaps with IPPool(a) CIDR 10.1.0.0/16`},
		{"x", "10.0.0.0/8", `IPPool "x": spec.cidr: IPPool(x) CIDR overlaps with IPPool(a) CIDR 10.1.0.0/16; IPPool(x) CIDR overlaps with IPPool(b) CIDR 10.2.0.0/16`},
		{"a", "10.1.0.0/16", ""}, // the same name: the create reports that it exists
		{"x", "fd00::/48", `IPPool "x": spec.cidr: IPPool(x) CIDR overlaps with IPPool(v6) CIDR fd00::/64`},
		{"x", "::ffff:10.1.0.0/112", ""}, // another family
	} {
		err := overlapping(pool(c.name, c.cidr), existing)
		if got := fmt.Sprint(err); (err == nil) != (c.want == "") || err != nil && got != c.want {
			t.Errorf("%s %s: %v, want %q", c.name, c.cidr, err, c.want)
		}
	}
}

func TestCheckPoolUpdate(t *testing.T) {
	old := &api.IPPool{ObjectMeta: api.ObjectMeta{Name: "p"}, Spec: api.IPPoolSpec{CIDR: "fd00:0::/64"}}
	for _, c := range []struct {
		spec api.IPPoolSpec
		want string
	}{
		{api.IPPoolSpec{CIDR: "fd00::/64", BlockSize: 122, Disabled: true}, ""},
		{api.IPPoolSpec{CIDR: "fd00::1/64"}, ""}, // host bits: validation's error
		{api.IPPoolSpec{CIDR: "fd01::/64"}, `IPPool "p": spec.cidr: IPPool CIDR cannot be modified (it is fd00:0::/64)`},
		{api.IPPoolSpec{CIDR: "fd00::/64", BlockSize: 120}, `IPPool "p": spec.blockSize: IPPool BlockSize cannot be modified (it is 122)`},
	} {
		err := CheckPoolUpdate(old, &api.IPPool{ObjectMeta: api.ObjectMeta{Name: "p"}, Spec: c.spec})
		if got := fmt.Sprint(err); (err == nil) != (c.want == "") || err != nil && got != c.want {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}
