package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

// noEndpoints is Docker answering that it has no networks, hence no endpoints: every endpoint of this
// host is Docker's leak.
type noEndpoints struct{}

func (noEndpoints) Network(_ context.Context, id string) (*docker.Network, error) {
	return nil, fmt.Errorf("%w: network %s", docker.ErrNotFound, id)
}
func (noEndpoints) Networks(context.Context) ([]docker.Network, error) { return nil, nil }
func (noEndpoints) ContainerLabels(context.Context, string) (map[string]string, error) {
	return nil, nil
}
func (noEndpoints) WatchNetworks(ctx context.Context, _ func(docker.NetworkEvent)) error {
	<-ctx.Done()
	return ctx.Err()
}

// dockerDown is Docker not answering, counting the questions.
type dockerDown struct {
	noEndpoints
	asked *int
}

func (d dockerDown) Networks(context.Context) ([]docker.Network, error) {
	*d.asked++
	return nil, errors.New("Docker is down")
}

const gcNode = "host1"

func testID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// gcWEP is a libnetwork endpoint of this node naming iface.
func gcWEP(t *testing.T, name, iface string) *api.WorkloadEndpoint {
	t.Helper()
	w, err := api.LibnetworkEndpoint(gcNode, testID(name))
	linktest.Must(t, err)
	w.Spec.InterfaceName, w.Spec.IPNetworks, w.Spec.MAC = iface, []string{"10.65.0.1/32"}, "02:00:0a:41:00:01"
	return w
}

// The collector removes what Docker lost of the plugin's own: the endpoint and the veth Join made for its
// ID. It never deletes another orchestrator's endpoint or interface, the interface an endpoint names
// (eth0), an interface of that name that is not a veth, nor anything of an endpoint that fails validation.
func TestCollectorTouchesOnlyOurs(t *testing.T) {
	linktest.RequireRoot(t)
	store := datastoretest.Start(t).Store
	ns := linktest.NewNS(t, "gc")
	d := New(Config{Node: gcNode, GCGrace: time.Minute, GCInterval: time.Minute}, store, nil, link.Ops{},
		dataplane.Disabled{}, noEndpoints{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx := context.Background()

	ours := gcWEP(t, "ours", api.LibnetworkInterface(testID("ours")))
	eth0 := gcWEP(t, "eth0", "eth0")
	bridged := gcWEP(t, "bridged", api.LibnetworkInterface(testID("bridged")))
	invalid := gcWEP(t, "invalid", api.LibnetworkInterface(testID("invalid")))
	invalid.Spec.MAC = "not-a-mac"
	var k8s []*api.WorkloadEndpoint
	for i, namespace := range []string{api.NamespaceLibnetwork, "prod"} {
		w := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Orchestrator: "k8s", Node: gcNode, Pod: "web-0",
			Endpoint: "eth0", InterfaceName: fmt.Sprintf("cali123456789%02x", i), IPNetworks: []string{"10.65.1.1/32"}}}
		w.Namespace = namespace
		w.Name, _ = api.WorkloadEndpointName(w.Spec)
		k8s = append(k8s, w)
	}
	for _, w := range append([]*api.WorkloadEndpoint{ours, eth0, bridged}, k8s...) {
		linktest.Must(t, store.Create(ctx, w))
	}
	// The invalid endpoint was written behind calicoctl's back.
	created := time.Now()
	invalid.CreationTimestamp = &created
	data, err := api.Marshal(invalid)
	linktest.Must(t, err)
	_, err = store.Client().Put(ctx, datastore.ResourceKey(api.KindOf(invalid), invalid.Namespace, invalid.Name), string(data))
	linktest.Must(t, err)

	veths := []string{ours.Spec.InterfaceName, "eth0", invalid.Spec.InterfaceName, k8s[0].Spec.InterfaceName, k8s[1].Spec.InterfaceName}
	linktest.MustDo(t, ns, func() {
		for i, name := range veths {
			_, err := link.CreateVeth(link.Veth{HostName: name, PeerName: fmt.Sprintf("peer%d", i)}, nil)
			linktest.Must(t, err)
		}
		linktest.AddLink(t, bridged.Spec.InterfaceName, "bridge")
		// Missing from Docker for the grace period: the second pass collects.
		s, now := newStaleEndpoints(), time.Now().Add(2*time.Minute)
		linktest.Must(t, d.collectEndpoints(ctx, s, now))
		linktest.Must(t, d.collectEndpoints(ctx, s, now.Add(2*time.Minute)))

		for _, name := range append(veths[1:], bridged.Spec.InterfaceName) {
			if _, ok, err := link.Lookup(name); err != nil || !ok {
				t.Errorf("%s was deleted (%v)", name, err)
			}
		}
		if _, ok, err := link.Lookup(ours.Spec.InterfaceName); err != nil || ok {
			t.Errorf("our stale veth %s is still there (%v)", ours.Spec.InterfaceName, err)
		}
	})
	for _, tc := range []struct {
		w    *api.WorkloadEndpoint
		kept bool
	}{{ours, false}, {eth0, false}, {bridged, false}, {invalid, true}, {k8s[0], true}, {k8s[1], true}} {
		_, err := datastore.Get[*api.WorkloadEndpoint](ctx, store, tc.w.Namespace, tc.w.Name)
		if kept := err == nil; kept != tc.kept {
			t.Errorf("endpoint %s naming %s kept %v (%v), want %v", tc.w.Name, tc.w.Spec.InterfaceName, kept, err, tc.kept)
		}
	}
}

// DeleteEndpoint leaves an interface that has the endpoint's interface name but is not a veth, and still
// removes the endpoint.
func TestDeleteEndpointLeavesOtherKinds(t *testing.T) {
	linktest.RequireRoot(t)
	store := datastoretest.Start(t).Store
	ns := linktest.NewNS(t, "del")
	d := New(Config{Node: gcNode}, store, nil, link.Ops{}, dataplane.Disabled{}, nil, slog.New(slog.NewTextHandler(t.Output(), nil)))
	w := gcWEP(t, "bridged", api.LibnetworkInterface(testID("bridged")))
	linktest.Must(t, store.Create(context.Background(), w))
	linktest.MustDo(t, ns, func() {
		linktest.AddLink(t, w.Spec.InterfaceName, "bridge")
		linktest.Must(t, d.Network().DeleteEndpoint(context.Background(),
			&libnetwork.DeleteEndpointRequest{NetworkID: testID("net"), EndpointID: w.Spec.Endpoint}))
		if l, ok, err := link.Lookup(w.Spec.InterfaceName); err != nil || !ok || l.Kind != "bridge" {
			t.Errorf("bridge %s: %+v, %v, %v", w.Spec.InterfaceName, l, ok, err)
		}
	})
	if _, err := datastore.Get[*api.WorkloadEndpoint](context.Background(), store, w.Namespace, w.Name); err == nil {
		t.Error("endpoint not deleted")
	}
}

// An address is live while this host's endpoint holds it; another host's endpoints are not read.
func TestAllocationLiveByLocalEndpoint(t *testing.T) {
	store := datastoretest.Start(t).Store
	ctx := context.Background()
	local, remote := gcWEP(t, "local", "calilocal"), gcWEP(t, "remote", "caliremote")
	remote.Spec.Node, remote.Spec.IPNetworks = "host2", []string{"10.65.0.2/32"}
	remote.Name, _ = api.WorkloadEndpointName(remote.Spec)
	for _, w := range []*api.WorkloadEndpoint{local, remote} {
		linktest.Must(t, store.Create(ctx, w))
	}
	d := New(Config{Node: gcNode, GCGrace: time.Minute, GCInterval: time.Minute}, store, nil, link.Ops{},
		dataplane.Disabled{}, noEndpoints{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	for ip, want := range map[string]bool{"10.65.0.1": true, "10.65.0.2": false, "10.65.0.3": false} {
		if live, err := d.AllocationLive(ctx, ipam.AllocationInfo{IP: netip.MustParseAddr(ip)}); live != want || err != nil {
			t.Errorf("%s: live %v, error %v; want %v", ip, live, err, want)
		}
	}
}

// While Docker cannot be asked, every allocation counts as live (nothing is released on half an answer),
// and one collector pass asks once, not once per allocation.
func TestAllocationLiveWhileDockerIsDown(t *testing.T) {
	store := datastoretest.Start(t).Store
	asked := 0
	d := New(Config{Node: gcNode, GCGrace: time.Minute, GCInterval: time.Minute}, store, nil, link.Ops{},
		dataplane.Disabled{}, dockerDown{asked: &asked}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	for i := range 5 {
		live, err := d.AllocationLive(context.Background(), ipam.AllocationInfo{IP: netip.AddrFrom4([4]byte{10, 65, 0, byte(i)})})
		if !live || err == nil {
			t.Errorf("allocation %d: live %v, error %v; want live, with Docker's error", i, live, err)
		}
	}
	if asked != 1 {
		t.Errorf("Docker asked %d times in one pass, want once", asked)
	}
}
