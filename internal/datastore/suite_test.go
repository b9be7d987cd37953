package datastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// server is the etcd behind a suite run: the embedded one or a separate etcd process.
type server interface {
	// ClientConfig is how to reach the server now.
	ClientConfig() ClientConfig
	// Restart stops the server and starts it again on the same data; its endpoint may change. The suite's
	// store must be usable again afterwards.
	Restart(t *testing.T)
}

// runSuite is the datastore behaviour every etcd must show, run against s (connected to srv).
func runSuite(t *testing.T, s *Store, srv server) {
	// Start from an empty /calico/ so the suite can run repeatedly (-count) on one server.
	if _, err := s.Client().Delete(ctxT(t), "/calico/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	t.Run("CRUD", func(t *testing.T) { testCRUD(t, s) })
	t.Run("NamespacedAndList", func(t *testing.T) { testNamespacedAndList(t, s) })
	t.Run("LocalEndpoints", func(t *testing.T) { testLocalEndpoints(t, s) })
	t.Run("StoredJSON", func(t *testing.T) { testStoredJSON(t, s) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, s) })
	t.Run("Apply", func(t *testing.T) { testApply(t, s) })
	t.Run("ParallelCAS", func(t *testing.T) { testParallelCAS(t, s) })
	t.Run("Txn", func(t *testing.T) { testTxn(t, s) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, s) })
	t.Run("WatchResumeAfterRestart", func(t *testing.T) { testWatchResume(t, s, srv) })
	t.Run("WatchResyncAfterCompaction", func(t *testing.T) { testWatchCompaction(t, s, srv) })
	t.Run("WatchListsInPages", func(t *testing.T) { testWatchPages(t, s) })
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func newProfile(name string) *api.Profile {
	p := &api.Profile{Spec: api.ProfileSpec{
		Ingress:       []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: "has(" + name + ")"}}},
		Egress:        []api.Rule{{Action: api.ActionAllow}},
		LabelsToApply: map[string]string{name: ""},
	}}
	p.Name = name
	return p
}

func newPool(name, cidr string) *api.IPPool {
	p := &api.IPPool{Spec: api.IPPoolSpec{CIDR: cidr, NATOutgoing: true}}
	p.Name = name
	return p
}

func rv(t *testing.T, o api.Object) int64 {
	t.Helper()
	n, err := strconv.ParseInt(o.GetObjectMeta().ResourceVersion, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("resourceVersion %q is not a positive revision", o.GetObjectMeta().ResourceVersion)
	}
	return n
}

func wantErr(t *testing.T, err, target error, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v", target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("error %q is not %v", err, target)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

func testCRUD(t *testing.T, s *Store) {
	ctx := ctxT(t)
	before := time.Now().Add(-time.Second)
	p := newProfile("crud-net")
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if !uuidRE.MatchString(p.UID) {
		t.Errorf("uid %q is not a version 4 UUID", p.UID)
	}
	if p.CreationTimestamp == nil || p.CreationTimestamp.Before(before) || p.CreationTimestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("creationTimestamp %v", p.CreationTimestamp)
	}
	created := rv(t, p)
	if p.Kind != api.KindProfile || p.APIVersion != api.APIVersion {
		t.Errorf("TypeMeta %+v", p.TypeMeta)
	}

	got, err := Get[*api.Profile](ctx, s, "", "crud-net")
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != p.UID || !got.CreationTimestamp.Equal(*p.CreationTimestamp) || rv(t, got) != created ||
		got.Spec.LabelsToApply["crud-net"] != "" || len(got.Spec.Ingress) != 1 || got.Spec.Ingress[0].Source.Selector != "has(crud-net)" {
		t.Errorf("read back %+v %+v", got.ObjectMeta, got.Spec)
	}

	// A second create of the same name.
	err = s.Create(ctx, newProfile("crud-net"))
	wantErr(t, err, ErrExists, "Profile", `"crud-net"`, "already exists")
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != ResourcePrefix+"profiles/crud-net" {
		t.Errorf("error does not carry the key: %#v", err)
	}

	// Create with a resourceVersion is a caller mistake.
	bad := newProfile("crud-rv")
	bad.ResourceVersion = "12"
	wantErr(t, s.Create(ctx, bad), nil, "Profile", "crud-rv", "resourceVersion")

	// Invalid objects are refused before anything is written.
	invalid := newPool("crud-bad-pool", "10.1.1.1/16")
	err = s.Create(ctx, invalid)
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.cidr" {
		t.Fatalf("invalid pool: %v", err)
	}
	if _, err := s.Get(ctx, ResourcePrefix+"ippools/crud-bad-pool"); !errors.Is(err, ErrNotFound) {
		t.Errorf("invalid pool written: %v", err)
	}

	// Missing resources.
	_, err = Get[*api.Profile](ctx, s, "", "crud-missing")
	wantErr(t, err, ErrNotFound, ResourcePrefix+"profiles/crud-missing")
	_, err = s.GetResource(ctx, api.KindOf(&api.IPPool{}), "", "crud-missing")
	wantErr(t, err, ErrNotFound)

	// Update.
	got.Spec.LabelsToApply["extra"] = "1"
	if err := s.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	updated := rv(t, got)
	if updated <= created {
		t.Errorf("revision %d after update, was %d", updated, created)
	}
	again, err := Get[*api.Profile](ctx, s, "", "crud-net")
	if err != nil {
		t.Fatal(err)
	}
	if again.Spec.LabelsToApply["extra"] != "1" || again.UID != p.UID || rv(t, again) != updated {
		t.Errorf("after update %+v %+v", again.ObjectMeta, again.Spec)
	}

	// Update from a stale read.
	p.Spec.LabelsToApply["stale"] = "x"
	err = s.Update(ctx, p)
	wantErr(t, err, ErrConflict, "Profile", `"crud-net"`)
	if cur, _ := Get[*api.Profile](ctx, s, "", "crud-net"); cur.Spec.LabelsToApply["stale"] != "" {
		t.Error("stale update was written")
	}

	// Update without (or with a nonsense) resourceVersion.
	fresh := newProfile("crud-net")
	err = s.Update(ctx, fresh)
	wantErr(t, err, nil, "Profile", `"crud-net"`, "resourceVersion")
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		t.Errorf("missing resourceVersion reported as a datastore condition: %v", err)
	}
	fresh.ResourceVersion = "abc"
	wantErr(t, s.Update(ctx, fresh), nil, "resourceVersion")

	// Update of something that does not exist (any more).
	ghost := newProfile("crud-ghost")
	ghost.ResourceVersion = strconv.FormatInt(updated, 10)
	wantErr(t, s.Update(ctx, ghost), ErrNotFound, "Profile", `"crud-ghost"`)

	// Invalid update is refused and nothing changes.
	again.Spec.Egress = []api.Rule{{Action: "Maybe"}}
	err = s.Update(ctx, again)
	if !errors.As(err, &fe) || fe.Field != "spec.egress[0].action" {
		t.Errorf("invalid update: %v", err)
	}
	if cur, _ := Get[*api.Profile](ctx, s, "", "crud-net"); rv(t, cur) != updated {
		t.Error("invalid update was written")
	}
}

// LocalEndpoints reads only the keys of its node's name prefix, which another node's may share ("le-p-"
// begins "le--p--2-..."), and returns exactly that node's libnetwork endpoints.
func testLocalEndpoints(t *testing.T, s *Store) {
	ctx := ctxT(t)
	for i, node := range []string{"le-p", "le-p-2", "le", "le-p"} {
		wep, err := api.LibnetworkEndpoint(node, strings.Repeat(strconv.Itoa(i), 64))
		if err != nil {
			t.Fatal(err)
		}
		wep.Spec.IPNetworks = []string{fmt.Sprintf("192.168.8.%d/32", i)}
		wep.Spec.InterfaceName = api.LibnetworkInterface(wep.Spec.Endpoint)
		if err := s.Create(ctx, wep); err != nil {
			t.Fatal(err)
		}
	}
	weps, err := LocalEndpoints(ctx, s, "le-p")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range weps {
		ids = append(ids, w.Spec.Endpoint[:1])
	}
	if slices.Sort(ids); !slices.Equal(ids, []string{"0", "3"}) {
		t.Errorf("LocalEndpoints(le-p) = endpoints %v, want 0 and 3", ids)
	}
}

func testNamespacedAndList(t *testing.T, s *Store) {
	ctx := ctxT(t)
	ids := []string{strings.Repeat("a", 64), strings.Repeat("b", 64)}
	for _, id := range ids {
		wep, err := api.LibnetworkEndpoint("my-host", id)
		if err != nil {
			t.Fatal(err)
		}
		wep.Spec.IPNetworks = []string{"192.168.7.1/32"}
		wep.Spec.InterfaceName = "cali" + id[:11]
		if err := s.Create(ctx, wep); err != nil {
			t.Fatal(err)
		}
	}
	other := &api.NetworkPolicy{Spec: api.PolicySpec{Selector: "all()"}}
	other.Name, other.Namespace = "np1", "other-ns"
	if err := s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	noNS := &api.NetworkPolicy{}
	noNS.Name = "np2"
	var fe *api.FieldError
	if err := s.Create(ctx, noNS); !errors.As(err, &fe) || fe.Field != "metadata.namespace" {
		t.Errorf("namespaced kind without namespace: %v", err)
	}

	name := "my--host-libnetwork-libnetwork-" + ids[0]
	wep, err := Get[*api.WorkloadEndpoint](ctx, s, "libnetwork", name)
	if err != nil {
		t.Fatal(err)
	}
	if wep.Spec.Node != "my-host" || wep.Labels[api.LabelNamespace] != "libnetwork" || wep.Labels[api.LabelOrchestrator] != "libnetwork" {
		t.Errorf("read back %+v %+v", wep.ObjectMeta, wep.Spec)
	}
	if _, err := Get[*api.WorkloadEndpoint](ctx, s, "other-ns", name); !errors.Is(err, ErrNotFound) {
		t.Errorf("found in the wrong namespace: %v", err)
	}

	weps, err := List[*api.WorkloadEndpoint](ctx, s, "libnetwork")
	if err != nil || len(weps) != 2 {
		t.Fatalf("List in namespace: %d, %v", len(weps), err)
	}
	for _, w := range weps {
		rv(t, w)
	}
	nps, err := List[*api.NetworkPolicy](ctx, s, "")
	if err != nil || len(nps) != 1 || nps[0].Namespace != "other-ns" {
		t.Errorf("List across namespaces: %v, %v", nps, err)
	}
	if nps, _ := List[*api.NetworkPolicy](ctx, s, "libnetwork"); len(nps) != 0 {
		t.Errorf("List in an empty namespace: %v", nps)
	}

	// A prefix of one name must not list another: "pool1" vs "pool10".
	for _, n := range []string{"list-pool1", "list-pool10"} {
		if err := s.Create(ctx, newPool(n, "10."+strconv.Itoa(len(n))+".0.0/16")); err != nil {
			t.Fatal(err)
		}
	}
	objs, listRev, err := s.ListResources(ctx, api.KindOf(&api.IPPool{}), "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.GetObjectMeta().Name)
		if rv(t, o) > listRev {
			t.Errorf("object revision %d after the listing revision %d", rv(t, o), listRev)
		}
	}
	if !strings.Contains(strings.Join(names, ","), "list-pool1,list-pool10") {
		t.Errorf("pools listed: %v", names)
	}

	// A value that is not JSON is skipped, not fatal for the whole list.
	if _, err := s.Txn(ctx, Put(ResourcePrefix+"ippools/list-garbage", []byte("{not json"), 0)); err != nil {
		t.Fatal(err)
	}
	objs2, _, err := s.ListResources(ctx, api.KindOf(&api.IPPool{}), "")
	if err != nil || len(objs2) != len(objs) {
		t.Errorf("list with one bad value: %d objects, %v", len(objs2), err)
	}
	_, err = Get[*api.IPPool](ctx, s, "", "list-garbage")
	wantErr(t, err, nil, ResourcePrefix+"ippools/list-garbage", "IPPool")
	if err := s.DeleteKey(ctx, ResourcePrefix+"ippools/list-garbage", 0); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, s *Store, key string) (map[string]any, int64) {
	t.Helper()
	kv, err := s.Get(ctxT(t), key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(kv.Value, &m); err != nil {
		t.Fatalf("%s holds invalid JSON: %v", key, err)
	}
	return m, kv.Revision
}

func field(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func testStoredJSON(t *testing.T, s *Store) {
	ctx := ctxT(t)
	pool := newPool("stored-pool", "10.77.0.0/16")
	if err := s.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	m, modRev := rawGet(t, s, "/calico/resources/v3/projectcalico.org/ippools/stored-pool")
	if modRev != rv(t, pool) {
		t.Errorf("resourceVersion %s, key mod revision %d", pool.ResourceVersion, modRev)
	}
	meta := m["metadata"].(map[string]any)
	if _, ok := meta["resourceVersion"]; ok {
		t.Errorf("resourceVersion stored: %v", meta)
	}
	want := map[string]any{
		"kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata.name": "stored-pool",
		"metadata.uid": pool.UID, "metadata.creationTimestamp": pool.CreationTimestamp.Format(time.RFC3339),
		"spec.cidr": "10.77.0.0/16", "spec.natOutgoing": true, "spec.blockSize": float64(26),
		"spec.ipipMode": "Never", "spec.vxlanMode": "Never", "spec.nodeSelector": "all()",
	}
	for path, w := range want {
		if got := field(m, path); got != w {
			t.Errorf("stored %s = %#v, want %#v", path, got, w)
		}
	}

	// A libnetwork endpoint lands at exactly the key upstream's tests assert.
	id := "50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c"
	wep, err := api.LibnetworkEndpoint("test", id)
	if err != nil {
		t.Fatal(err)
	}
	wep.Spec.IPNetworks, wep.Spec.Profiles, wep.Spec.InterfaceName, wep.Spec.MAC =
		[]string{"192.168.0.5/32"}, []string{"mynet"}, "cali50d858e0985", "a2:1b:3c:4d:5e:6f"
	if err := s.Create(ctx, wep); err != nil {
		t.Fatal(err)
	}
	m, _ = rawGet(t, s, "/calico/resources/v3/projectcalico.org/workloadendpoints/libnetwork/test-libnetwork-libnetwork-"+id)
	for path, w := range map[string]any{
		"metadata.namespace": "libnetwork", "metadata.labels": map[string]any{"projectcalico.org/namespace": "libnetwork", "projectcalico.org/orchestrator": "libnetwork"},
		"spec.orchestrator": "libnetwork", "spec.workload": "libnetwork", "spec.node": "test", "spec.endpoint": id,
		"metadata.resourceVersion": nil,
	} {
		if got := field(m, path); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("stored %s = %#v, want %#v", path, got, w)
		}
	}

	// A document written by newer Calico keeps its unknown fields through our Get+Update.
	nodeKey := "/calico/resources/v3/projectcalico.org/nodes/stored-node"
	doc := `{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"stored-node","uid":"u-1","creationTimestamp":"2026-01-01T00:00:00Z"},` +
		`"spec":{"bgp":{"ipv4Address":"10.0.0.1/24"},"wireguard":{"interfaceIPv4Address":"10.9.9.9"}},"status":{"podCIDRs":["10.0.0.0/24"]}}`
	putRev, err := s.Txn(ctx, Put(nodeKey, []byte(doc), 0))
	if err != nil {
		t.Fatal(err)
	}
	node, err := Get[*api.Node](ctx, s, "", "stored-node")
	if err != nil {
		t.Fatal(err)
	}
	if rv(t, node) != putRev {
		t.Errorf("resourceVersion %s, written at %d", node.ResourceVersion, putRev)
	}
	node.Spec.IPv4VXLANTunnelAddr = "192.168.3.0"
	if err := s.Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	m, _ = rawGet(t, s, nodeKey)
	for path, w := range map[string]any{
		"spec.ipv4VXLANTunnelAddr": "192.168.3.0", "spec.wireguard.interfaceIPv4Address": "10.9.9.9",
		"metadata.uid": "u-1", "spec.bgp.ipv4Address": "10.0.0.1/24", "metadata.resourceVersion": nil,
	} {
		if got := field(m, path); got != w {
			t.Errorf("after update %s = %#v, want %#v", path, got, w)
		}
	}
	if fmt.Sprint(field(m, "status.podCIDRs")) != "[10.0.0.0/24]" {
		t.Errorf("status lost: %v", m)
	}
}

func testDelete(t *testing.T, s *Store) {
	ctx := ctxT(t)
	kind := api.KindOf(&api.Profile{})
	p := newProfile("delete-me")
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	first := p.ResourceVersion
	p.Spec.LabelsToApply["v"] = "2"
	if err := s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}

	wantErr(t, s.DeleteResource(ctx, kind, "", "delete-me", first), ErrConflict, "Profile", `"delete-me"`)
	if _, err := Get[*api.Profile](ctx, s, "", "delete-me"); err != nil {
		t.Fatalf("deleted despite a stale revision: %v", err)
	}
	wantErr(t, s.DeleteResource(ctx, kind, "", "delete-me", "x1"), nil, "resourceVersion")
	if err := s.DeleteResource(ctx, kind, "", "delete-me", p.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	_, err := Get[*api.Profile](ctx, s, "", "delete-me")
	wantErr(t, err, ErrNotFound)
	wantErr(t, s.DeleteResource(ctx, kind, "", "delete-me", ""), ErrNotFound, "Profile", `"delete-me"`)
	wantErr(t, s.DeleteResource(ctx, kind, "", "delete-me", p.ResourceVersion), ErrNotFound, "Profile", `"delete-me"`)

	// Unconditional delete.
	q := newProfile("delete-any")
	if err := s.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteResource(ctx, kind, "", "delete-any", ""); err != nil {
		t.Fatal(err)
	}
	// Namespaced delete.
	np := &api.NetworkPolicy{}
	np.Name, np.Namespace = "np-del", "ns1"
	if err := s.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	npKind := api.KindOf(np)
	wantErr(t, s.DeleteResource(ctx, npKind, "ns2", "np-del", ""), ErrNotFound)
	if err := s.DeleteResource(ctx, npKind, "ns1", "np-del", np.ResourceVersion); err != nil {
		t.Fatal(err)
	}
}

func testApply(t *testing.T, s *Store) {
	ctx := ctxT(t)
	// Apply creates when absent (keeping a creationTimestamp that is given, as Create does).
	p := newProfile("apply-net")
	long := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	p.CreationTimestamp = &long
	if err := s.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	orig, err := Get[*api.Profile](ctx, s, "", "apply-net")
	if err != nil {
		t.Fatal(err)
	}

	// Newer tooling added a field we do not know.
	key := ResourcePrefix + "profiles/apply-net"
	kv, _ := s.Get(ctx, key)
	var m map[string]any
	_ = json.Unmarshal(kv.Value, &m)
	m["spec"].(map[string]any)["futureField"] = "keep me"
	data, _ := json.Marshal(m)
	if _, err := s.Txn(ctx, Put(key, data, kv.Revision)); err != nil {
		t.Fatal(err)
	}

	// Apply of a fresh object (no uid, no timestamp, no revision) replaces the spec only.
	q := newProfile("apply-net")
	q.Spec.LabelsToApply = map[string]string{"applied": "yes"}
	if err := s.Apply(ctx, q); err != nil {
		t.Fatal(err)
	}
	after, err := Get[*api.Profile](ctx, s, "", "apply-net")
	if err != nil {
		t.Fatal(err)
	}
	if !orig.CreationTimestamp.Equal(long) {
		t.Errorf("creationTimestamp %v, created with %v", orig.CreationTimestamp, long)
	}
	if after.UID != orig.UID || !after.CreationTimestamp.Equal(*orig.CreationTimestamp) {
		t.Errorf("apply replaced uid/creationTimestamp: %s %v, was %s %v", after.UID, after.CreationTimestamp, orig.UID, orig.CreationTimestamp)
	}
	if q.UID != orig.UID || q.ResourceVersion != after.ResourceVersion {
		t.Errorf("applied object not updated in place: %+v", q.ObjectMeta)
	}
	if !(after.Spec.LabelsToApply["applied"] == "yes" && len(after.Spec.LabelsToApply) == 1) {
		t.Errorf("spec not applied: %+v", after.Spec)
	}
	m2, _ := rawGet(t, s, key)
	if field(m2, "spec.futureField") != "keep me" {
		t.Errorf("apply dropped an unknown field: %v", m2)
	}

	// Invalid apply is refused.
	bad := newProfile("apply-net")
	bad.Spec.Ingress[0].Action = "Nope"
	var fe *api.FieldError
	if err := s.Apply(ctx, bad); !errors.As(err, &fe) {
		t.Errorf("invalid apply: %v", err)
	}
}

func testParallelCAS(t *testing.T, s *Store) {
	// Under -race on a busy 2-core machine this takes tens of seconds: allow more than ctxT does.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const workers, increments = 16, 50
	p := newProfile("cas-counter")
	p.Labels = map[string]string{"counter": "0"}
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < increments; i++ {
				for retry := 0; ; retry++ {
					if retry > 0 {
						// Back off a little, with jitter, as any sensible retry loop does; without it the
						// 16 writers mostly collide.
						time.Sleep(rand.N(time.Duration(1<<min(retry, 5)) * time.Millisecond))
					}
					cur, err := Get[*api.Profile](ctx, s, "", "cas-counter")
					if err != nil {
						errs <- err
						return
					}
					n, err := strconv.Atoi(cur.Labels["counter"])
					if err != nil {
						errs <- err
						return
					}
					cur.Labels["counter"] = strconv.Itoa(n + 1)
					err = s.Update(ctx, cur)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrConflict) {
						errs <- err
						return
					}
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	final, err := Get[*api.Profile](ctx, s, "", "cas-counter")
	if err != nil {
		t.Fatal(err)
	}
	if final.Labels["counter"] != strconv.Itoa(workers*increments) {
		t.Fatalf("counter %s after %d increments", final.Labels["counter"], workers*increments)
	}
	t.Logf("%d increments, %d conflicts retried", workers*increments, conflicts.Load())
}

func testTxn(t *testing.T, s *Store) {
	ctx := ctxT(t)
	const pre = "/calico/test/txn/"
	revA, err := s.Txn(ctx, Put(pre+"a", []byte("a1"), 0), Put(pre+"b", []byte("b1"), 0))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get(ctx, pre+"a")
	b, _ := s.Get(ctx, pre+"b")
	if a.Revision != revA || b.Revision != revA {
		t.Errorf("one transaction, revisions %d %d, returned %d", a.Revision, b.Revision, revA)
	}

	assertUntouched := func() {
		t.Helper()
		kvs, _, err := s.List(ctx, pre)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, fmt.Sprintf("%s=%s@%d", strings.TrimPrefix(kv.Key, pre), kv.Value, kv.Revision))
		}
		want := fmt.Sprintf("a=a1@%d,b=b1@%d", revA, revA)
		if strings.Join(got, ",") != want {
			t.Errorf("store changed by a failed transaction: %v, want %s", got, want)
		}
	}

	cases := []struct {
		name    string
		ops     []Op
		key     string
		target  error
		message string
	}{
		{"create over existing", []Op{Put(pre+"new1", []byte("x"), 0), Put(pre+"a", []byte("x"), 0), Del(pre+"b", revA)}, pre + "a", ErrExists, "already exists"},
		{"stale update", []Op{Put(pre+"new1", []byte("x"), 0), Put(pre+"a", []byte("x"), revA), Put(pre+"b", []byte("x"), revA-1)}, pre + "b", ErrConflict, "conflict"},
		{"update of missing", []Op{Put(pre+"a", []byte("x"), revA), Put(pre+"gone", []byte("x"), revA)}, pre + "gone", ErrNotFound, "not found"},
		{"conditional delete of missing", []Op{Del(pre+"gone", revA), Put(pre+"new2", []byte("x"), 0)}, pre + "gone", ErrNotFound, "not found"},
		{"stale delete", []Op{Del(pre+"a", revA-1), Del(pre+"b", 0)}, pre + "a", ErrConflict, "conflict"},
		{"prefix changed", []Op{Put(pre+"new1", []byte("x"), 0), Unchanged(pre, revA-1)}, pre + "a", ErrConflict, "conflict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Txn(ctx, c.ops...)
			wantErr(t, err, c.target, c.key, c.message)
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != c.key {
				t.Errorf("failing key %v, want %s", ke, c.key)
			}
			assertUntouched()
		})
	}

	// All conditions hold: everything is written at one revision.
	rev, err := s.Txn(ctx, Put(pre+"a", []byte("a2"), revA), Del(pre+"b", revA), Put(pre+"c", []byte("c1"), 0), Unchanged(pre, revA))
	if err != nil {
		t.Fatal(err)
	}
	kvs, _, _ := s.List(ctx, pre)
	if len(kvs) != 2 || string(kvs[0].Value) != "a2" || kvs[0].Revision != rev || string(kvs[1].Value) != "c1" || kvs[1].Revision != rev {
		t.Errorf("after transaction: %+v", kvs)
	}
	// Unconditional delete of a missing key inside a transaction is fine; DeleteKey alone says not found.
	if _, err := s.Txn(ctx, Del(pre+"nothing", 0)); err != nil {
		t.Errorf("unconditional delete in txn: %v", err)
	}
	wantErr(t, s.DeleteKey(ctx, pre+"nothing", 0), ErrNotFound, pre+"nothing")
	wantErr(t, s.DeleteKey(ctx, pre+"a", rev-1), ErrConflict, pre+"a")
	if err := s.DeleteKey(ctx, pre+"a", rev); err != nil {
		t.Error(err)
	}
	if _, err := s.Txn(ctx); err != nil {
		t.Errorf("empty transaction: %v", err)
	}
}

// watchRecorder collects events from a watch channel.
type watchRecorder struct {
	t  *testing.T
	ch <-chan Event
}

func (w *watchRecorder) next(timeout time.Duration) Event {
	w.t.Helper()
	select {
	case ev, ok := <-w.ch:
		if !ok {
			w.t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(timeout):
		w.t.Fatalf("no watch event within %s", timeout)
	}
	return Event{}
}

func (w *watchRecorder) none(d time.Duration) {
	w.t.Helper()
	select {
	case ev := <-w.ch:
		w.t.Fatalf("unexpected event %s", describe(ev))
	case <-time.After(d):
	}
}

func describe(ev Event) string {
	switch ev.Type {
	case EventResync:
		var keys []string
		for _, kv := range ev.Snapshot {
			keys = append(keys, kv.Key+"="+string(kv.Value))
		}
		return fmt.Sprintf("resync@%d[%s]", ev.Revision, strings.Join(keys, ","))
	case EventPut:
		return fmt.Sprintf("put %s=%s@%d", ev.KV.Key, ev.KV.Value, ev.Revision)
	default:
		return fmt.Sprintf("delete %s(was %s)@%d", ev.KV.Key, ev.KV.Value, ev.Revision)
	}
}

// expect reads len(want) events and compares their descriptions without revisions.
func (w *watchRecorder) expect(timeout time.Duration, want ...string) []Event {
	w.t.Helper()
	var evs []Event
	for i, wnt := range want {
		ev := w.next(timeout)
		got := regexp.MustCompile(`@\d+`).ReplaceAllString(describe(ev), "")
		if got != wnt {
			w.t.Fatalf("event %d: got %s, want %s", i, describe(ev), wnt)
		}
		evs = append(evs, ev)
	}
	return evs
}

func put(t *testing.T, s *Store, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := s.Get(ctx, key)
	var rev int64
	if err == nil {
		rev = cur.Revision
	} else if !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	r, err := s.Txn(ctx, Put(key, []byte(value), rev))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func del(t *testing.T, s *Store, key string) {
	t.Helper()
	if err := s.DeleteKey(ctxT(t), key, 0); err != nil {
		t.Fatal(err)
	}
}

func testWatch(t *testing.T, s *Store) {
	const pre = "/calico/test/watch/"
	put(t, s, pre+"x", "x0")
	put(t, s, pre+"y", "y0")
	put(t, s, "/calico/test/watchother", "not mine") // shares the prefix without the slash

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &watchRecorder{t: t, ch: s.Watch(ctx, pre, testLog(t))}
	first := w.expect(5*time.Second, "resync["+pre+"x=x0,"+pre+"y=y0]")[0]

	r1 := put(t, s, pre+"x", "x1")
	put(t, s, "/calico/test/watchother", "still not mine")
	put(t, s, pre+"z", "z1")
	del(t, s, pre+"y")
	rTxn, err := s.Txn(ctxT(t), Put(pre+"p", []byte("p1"), 0), Del(pre+"x", 0))
	if err != nil {
		t.Fatal(err)
	}
	evs := w.expect(5*time.Second,
		"put "+pre+"x=x1", "put "+pre+"z=z1", "delete "+pre+"y(was y0)", "put "+pre+"p=p1", "delete "+pre+"x(was x1)")
	if evs[0].Revision != r1 || evs[0].KV.Revision != r1 || evs[0].Revision <= first.Revision {
		t.Errorf("revisions: resync %d, first put %d (written at %d)", first.Revision, evs[0].Revision, r1)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Revision < evs[i-1].Revision {
			t.Errorf("events out of order: %s after %s", describe(evs[i]), describe(evs[i-1]))
		}
	}
	if evs[3].Revision != rTxn || evs[4].Revision != rTxn {
		t.Errorf("transaction events at %d,%d, written at %d", evs[3].Revision, evs[4].Revision, rTxn)
	}
	w.none(200 * time.Millisecond)

	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-w.ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed after cancel")
		}
	}
}

func hostOf(t *testing.T, endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// watchThroughProxy starts a watch on its own client, connected through a proxy that the test can cut.
func watchThroughProxy(t *testing.T, srv server, prefix string) (*proxy, *watchRecorder) {
	px, cfg := newProxy(t, srv.ClientConfig())
	ws, err := Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return px, &watchRecorder{t: t, ch: ws.Watch(ctx, prefix, testLog(t))}
}

func testWatchResume(t *testing.T, s *Store, srv server) {
	const pre = "/calico/test/resume/"
	put(t, s, pre+"k0", "v0")
	px, w := watchThroughProxy(t, srv, pre)
	w.expect(5*time.Second, "resync["+pre+"k0=v0]")
	put(t, s, pre+"k1", "v1")
	w.expect(5*time.Second, "put "+pre+"k1=v1")

	// The watcher loses its connection, etcd restarts, and changes happen before the watcher is back.
	px.Cut()
	srv.Restart(t)
	put(t, s, pre+"k2", "v2")
	put(t, s, pre+"k1", "v1b")
	del(t, s, pre+"k0")
	w.none(300 * time.Millisecond)
	start := time.Now()
	px.Restore(hostOf(t, srv.ClientConfig().Endpoints[0]))
	w.expect(15*time.Second, "put "+pre+"k2=v2", "put "+pre+"k1=v1b", "delete "+pre+"k0(was v0)")
	t.Logf("watch caught up %s after the connection came back", time.Since(start).Round(time.Millisecond))

	// And keeps following live changes, with nothing replayed twice.
	put(t, s, pre+"k3", "v3")
	w.expect(5*time.Second, "put "+pre+"k3=v3")
	w.none(200 * time.Millisecond)
}

// A listing larger than a page arrives in pages of one revision, in key order, each read only once the
// consumer has applied the one before.
func testWatchPages(t *testing.T, s *Store) {
	const pre, n = "/calico/test/pages/", 2*watchPage + 10
	var ops []Op
	for i := range n {
		ops = append(ops, Put(fmt.Sprintf("%sk%05d", pre, i), []byte("v"), 0))
		if len(ops) == 128 || i == n-1 {
			if _, err := s.Txn(ctxT(t), ops...); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &watchRecorder{t: t, ch: s.Watch(ctx, pre, testLog(t))}
	var listing Listing
	var keys []string
	for pages := 1; ; pages++ {
		ev := w.next(5 * time.Second)
		if ev.Type != EventResync || len(ev.Snapshot) == 0 || len(ev.Snapshot) > watchPage {
			t.Fatalf("page %d: %s with %d keys", pages, describe(ev)[:20], len(ev.Snapshot))
		}
		if ev.More {
			w.none(300 * time.Millisecond) // the next page waits for this one
		}
		for _, kv := range ev.Snapshot {
			keys = append(keys, kv.Key)
		}
		if listing.Add(ev) {
			if pages != 3 || ev.Revision != listing.rev {
				t.Errorf("%d pages, the last at revision %d, the listing's %d", pages, ev.Revision, listing.rev)
			}
			break
		}
	}
	if len(keys) != n || !slices.IsSorted(keys) || !listing.Has(pre+"k00000") || listing.Has(pre+"other") {
		t.Errorf("listed %d keys, sorted %v", len(keys), slices.IsSorted(keys))
	}
	put(t, s, pre+"k00000", "changed")
	w.expect(5*time.Second, "put "+pre+"k00000=changed")
}

func testWatchCompaction(t *testing.T, s *Store, srv server) {
	const pre = "/calico/test/compact/"
	put(t, s, pre+"k0", "v0")
	px, w := watchThroughProxy(t, srv, pre)
	w.expect(5*time.Second, "resync["+pre+"k0=v0]")
	put(t, s, pre+"k1", "v1")
	w.expect(5*time.Second, "put "+pre+"k1=v1")

	px.Cut()
	put(t, s, pre+"k2", "v2")
	del(t, s, pre+"k0")
	last := put(t, s, pre+"k1", "v1b")
	// Compact everything up to now: the revisions the watcher missed are gone.
	if _, err := s.Client().Compact(ctxT(t), last, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	px.Restore(hostOf(t, srv.ClientConfig().Endpoints[0]))
	ev := w.next(15 * time.Second)
	if ev.Type != EventResync {
		t.Fatalf("got %s, want a resync after compaction", describe(ev))
	}
	if got := regexp.MustCompile(`@\d+`).ReplaceAllString(describe(ev), ""); got != "resync["+pre+"k1=v1b,"+pre+"k2=v2]" {
		t.Errorf("resync snapshot %s", describe(ev))
	}
	if ev.Revision < last {
		t.Errorf("resync at revision %d, before the compaction at %d", ev.Revision, last)
	}
	put(t, s, pre+"k3", "v3")
	w.expect(5*time.Second, "put "+pre+"k3=v3")
	w.none(200 * time.Millisecond)
}
