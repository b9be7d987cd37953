package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/cleanup"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// TestFelixParity is the differential check against upstream Felix: the same endpoints (Docker
// containers and Kubernetes-style pods) and the same policies, enforced once by this dataplane and once
// by calico-felix (the daemon with CALICO_DATAPLANE=none beside it), must give the same reachability
// matrix. It runs when CALICO_FELIX names a calico-felix binary (see docs/felix-parity.md).
func TestFelixParity(t *testing.T) {
	felix := felixBinary(t)
	r := newRig(t, Config{})
	for _, o := range parityWorld(t) {
		linktest.Must(t, r.store.Apply(context.Background(), o))
	}
	r.settle()
	r.addWorkload("a1", 1, []string{"net-a"}, map[string]string{"role": "web"})
	r.addWorkload("a2", 2, []string{"net-a"}, nil)
	r.addWorkload("b1", 3, []string{"net-b"}, map[string]string{"role": "db"})
	tcp := api.Protocol{Name: "TCP"}
	udp := api.Protocol{Name: "UDP"}
	r.addPod("p1", 1, "prod", "api", api.EndpointPort{Name: "http", Protocol: tcp, Port: probePort},
		api.EndpointPort{Name: "dns", Protocol: udp, Port: probePort})
	r.addPod("d1", 2, "dev", "default", api.EndpointPort{Name: "http", Protocol: tcp, Port: probePort + 1})
	names := []string{"a1", "a2", "b1", "p1", "d1"}
	for _, o := range parityPolicies(t) {
		linktest.Must(t, r.store.Apply(context.Background(), o))
	}
	r.settle()

	ours := r.matrix(names)
	var open []string
	for p, ok := range ours {
		if ok {
			open = append(open, p.String())
		}
	}
	slices.Sort(open)
	t.Logf("reachability with this dataplane, %d of %d paths open:\n%s", len(open), len(ours), strings.Join(open, "\n"))

	// Hand the host to Felix, as an operator following the README would: our agent stops and its table
	// goes; Felix programs the same namespace from the same datastore.
	handToFelix(t, felix, r)
	r.expectReachWithin(names, 120*time.Second, open)
	t.Logf("Felix (%s) gives the same matrix", felixVersion(felix))
}

// felixBinary is the upstream calico-felix CALICO_FELIX names; without one (or without the ipset it runs)
// the test skips.
func felixBinary(t testing.TB) string {
	felix := os.Getenv("CALICO_FELIX")
	if felix == "" {
		t.Skip("CALICO_FELIX is not set: no upstream calico-felix to compare with (docs/felix-parity.md)")
	}
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Skip("Felix in iptables mode needs ipset: apt-get install ipset")
	}
	return felix
}

// handToFelix stops the rig's agent, removes what it programmed and starts Felix on the same namespace and
// datastore, as an operator following the README would. It returns what stops Felix.
func handToFelix(t testing.TB, felix string, r *rig) (stop func()) {
	t.Helper()
	r.kill()
	linktest.MustDo(t, r.host, func() { linktest.Must(t, cleanup.Remove(cleanup.Options{Log: r.log})) })
	return runFelix(t, felix, r)
}

// parityWorld is what the daemon and calico/node write at start, and the profiles of the scenario.
func parityWorld(t testing.TB) []api.Object {
	ready, order := true, 1000000.0
	info := &api.ClusterInformation{Spec: api.ClusterInformationSpec{ClusterGUID: "parity", ClusterType: "libnetwork", DatastoreReady: &ready}}
	info.Name = "default"
	tier := &api.Tier{Spec: api.TierSpec{Order: &order, DefaultAction: "Deny"}}
	tier.Name = "default"
	node := &api.Node{}
	node.Name = testNode
	return []api.Object{info, tier, node, networkProfile("net-a"), networkProfile("net-b"),
		allowAllProfile("kns.prod", map[string]string{"pcns.projectcalico.org/name": "prod", "pcns.team": "a"}),
		allowAllProfile("kns.dev", map[string]string{"pcns.projectcalico.org/name": "dev", "pcns.team": "b"}),
		allowAllProfile("ksa.prod.api", map[string]string{"pcsa.projectcalico.org/name": "api", "pcsa.role": "frontend"}),
		allowAllProfile("ksa.dev.default", map[string]string{"pcsa.projectcalico.org/name": "default"})}
}

// parityPolicies uses every construct both dataplanes enforce exactly: tiers with Pass, orders and
// their tie-break, selectors and notSelectors, namespaces (policy and rule namespaceSelector,
// NetworkPolicy scoping), service accounts (names, selector, policy serviceAccountSelector), named
// ports and notPorts mixed with numbers, nets and notNets (of one family only, which Felix applies to
// that family alone), protocols, ICMP types, ipVersion, Deny, Pass and Log.
func parityPolicies(t *testing.T) []api.Object {
	tierOrder := 100.0
	security := &api.Tier{Spec: api.TierSpec{Order: &tierOrder, DefaultAction: "Pass"}}
	security.Name = "security"
	quarantine := gnp("security.quarantine", 1, "all()", []string{"Ingress", "Egress"},
		policyRules(t, `[{"action":"Deny","source":{"selector":"role == 'db'"},"protocol":"UDP"},{"action":"Log","protocol":"ICMPv6"}]`),
		policyRules(t, `[{"action":"Deny","protocol":"ICMP","icmp":{"type":8},"destination":{"namespaceSelector":"team == 'b'"}}]`))
	quarantine.Spec.Tier = "security"

	toTeamA := gnp("to-team-a", 10, "", []string{"Ingress"}, policyRules(t,
		`[{"action":"Allow","protocol":"TCP","source":{"namespaceSelector":"projectcalico.org/name == 'dev'"},"destination":{"ports":["http"]}},
		  {"action":"Allow","protocol":"UDP","source":{"serviceAccounts":{"selector":"role == 'frontend'"}},"destination":{"ports":["dns",9]}},
		  {"action":"Allow","source":{"selector":"has(net-a)","notSelector":"role == 'web'"}}]`), nil)
	toTeamA.Spec.NamespaceSelector = "team == 'a'"
	toDev := &api.NetworkPolicy{Spec: api.PolicySpec{Selector: "all()", Types: []string{"Ingress"}, Ingress: policyRules(t,
		`[{"action":"Allow","protocol":"TCP","source":{"serviceAccounts":{"names":["api"]}},"destination":{"notPorts":["http"]}},
		  {"action":"Allow","protocol":"ICMPv6","source":{"namespaceSelector":"all()"}},
		  {"action":"Allow","protocol":"UDP","source":{"notSelector":"has(nothing)"}},
		  {"action":"Allow","protocol":"TCP","source":{"notNets":["10.65.0.0/24"]}}]`)}}
	toDev.Name, toDev.Namespace = "to-dev", "dev"
	webFromPods := gnp("web-from-pods", 20, "role == 'web'", []string{"Ingress"}, policyRules(t,
		`[{"action":"Deny","ipVersion":6,"source":{"serviceAccounts":{"names":["default"]}}},
		  {"action":"Pass","source":{"nets":["10.65.1.0/24"]}}]`), nil)
	// Equal order: "b-first" sorts before "b/" ("-" < "/"), so its Deny decides.
	tieA := gnp("b", 30, "role == 'db'", []string{"Ingress"}, policyRules(t, `[{"action":"Allow"}]`), nil)
	tieB := gnp("b-first", 30, "role == 'db'", []string{"Ingress"}, policyRules(t, `[{"action":"Deny","protocol":"TCP"}]`), nil)
	egress := gnp("sa-egress", 40, "", []string{"Egress"}, nil, policyRules(t,
		`[{"action":"Deny","protocol":"UDP","destination":{"nets":["10.65.0.0/24","fd00:65::/64"]}},{"action":"Pass"}]`))
	egress.Spec.ServiceAccountSelector = "projectcalico.org/name == 'api'"
	return []api.Object{security, quarantine, toTeamA, toDev, webFromPods, tieA, tieB, egress}
}

// matrix probes every ordered pair of the named workloads with every protocol. A probe can only fail
// wrongly (a timeout on a loaded machine), so a path that fails is probed again, a few at a time, up to
// four times in all.
func (r *rig) matrix(names []string) map[path]bool {
	got := r.reach(allPaths(names))
	for range 3 {
		var failed []path
		for p, ok := range got {
			if !ok {
				failed = append(failed, p)
			}
		}
		for chunk := range slices.Chunk(failed, 8) {
			for p, ok := range r.reach(chunk) {
				got[p] = ok
			}
		}
	}
	return got
}

// runFelix starts calico-felix in the rig's host namespace against the rig's etcd, reached through a
// forwarder on the namespace's loopback, and returns what stops it (as does the end of the test).
func runFelix(t testing.TB, felix string, r *rig) (stop func()) {
	t.Helper()
	cfg := r.etcd
	endpoint := forwardLoopback(t, r.host, cfg.Endpoints[0])
	// Nothing Felix writes outlives the test: no log file, no endpoint status files, and its MTU file
	// (/var/lib/calico/mtu, a fixed path) on a tmpfs in the mount namespace `ip netns exec` makes (a slave
	// of the host's, so the mount stays inside).
	cmd := exec.Command("ip", "netns", "exec", r.host, "sh", "-c", `mount -t tmpfs felix /var/lib && exec "$@"`, "sh", felix)
	cmd.Env = append(os.Environ(),
		// Felix reads its own settings, and its datastore client Calico's common ones.
		"FELIX_DATASTORETYPE=etcdv3", "FELIX_ETCDENDPOINTS="+endpoint,
		"FELIX_ETCDCAFILE="+cfg.CACertFile, "FELIX_ETCDCERTFILE="+cfg.CertFile, "FELIX_ETCDKEYFILE="+cfg.Key,
		"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+endpoint,
		"ETCD_CA_CERT_FILE="+cfg.CACertFile, "ETCD_CERT_FILE="+cfg.CertFile, "ETCD_KEY_FILE="+cfg.Key,
		"FELIX_FELIXHOSTNAME="+testNode, "FELIX_LOGSEVERITYSCREEN=info", "FELIX_LOGSEVERITYSYS=none",
		"FELIX_LOGFILEPATH=none", "FELIX_ENDPOINTSTATUSPATHPREFIX=none", "FELIX_HEALTHENABLED=false",
		"FELIX_DEFAULTENDPOINTTOHOSTACTION=ACCEPT", "FELIX_USAGEREPORTINGENABLED=false",
		"FELIX_IPTABLESBACKEND=NFT", "FELIX_PROMETHEUSMETRICSENABLED=false")
	logFile, err := os.CreateTemp("", "felix-parity-*.log")
	linktest.Must(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	linktest.Must(t, cmd.Start())
	stop = sync.OnceFunc(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	t.Cleanup(func() {
		stop()
		logFile.Close()
		if t.Failed() {
			t.Logf("Felix's log: %s", logFile.Name())
		} else {
			os.Remove(logFile.Name())
		}
	})
	return stop
}

// forwardLoopback makes target (https://127.0.0.1:port in this process's namespace) reachable at the same
// address inside namespace ns, for a process run there, and returns that endpoint.
func forwardLoopback(t testing.TB, ns, target string) string {
	t.Helper()
	hostPort := strings.TrimPrefix(target, "https://")
	var l net.Listener
	err := make(chan error, 1)
	go func() {
		// A listener belongs to the namespace it was created in; this thread is never unlocked, so it dies
		// with the goroutine instead of returning to the pool inside ns.
		runtime.LockOSThread()
		h, e := netns.GetFromName(ns)
		if e == nil {
			e = netns.Set(h)
			h.Close()
		}
		var lo netlink.Link
		if e == nil {
			lo, e = netlink.LinkByName("lo") // down in a new namespace
		}
		if e == nil {
			e = netlink.LinkSetUp(lo)
		}
		if e == nil {
			l, e = net.Listen("tcp", hostPort)
		}
		err <- e
	}()
	linktest.Must(t, <-err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, e := l.Accept()
			if e != nil {
				return
			}
			go pipe(c, hostPort)
		}
	}()
	return target
}

func pipe(c net.Conn, hostPort string) {
	defer c.Close()
	u, err := net.Dial("tcp", hostPort)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}

func felixVersion(felix string) string {
	out, err := exec.Command(felix, "--version").Output()
	if err != nil {
		return errors.Join(fmt.Errorf("calico-felix --version"), err).Error()
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// TestFelixParityNATOutgoing hands a host to upstream Felix as TestFelixParity does, and back, on a
// scenario of pools with natOutgoing and two networks: both dataplanes masquerade what leaves the pools for
// an outside network (IPv4 and IPv6) and keep the source between pool addresses, isolate the networks from
// each other, and a connection established under this dataplane carries on under Felix and after.
func TestFelixParityNATOutgoing(t *testing.T) {
	felix := felixBinary(t)
	r := newRig(t, Config{})
	outside := r.plugOutside()
	pool4, pool6 := natPools()
	for _, o := range append(parityWorld(t), pool4, pool6) {
		linktest.Must(t, r.store.Apply(context.Background(), o))
	}
	r.settle()
	a1 := r.addWorkload("a1", 1, []string{"net-a"}, nil)
	a2 := r.addWorkload("a2", 2, []string{"net-a"}, nil)
	r.addWorkload("b1", 3, []string{"net-b"}, nil)
	expect := func(within time.Duration) {
		t.Helper()
		expectSources(t, a1, a2, outside, within)
		r.expectReachWithin([]string{"a1", "a2", "b1"}, within, paths("a1>a2 a2>a1"))
	}
	expect(5 * time.Second)
	established := r.connect("a1", "a2", probePort+10)

	stopFelix := handToFelix(t, felix, r)
	expect(120 * time.Second)
	established.RoundTrip(t)
	t.Logf("Felix (%s) masquerades, keeps sources and isolates as this dataplane does", felixVersion(felix))

	// And back: Felix stops (leaving its rules, as it does), this dataplane starts again.
	stopFelix()
	r.run(t, 10*time.Second)
	expect(5 * time.Second)
	established.RoundTrip(t)
}
