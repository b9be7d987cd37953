package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

func TestClassify(t *testing.T) {
	ours := api.LibnetworkInterface(endpointID("a1"))
	for _, tc := range []struct {
		name, kind string
		claim      claim
		want       ifaceClass
	}{
		{ours, "veth", claim{claimed: true, owner: true}, owned},
		{ours, "veth", claim{}, stale},
		{ours, "veth", claim{claimed: true}, notOurs}, // a CNI's veth shaped like ours, or an invalid endpoint's
		{ours, "bridge", claim{claimed: true, owner: true}, notOurs},
		{ours, "dummy", claim{}, notOurs},
		{"caliabcdef12345", "bridge", claim{}, notOurs},
		{"cali-x", "dummy", claim{}, notOurs},
		{"cali-x", "veth", claim{}, notOurs},
		{"caliABCDEF12345", "veth", claim{}, notOurs},
		{"cali12345", "veth", claim{}, notOurs},
		{"eth0", "veth", claim{claimed: true}, notOurs},
		{"lo", "", claim{claimed: true}, notOurs},
	} {
		if got := classify(link.Iface{Name: tc.name, Kind: tc.kind, Alias: link.VethAlias}, tc.claim); got != tc.want {
			t.Errorf("classify(%s %s, %+v) = %d, want %d", tc.kind, tc.name, tc.claim, got, tc.want)
		}
	}
	// A Calico CNI's pod veth (of a datastore this host's daemon does not read) has the driver's name shape
	// but not the plugin's mark.
	if got := classify(link.Iface{Name: ours, Kind: "veth"}, claim{}); got != notOurs {
		t.Errorf("an unmarked veth named like ours is %d, want notOurs", got)
	}
}

func libnetworkWEP(t *testing.T, name, iface string, n int) *api.WorkloadEndpoint {
	t.Helper()
	w, err := api.LibnetworkEndpoint(testNode, endpointID(name))
	linktest.Must(t, err)
	w.Spec.InterfaceName = iface
	w.Spec.IPNetworks = []string{fmt.Sprintf("10.65.0.%d/32", n)}
	w.Spec.MAC = fmt.Sprintf("02:00:0a:41:00:%02x", n)
	return w
}

// k8sWEP is a pod's endpoint on this node as Calico's CNI plugin writes it.
func k8sWEP(iface string, n int) *api.WorkloadEndpoint {
	w := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Orchestrator: "k8s", Node: testNode, Pod: "web-0",
		Endpoint: "eth0", InterfaceName: iface, IPNetworks: []string{fmt.Sprintf("10.65.0.%d/32", n)},
		MAC: fmt.Sprintf("02:00:0a:41:00:%02x", n), Profiles: []string{"kns.prod"}}}
	w.Namespace = "prod"
	w.Name, _ = api.WorkloadEndpointName(w.Spec)
	return w
}

// Claims: only a valid endpoint of the plugin's, on this node, naming the interface the driver gives it,
// owns its interface; every endpoint of this node claims the interface it names.
func TestClaims(t *testing.T) {
	c := newClaims(testNode)
	ours := api.LibnetworkInterface(endpointID("a1"))
	a1 := libnetworkWEP(t, "a1", ours, 1)
	c.set("a1", a1, true)
	if got := c.lookup(ours); !got.claimed || !got.owner || got.routes.mac != a1.Spec.MAC ||
		!slices.Equal(got.routes.addrs, []netip.Addr{netip.MustParseAddr("10.65.0.1")}) {
		t.Errorf("our endpoint: %+v", got)
	}
	if ch := c.takeChanged(); len(ch) != 1 {
		t.Errorf("changed %v, want %s", ch, ours)
	}
	c.set("a1", a1, true)
	if ch := c.takeChanged(); len(ch) != 0 {
		t.Errorf("an unchanged endpoint changed %v", ch)
	}
	// The same endpoint failing validation still claims the interface, but owns nothing.
	c.set("a1", a1, false)
	if got := c.lookup(ours); !got.claimed || got.owner {
		t.Errorf("invalid endpoint: %+v", got)
	}
	for _, w := range []*api.WorkloadEndpoint{k8sWEP("cali1234567890a", 20), libnetworkWEP(t, "e", "eth0", 21),
		libnetworkWEP(t, "l", "lo", 22)} {
		c.set(w.Name, w, true)
		if got := c.lookup(w.Spec.InterfaceName); !got.claimed || got.owner {
			t.Errorf("%s naming %s: %+v, want claimed, not owned", w.Name, w.Spec.InterfaceName, got)
		}
	}
	remote := libnetworkWEP(t, "r", api.LibnetworkInterface(endpointID("r")), 30)
	remote.Spec.Node = "host2"
	remote.Name, _ = api.WorkloadEndpointName(remote.Spec)
	c.set("r", remote, true)
	if got := c.lookup(remote.Spec.InterfaceName); got.claimed {
		t.Errorf("another node's endpoint claims %s", remote.Spec.InterfaceName)
	}
	c.set("a1", nil, false)
	if got := c.lookup(ours); got.claimed {
		t.Errorf("deleted endpoint still claims: %+v", got)
	}
}

// An endpoint that fails validation is logged once per revision, and ignored.
func TestInvalidEndpointLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	v := newView(policy.NewIndex(testNode), testNode, slog.New(slog.NewTextHandler(&logs, nil)))
	w := libnetworkWEP(t, "bad", api.LibnetworkInterface(endpointID("bad")), 5)
	w.Spec.MAC = "not-a-mac"
	data, err := api.Marshal(w)
	linktest.Must(t, err)
	key := datastore.ResourceKey(api.KindOf(w), w.Namespace, w.Name)
	for _, rev := range []int64{7, 7, 8} {
		v.fold(event{kindWEP, datastore.Event{Type: datastore.EventPut, Revision: rev,
			KV: datastore.KV{Key: key, Value: data, Revision: rev}}})
	}
	if n := strings.Count(logs.String(), "ignoring invalid resource"); n != 2 {
		t.Errorf("logged %d times over revisions 7, 7, 8, want 2:\n%s", n, logs.String())
	}
	if c := v.claims.lookup(w.Spec.InterfaceName); !c.claimed || c.owner {
		t.Errorf("invalid endpoint's claim %+v, want claimed and not owned", c)
	}
	if _, ok := v.idx.Interface(w.Spec.InterfaceName); ok {
		t.Error("invalid endpoint reached the policy index")
	}
}

// The agent routes to, and sweeps, only veths the driver made for this node's libnetwork endpoints. A
// CNI's pod on the same host (a k8s endpoint with a veth shaped like ours, and the CNI's own routes),
// endpoints naming eth0 and lo, interfaces of other kinds named cali*, a veth not named as the driver
// names them, and an endpoint that fails validation are never routed, never given neighbour entries and
// never deleted; a stale veth of ours is.
func TestOnlyOurInterfaces(t *testing.T) {
	grace := time.Second
	r := newRig(t, Config{ResyncInterval: 200 * time.Millisecond, StaleInterfaceGrace: grace})
	r.put(networkProfile("net-a"))
	a1 := r.addWorkload("a1", 1, []string{"net-a"}, nil)

	// The CNI's pod: its veth, its endpoint, its route to the pod and another route it made (with Calico's
	// route protocol, as Felix would).
	pod := linktest.Workload{NS: linktest.NewNS(t, "pod"), HostIface: "cali1234567890a",
		IPv4: net.ParseIP("10.65.0.20"), IPv6: net.ParseIP("fd00:65::20")}
	linktest.Plug(t, r.host, pod)
	k8s := k8sWEP(pod.HostIface, 20)
	r.put(k8s)
	linktest.MustDo(t, r.host, func() {
		linktest.Must(t, link.AddWorkloadRoute(pod.HostIface, pod.IPv4, nil))
		linktest.Must(t, link.AddWorkloadRoute(pod.HostIface, net.ParseIP("10.65.0.30"), nil))
		// Not veths, named like ours.
		linktest.AddLink(t, "cali-x", "dummy")
		linktest.AddLink(t, "caliabcdef12345", "bridge")
	})
	// Endpoints of the plugin's naming eth0 (a veth on this host) and lo, and a veth whose name is not one
	// the driver gives.
	// And a Calico CNI's pod veth of a datastore this daemon does not read (no endpoint here): its name has
	// the driver's shape, but not the plugin's mark.
	cniPod := api.LibnetworkInterface(endpointID("k8s-datastore-pod"))
	for _, args := range [][]string{{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
		{"ip", "link", "set", "eth0", "up"}, {"ip", "link", "add", "cali-veth", "type", "veth", "peer", "name", "tmp-veth"},
		{"ip", "link", "add", cniPod, "type", "veth", "peer", "name", "tmp-cnipod"}} {
		out, err := linktest.Exec(r.host, args...)
		linktest.Must(t, fmtErr(out, err))
	}
	eth0, lo := libnetworkWEP(t, "e", "eth0", 21), libnetworkWEP(t, "l", "lo", 22)
	r.put(eth0)
	r.put(lo)
	// An endpoint of ours that fails validation (written behind calicoctl's back), with its veth.
	invalid := linktest.Workload{NS: linktest.NewNS(t, "wl"), HostIface: api.LibnetworkInterface(endpointID("invalid")),
		IPv4: net.ParseIP("10.65.0.23"), IPv6: net.ParseIP("fd00:65::23")}
	linktest.Plug(t, r.host, invalid)
	bad := libnetworkWEP(t, "invalid", invalid.HostIface, 23)
	bad.Spec.MAC = "not-a-mac"
	r.putUnvalidated(bad)
	// A veth of ours that no endpoint claims.
	stale := linktest.Workload{NS: linktest.NewNS(t, "wl"), HostIface: api.LibnetworkInterface(endpointID("stale")),
		IPv4: net.ParseIP("10.65.0.9"), IPv6: net.ParseIP("fd00:65::9")}
	linktest.Plug(t, r.host, stale)

	linktest.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if _, err := linktest.Exec(r.host, "ip", "link", "show", stale.HostIface); err == nil {
			return fmt.Errorf("stale veth %s still present", stale.HostIface)
		}
		return nil
	})
	time.Sleep(2 * grace) // more sweeps, each of which could have taken the others

	// Join's and DeleteEndpoint's paths refuse, or leave alone, endpoints that are not the plugin's.
	for _, w := range []*api.WorkloadEndpoint{k8s, eth0, lo, bad} {
		if err := r.agent.EndpointUp(context.Background(), w); err == nil {
			t.Errorf("EndpointUp(%s naming %s) accepted", w.Name, w.Spec.InterfaceName)
		}
		linktest.Must(t, r.agent.EndpointDown(context.Background(), w))
	}
	linktest.Must(t, r.agent.do(context.Background(), r.agent.resync))

	for _, iface := range []string{"cali-x", "caliabcdef12345", "cali-veth", pod.HostIface, "eth0", "lo", invalid.HostIface, cniPod} {
		if out, err := linktest.Exec(r.host, "ip", "link", "show", iface); err != nil {
			t.Errorf("%s was deleted: %s", iface, out)
		}
	}
	wantRoutes := []string{"10.65.0.1 " + a1.HostIface, "10.65.0.20 " + pod.HostIface, "10.65.0.30 " + pod.HostIface,
		"fd00:65::1 " + a1.HostIface}
	if got := r.kernelEntries("route", "show", "proto", "80"); !slices.Equal(got, wantRoutes) {
		t.Errorf("routes with protocol 80:\n%s\nwant (a1's, and the CNI's left alone):\n%s",
			strings.Join(got, "\n"), strings.Join(wantRoutes, "\n"))
	}
	wantNeigh := []string{"10.65.0.1 " + a1.HostIface, "fd00:65::1 " + a1.HostIface}
	if got := r.kernelEntries("neigh", "show", "nud", "permanent"); !slices.Equal(got, wantNeigh) {
		t.Errorf("permanent neighbours:\n%s\nwant a1's only:\n%s", strings.Join(got, "\n"), strings.Join(wantNeigh, "\n"))
	}
}

// putUnvalidated stores an object as another writer might, without the validation Store.Apply does, and
// waits for the agent to apply it.
func (r *rig) putUnvalidated(o api.Object) {
	r.t.Helper()
	data, err := api.Marshal(o)
	linktest.Must(r.t, err)
	m := o.GetObjectMeta()
	_, err = r.store.Client().Put(context.Background(), datastore.ResourceKey(api.KindOf(o), m.Namespace, m.Name), string(data))
	linktest.Must(r.t, err)
	r.settle()
}

// kernelEntries lists, sorted, "destination device" of what `ip -j <args>` shows in the host namespace,
// for both IP versions.
func (r *rig) kernelEntries(args ...string) []string {
	r.t.Helper()
	var out []string
	for _, family := range []string{"-4", "-6"} {
		text, err := linktest.Exec(r.host, append([]string{"ip", "-j", family}, args...)...)
		linktest.Must(r.t, err)
		var entries []struct{ Dst, Dev string }
		linktest.Must(r.t, json.Unmarshal([]byte(text), &entries))
		for _, e := range entries {
			out = append(out, e.Dst+" "+e.Dev)
		}
	}
	slices.Sort(out)
	return out
}
