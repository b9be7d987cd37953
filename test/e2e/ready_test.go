package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// firstPings is how many containers TestFirstPing starts.
const firstPings = 50

// A container's networking is complete when its process starts: 50 containers, run one after another,
// each ping a peer as their very first command, and not one of those echo requests is lost. Every tenth
// container is started while the plugin is down: Docker retries its calls until the restarted daemon's
// sockets appear, so that container's Join is among the first calls the new daemon serves. The sockets
// appear only once the dataplane has programmed the datastore's state (1,000 endpoints of another host
// and 100 policies here, which take it a while), and Join returns only once the endpoint's routes and
// dispatch entries are in the kernel.
func TestFirstPing(t *testing.T) {
	e := start(t, nil)
	e.seed(1000, 100)
	net := e.network("net")
	peer := e.run("peer", "--net", net)
	peerIP := e.containerIP(peer, net, false)
	began := time.Now()
	var lost []string
	for i := range firstPings {
		name := e.name(fmt.Sprintf("first%02d", i))
		run := func() error {
			out, err := harness.DockerErr("run", "--rm", "--name", name, "--net", net, harness.TestImage,
				"ping", "-c", "1", "-W", "2", peerIP)
			if err != nil {
				return fmt.Errorf("%s: %w\n%s", name, err, out)
			}
			return nil
		}
		var err error
		switch i % 10 {
		case 5: // the first container after a restart
			e.plugin.Restart()
			err = run()
		case 9: // started while the plugin is down
			e.plugin.Stop()
			ran := make(chan error, 1)
			go func() { ran <- run() }()
			time.Sleep(time.Second) // docker run waits for the plugin
			e.plugin.Restart()
			err = <-ran
		default:
			err = run()
		}
		if err != nil {
			lost = append(lost, err.Error())
		}
	}
	t.Logf("%d containers, each pinging as its first command, took %v", firstPings, time.Since(began).Round(100*time.Millisecond))
	if len(lost) > 0 {
		t.Errorf("%d of %d first pings lost:\n%s", len(lost), firstPings, strings.Join(lost, "\n"))
	}
}

// seed writes n endpoints of another host, labelled app=app<i%20>, and p policies each selecting one app
// and letting another in, into the plugin's datastore: enough that a restarted daemon takes a while (about
// half a second) to program it.
func (e *env) seed(n, p int) {
	e.t.Helper()
	cfg, err := datastore.EmbeddedClientConfig(e.plugin.DataDir())
	linktest.Must(e.t, err)
	store, err := datastore.Connect(cfg)
	linktest.Must(e.t, err)
	defer store.Close()
	var objs []api.Object
	for i := range n {
		id := fmt.Sprintf("%064x", i+1)
		w, err := api.LibnetworkEndpoint("elsewhere", id)
		linktest.Must(e.t, err)
		w.Labels = map[string]string{"app": fmt.Sprintf("app%d", i%20)}
		w.Spec.InterfaceName = api.LibnetworkInterface(id)
		w.Spec.IPNetworks = []string{fmt.Sprintf("10.201.%d.%d/32", i/256, i%256)}
		objs = append(objs, w)
	}
	for i := range p {
		order := float64(i)
		gnp := &api.GlobalNetworkPolicy{Spec: api.PolicySpec{Order: &order, Types: []string{"Ingress"},
			Selector: fmt.Sprintf("app == 'app%d'", i%20),
			Ingress:  []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: fmt.Sprintf("app == 'app%d'", (i+1)%20)}}}}}
		gnp.Name = fmt.Sprintf("seed-%03d", i)
		objs = append(objs, gnp)
	}
	// A few writers at once: one at a time takes seconds.
	const writers = 16
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var err error
			for i := w; i < len(objs); i += writers {
				err = errors.Join(err, store.Create(context.Background(), objs[i]))
			}
			errs <- err
		}()
	}
	for range writers {
		linktest.Must(e.t, <-errs)
	}
}

// burstRuns is how many containers TestBurstLikeBridge starts at once on each driver.
const burstRuns = 50

// A burst of parallel `docker run -d` on a Calico network takes about as long as on Docker's bridge:
// Joins that arrive together are served by one dataplane pass. Both times are logged; the test fails only
// if Calico takes more than twice as long plus a second (the machine's load varies too much for less).
func TestBurstLikeBridge(t *testing.T) {
	e := start(t, nil)
	bridge := e.name("bridge")
	e.docker("network", "create", "-d", "bridge", bridge)
	took := map[string]time.Duration{}
	for _, net := range []string{bridge, e.network("calico")} {
		names := make([]string, burstRuns)
		errs := make([]error, burstRuns)
		began := time.Now()
		var wg sync.WaitGroup
		for i := range names {
			names[i] = fmt.Sprintf("%s-%03d", net, i)
			wg.Go(func() {
				_, errs[i] = harness.DockerErr("run", "-d", "--name", names[i], "--net", net, harness.TestImage, "sleep", "3600")
			})
		}
		wg.Wait()
		took[net] = time.Since(began)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		e.docker(append([]string{"rm", "-f"}, names...)...)
	}
	calico := took[e.name("calico")]
	t.Logf("%d parallel docker run -d: bridge %v, calico %v", burstRuns, took[bridge].Round(10*time.Millisecond),
		calico.Round(10*time.Millisecond))
	if calico > 2*took[bridge]+time.Second {
		t.Errorf("a burst on calico took %v, more than twice the bridge's %v", calico, took[bridge])
	}
}
