package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
)

const handoverNode = "host1"

// A host that ran the plugin's dataplane is handed to calico/node: the daemon restarts with the dataplane
// off. New containers, routed as Felix routes them (/32 routes of Felix's protocol, proxy ARP), are dropped
// by the old table inet calico until the daemon removes it; it then removes the table, the iptables jump
// and its block routes, keeps the old containers' interfaces and routes (Felix takes them over), and
// nothing of ours stands in any container's way.
func TestHandOverToCalicoNode(t *testing.T) {
	host := linktest.Host(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	store := datastoretest.Start(t).Store
	ctx := context.Background()
	profile := &api.Profile{Spec: api.ProfileSpec{Ingress: []api.Rule{{Action: api.ActionAllow}},
		Egress: []api.Rule{{Action: api.ActionAllow}}}}
	profile.Name = "net"
	linktest.Must(t, store.Create(ctx, profile))

	// The daemon with its dataplane: two containers, and a block route as the routing reconciler makes.
	stop := runAgent(t, store, host, log)
	a, b := handoverWorkload(t, host, "a", 1), handoverWorkload(t, host, "b", 2)
	for name, w := range map[string]linktest.Workload{"a": a, "b": b} {
		wep, err := api.LibnetworkEndpoint(handoverNode, endpointID(name))
		linktest.Must(t, err)
		wep.Spec.InterfaceName, wep.Spec.Profiles = w.HostIface, []string{profile.Name}
		wep.Spec.IPNetworks = []string{w.IPv4.String() + "/32"}
		linktest.Must(t, store.Create(ctx, wep))
	}
	linktest.MustDo(t, host, func() {
		linktest.Must(t, link.ReplaceBlockRoute(link.BlockRoute{Dst: netip.MustParsePrefix("10.65.0.0/26"), Blackhole: true}))
	})
	linktest.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error { return linktest.Ping(a.NS, b.IPv4) })
	stop()

	// Restarted with the dataplane off beside calico/node, which routes two new containers.
	c, d := handoverWorkload(t, host, "c", 3), handoverWorkload(t, host, "d", 4)
	for _, w := range []linktest.Workload{c, d} {
		linktest.RouteAsFelix(t, host, w, nil)
	}
	if err := linktest.Ping(c.NS, d.IPv4); err == nil {
		t.Fatal("the old table inet calico did not drop the new containers' traffic: this test shows nothing")
	}

	// A daemon holding the claim programs this host: its state stays.
	var claim io.Closer
	linktest.MustDo(t, host, func() {
		var err error
		claim, err = dataplane.Claim()
		linktest.Must(t, err)
		linktest.Must(t, removeOwnDataplane(log))
	})
	if _, err := linktest.Exec(host, "nft", "list", "table", "inet", "calico"); err != nil {
		t.Errorf("removed the firewall of the daemon holding the claim: %v", err)
	}
	linktest.Must(t, claim.Close())

	linktest.MustDo(t, host, func() { linktest.Must(t, removeOwnDataplane(log)) })
	if out, _ := linktest.Exec(host, "nft", "list", "ruleset"); strings.Contains(out, "table inet calico ") {
		t.Errorf("table inet calico left:\n%s", out)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if out, _ := linktest.Exec(host, cmd); strings.Contains(out, "CALICO-FORWARD") {
			t.Errorf("%s still has CALICO-FORWARD:\n%s", cmd, out)
		}
	}
	routes, err := linktest.Exec(host, "ip", "route", "show", "proto", "80")
	linktest.Must(t, err)
	if strings.Contains(routes, "blackhole") {
		t.Errorf("the plugin's block route is left:\n%s", routes)
	}
	for _, w := range []linktest.Workload{a, b} {
		if !strings.Contains(routes, w.IPv4.String()+" dev "+w.HostIface) {
			t.Errorf("the route of live container %s went:\n%s", w.HostIface, routes)
		}
	}
	for from, to := range map[string]linktest.Workload{c.NS: d, d.NS: c, a.NS: b} {
		if err := linktest.Ping(from, to.IPv4); err != nil {
			t.Errorf("after the hand-over: %v", err)
		}
	}
}

// runAgent runs the dataplane agent on host until the returned function stops it, as a daemon that exits.
func runAgent(t *testing.T, store *datastore.Store, host string, log *slog.Logger) func() {
	t.Helper()
	agent := dataplane.New(dataplane.Config{Node: handoverNode, Netns: host}, store, log)
	linktest.Must(t, agent.Start())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agent.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	select {
	case <-agent.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("agent not synced after 10 s")
	}
	return stop
}

// handoverWorkload plugs in a container as the driver does, its host interface named as the driver names
// it, with address 10.65.0.n.
func handoverWorkload(t *testing.T, host, name string, n int) linktest.Workload {
	t.Helper()
	w := linktest.Workload{NS: linktest.NewNS(t, "wl"), HostIface: "cali" + endpointID(name)[:11],
		IPv4: net.IPv4(10, 65, 0, byte(n)), IPv6: net.ParseIP(fmt.Sprintf("fd00:65::%d", n))}
	linktest.Plug(t, host, w)
	return w
}

func endpointID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// Uninstalling leaves the host's firewall, routes and interfaces as they were before the plugin ran. It
// refuses while a container has an endpoint in the datastore or an interface on the host, and while a
// daemon programs the host, unless forced; forced, it needs no datastore.
func TestUninstall(t *testing.T) {
	host := linktest.Host(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	for _, cmd := range [][]string{
		// Docker's chains (ip6tables too, as Docker 27+ makes them).
		{"iptables", "-N", "DOCKER-USER"}, {"iptables", "-A", "FORWARD", "-j", "DOCKER-USER"}, {"iptables", "-P", "FORWARD", "DROP"},
		{"ip6tables", "-N", "DOCKER-USER"}, {"ip6tables", "-A", "FORWARD", "-j", "DOCKER-USER"},
		{"ip", "route", "add", "10.123.0.0/24", "dev", "uplink0", "proto", "static"},
	} {
		_, err := linktest.Exec(host, cmd...)
		linktest.Must(t, err)
	}
	linktest.SettleLinkLocal(t, host, "uplink0", "uplink1")
	before := linktest.HostState(t, host)

	// Install: the daemon's dataplane with a container, which then stops.
	etcd := datastoretest.Start(t)
	stop := runAgent(t, etcd.Store, host, log)
	a := handoverWorkload(t, host, "a", 1)
	wep, err := api.LibnetworkEndpoint(handoverNode, endpointID("a"))
	linktest.Must(t, err)
	wep.Spec.InterfaceName, wep.Spec.IPNetworks = a.HostIface, []string{a.IPv4.String() + "/32"}
	linktest.Must(t, etcd.Store.Create(context.Background(), wep))
	linktest.MustDo(t, host, func() {
		linktest.Must(t, link.ReplaceBlockRoute(link.BlockRoute{Dst: netip.MustParsePrefix("10.65.0.0/26"), Blackhole: true}))
	})
	linktest.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if out, _ := linktest.Exec(host, "ip", "route", "show", "proto", "80"); !strings.Contains(out, a.HostIface) {
			return fmt.Errorf("the agent has not routed %s:\n%s", a.HostIface, out)
		}
		return nil
	})
	stop()

	cfg := &config.Config{NodeName: handoverNode, Datastore: config.Datastore{Endpoints: etcd.Client.Endpoints,
		CACertFile: etcd.Client.CACertFile, CertFile: etcd.Client.CertFile, KeyFile: etcd.Client.Key}}
	uninstall := func(cfg *config.Config, force bool) (err error) {
		linktest.MustDo(t, host, func() { err = Uninstall(context.Background(), cfg, force, log) })
		return err
	}
	expectRefusal := func(err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("uninstall succeeded, want a refusal saying %q", want)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("refusal %q does not say %q", err, w)
			}
		}
		if after := linktest.HostState(t, host); after == before {
			t.Error("a refused uninstall removed the plugin's dataplane")
		}
	}
	expectRefusal(uninstall(cfg, false), "node host1 has 1 workload endpoint(s) in the datastore and 1 container interface(s) here ["+a.HostIface+"]",
		"docker rm -f", "--force")
	linktest.Must(t, etcd.Store.DeleteResource(context.Background(), api.KindOf(wep), wep.Namespace, wep.Name, ""))
	expectRefusal(uninstall(cfg, false), "0 workload endpoint(s) in the datastore and 1 container interface(s)")
	var claim io.Closer
	linktest.MustDo(t, host, func() { claim, err = dataplane.Claim(); linktest.Must(t, err) })
	expectRefusal(uninstall(cfg, true), "is running on this host", "systemctl stop calico-libnetwork")
	linktest.Must(t, claim.Close())

	unreachable := &config.Config{NodeName: handoverNode, Datastore: config.Datastore{Endpoints: []string{"http://127.0.0.1:1"}}}
	linktest.Must(t, uninstall(unreachable, true))
	if after := linktest.HostState(t, host); after != before {
		t.Errorf("the host differs from before the plugin ran:\n%s", linktest.StateDiff(before, after))
	}
	// Nothing of the plugin's left, so nothing stops an uninstall, which changes nothing.
	linktest.Must(t, uninstall(cfg, false))
	if after := linktest.HostState(t, host); after != before {
		t.Errorf("a second uninstall changed the host:\n%s", linktest.StateDiff(before, after))
	}
}

// With the embedded etcd, uninstall reads a stopped daemon's datastore from CALICO_DATA_DIR; a data
// directory with no etcd in it holds no endpoints, and is left as it is.
func TestUninstallReadsEmbeddedDatastore(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	dir := t.TempDir()
	emb, err := datastore.StartEmbedded(dir, log)
	linktest.Must(t, err)
	store, err := datastore.Connect(emb.ClientConfig())
	linktest.Must(t, err)
	wep, err := api.LibnetworkEndpoint(handoverNode, endpointID("a"))
	linktest.Must(t, err)
	wep.Spec.InterfaceName, wep.Spec.IPNetworks = "cali"+endpointID("a")[:11], []string{"10.65.0.1/32"}
	linktest.Must(t, store.Create(context.Background(), wep))
	store.Close()
	emb.Close()

	count := func(dataDir string) (int, error) {
		cfg := &config.Config{NodeName: handoverNode, Datastore: config.Datastore{DataDir: dataDir}}
		return localEndpointCount(context.Background(), cfg, log)
	}
	if n, err := count(dir); n != 1 || err != nil {
		t.Errorf("endpoints in a stopped daemon's %s: %d, %v; want 1", dir, n, err)
	}
	empty := t.TempDir()
	if n, err := count(empty); n != 0 || err != nil {
		t.Errorf("endpoints in an empty CALICO_DATA_DIR: %d, %v; want 0", n, err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) > 0 {
		t.Errorf("counting created %d entries in an empty CALICO_DATA_DIR", len(entries))
	}
}
