package calicoctl

import (
	"context"
	"strings"
	"testing"
)

const labelFixtures = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool1
spec:
  cidr: 10.10.0.0/16
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: np1
  namespace: libnetwork
spec:
  selector: all()
`

// label as upstream calicoctl: set, same value again, refusal without --overwrite, overwrite, remove,
// and its errors; the update keeps the fields of the stored resource this version does not know.
func TestLabel(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, labelFixtures, "create", "-f", "-")
	h.expect(0, "", "label", "ippool", "pool1", "zone=a")
	h.expect(1, "", "label", "ippools", "pool1", "zone=b")
	h.expect(0, "", "label", "ippool", "pool1", "zone=a")
	h.expect(0, "", "label", "ippool", "pool1", "zone=b", "--overwrite")
	h.expect(0, "", "label", "ippool", "pool1", "team=x")
	h.expect(0, "", "label", "ippool", "pool1", "zone", "--remove")
	h.expect(1, "", "label", "ippool", "pool1", "zone", "--remove")
	h.expect(0, "", "get", "ippool", "pool1", "-o", "yaml")

	h.expect(1, "", "label", "ippool", "nosuch", "a=b")
	h.expect(1, "", "label", "ippool", "pool1", "novalue")
	h.expect(1, "", "label", "ippool", "pool1", "in valid=x")
	h.expect(1, "", "label", "widgets", "w", "a=b")
	h.expect(1, "", "label", "ippool", "pool1")
	h.expect(1, "", "label", "clusterinformation", "default", "a=b")

	// Namespaced kinds: "default" unless -n is given.
	h.expect(1, "", "label", "networkpolicy", "np1", "a=b")
	h.expect(0, "", "label", "networkpolicy", "np1", "a=b", "-n", "libnetwork")
	h.expect(0, "", "get", "networkpolicy", "np1", "-n", "libnetwork", "-o", "yaml")
	h.check("label")

	// A field written by newer Calico tooling survives the update.
	ctx := context.Background()
	key := "/calico/resources/v3/projectcalico.org/ippools/pool1"
	resp, err := testStore.Client().Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading %s: %v", key, err)
	}
	withFuture := strings.Replace(string(resp.Kvs[0].Value), `"spec":{`, `"spec":{"futureField":"kept",`, 1)
	if _, err := testStore.Client().Put(ctx, key, withFuture); err != nil {
		t.Fatal(err)
	}
	h.expect(0, "", "label", "ippool", "pool1", "later=yes")
	resp, err = testStore.Client().Get(ctx, key)
	if err != nil || !strings.Contains(string(resp.Kvs[0].Value), `"futureField":"kept"`) || !strings.Contains(string(resp.Kvs[0].Value), `"later":"yes"`) {
		t.Errorf("after label, stored %s (err %v); want futureField kept and label later=yes", resp.Kvs[0].Value, err)
	}
}
