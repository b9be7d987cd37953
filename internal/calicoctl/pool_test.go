package calicoctl

import (
	"strings"
	"testing"
)

func poolYAML(name, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

// As upstream calicoctl (whose output for the same commands is quoted in each comment): a pool whose CIDR
// overlaps another's, enabled or not, is refused on create and on apply, naming both pools; an existing
// pool's CIDR and block size cannot be changed, so an update cannot make an overlap either.
func TestPoolOverlap(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, poolYAML("p1", "  cidr: 10.10.0.0/16\n"), "create", "-f", "-")
	// failed to create 'IPPool' resource: [error with field IPPool.Spec.CIDR = '10.10.5.0/24' (IPPool(p2) CIDR overlaps with IPPool(p1) CIDR 10.10.0.0/16)]
	h.expect(1, poolYAML("p2", "  cidr: 10.10.5.0/24\n"), "create", "-f", "-")
	// failed to apply 'IPPool' resource: [error with field IPPool.Spec.CIDR = '10.10.5.0/24' (IPPool(p2) CIDR overlaps with IPPool(p1) CIDR 10.10.0.0/16)]
	h.expect(1, poolYAML("p2", "  cidr: 10.10.5.0/24\n"), "apply", "-f", "-")
	// failed to create 'IPPool' resource: [error with field IPPool.Spec.CIDR = '10.0.0.0/8' (IPPool(p3) CIDR overlaps with IPPool(p1) CIDR 10.10.0.0/16)]
	h.expect(1, poolYAML("p3", "  cidr: 10.0.0.0/8\n"), "create", "-f", "-")
	// A disabled pool still counts.
	h.expect(0, poolYAML("p1", "  cidr: 10.10.0.0/16\n  disabled: true\n"), "apply", "-f", "-")
	h.expect(1, poolYAML("p2", "  cidr: 10.10.5.0/24\n"), "create", "-f", "-")
	// hit error: [error with the following fields:
	// -  IPPool.Spec.CIDR = '10.0.0.0/8' (IPPool(p4) CIDR overlaps with IPPool(p1) CIDR 10.10.0.0/16)
	// -  IPPool.Spec.CIDR = '10.0.0.0/8' (IPPool(p4) CIDR overlaps with IPPool(p6) CIDR 10.20.0.0/16)
	// ]
	h.expect(1, poolYAML("p6", "  cidr: 10.20.0.0/16\n")+"---\n"+poolYAML("p4", "  cidr: 10.0.0.0/8\n"), "create", "-f", "-")
	// Other families and disjoint pools are fine.
	h.expect(0, poolYAML("v6", "  cidr: fd00:10::/64\n")+"---\n"+poolYAML("p7", "  cidr: 10.30.0.0/16\n"), "create", "-f", "-")
	// failed to apply 'IPPool' resource: [error with field IPPool.Spec.CIDR = '10.10.0.0/16' (IPPool(p6) CIDR overlaps with IPPool(p1) CIDR 10.10.0.0/16)]
	h.expect(1, poolYAML("p6", "  cidr: 10.10.0.0/16\n"), "apply", "-f", "-")
	// hit error: error with field IPPool.Spec.CIDR = '10.10.0.0/16' (IPPool CIDR cannot be modified)
	h.expect(1, poolYAML("p6", "  cidr: 10.10.0.0/16\n"), "replace", "-f", "-")
	h.expect(1, poolYAML("p7", "  cidr: 10.40.0.0/16\n"), "replace", "-f", "-")
	h.expect(1, "", "patch", "ippool", "p7", "-p", `{"spec":{"cidr":"10.40.0.0/16"}}`)
	// failed to apply 'IPPool' resource: [error with field IPPool.Spec.BlockSize = '24' (IPPool BlockSize cannot be modified)]
	h.expect(1, poolYAML("p1", "  cidr: 10.10.0.0/16\n  blockSize: 24\n"), "apply", "-f", "-")
	h.expect(0, poolYAML("p1", "  cidr: 10.10.0.0/16\n  blockSize: 26\n  natOutgoing: true\n"), "apply", "-f", "-")
	out := h.expect(0, "", "get", "ippools", "-o", "wide")
	for _, gone := range []string{"p2", "p3", "p4"} {
		if strings.Contains(out, gone+" ") {
			t.Errorf("refused pool %s was stored:\n%s", gone, out)
		}
	}
	h.check("pool-overlap")
}
