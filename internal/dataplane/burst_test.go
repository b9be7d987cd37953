package dataplane

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// Joins that arrive together are served together: each EndpointUp returns only once its endpoint's
// routes and both dispatch entries are in the kernel, and the burst costs a few nftables transactions,
// not one per endpoint. The endpoints are not in the datastore, so only EndpointUp can program them.
func TestEndpointUpBurst(t *testing.T) {
	r := newRig(t, Config{ResyncInterval: time.Hour}) // no periodic pass among the counted transactions
	r.put(networkProfile("net"))
	const n = 40
	weps := r.vethEndpoints(n, "burst", "10.65.1.")
	transactions := countTransactions(t, r.host)
	var wg sync.WaitGroup
	for _, w := range weps {
		wg.Go(func() {
			if err := r.agent.EndpointUp(context.Background(), w); err != nil {
				t.Errorf("EndpointUp %s: %v", w.Spec.InterfaceName, err)
				return
			}
			if err := inKernel(r.host, w); err != nil {
				t.Errorf("EndpointUp %s returned before its endpoint was in the kernel: %v", w.Spec.InterfaceName, err)
			}
		})
	}
	wg.Wait()
	got := transactions()
	t.Logf("%d EndpointUps at once: %d nftables transactions", n, got)
	if got > n/4 {
		t.Errorf("%d EndpointUps at once took %d nftables transactions; want them to share a few", n, got)
	}
}

// A burst whose shared transaction the kernel refuses, because the table was deleted under the agent,
// is still served in the same pass: the firewall then rewrites the whole table, and every EndpointUp
// returns with its endpoint in the kernel.
func TestEndpointUpBurstTableDeleted(t *testing.T) {
	r := newRig(t, Config{ResyncInterval: time.Hour})
	r.put(networkProfile("net"))
	const n = 10
	weps := r.vethEndpoints(n, "fail", "10.65.2.")
	// The burst queues behind a job that holds the worker while the table goes.
	held, release := make(chan struct{}), make(chan struct{})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // runs before the rig's cleanup, which waits for the worker: a failure cannot hang it
	go func() {
		_ = r.agent.do(context.Background(), func() error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, w := range weps {
		wg.Go(func() { errs[i] = r.agent.EndpointUp(context.Background(), w) })
	}
	time.Sleep(500 * time.Millisecond) // all queued
	_, err := linktest.Exec(r.host, "nft", "delete", "table", "inet", "calico")
	linktest.Must(t, err)
	free()
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			err = inKernel(r.host, weps[i])
		}
		if err != nil {
			t.Errorf("EndpointUp %s: %v", weps[i].Spec.InterfaceName, err)
		}
	}
}

// inKernel checks that an endpoint's address is routed to its interface and that both dispatch maps
// send its interface to a policy chain.
func inKernel(host string, w *api.WorkloadEndpoint) error {
	iface, addr := w.Spec.InterfaceName, strings.TrimSuffix(w.Spec.IPNetworks[0], "/32")
	routes, err := linktest.Exec(host, "ip", "route", "show", "dev", iface)
	if err != nil {
		return err
	}
	if !strings.Contains(routes, addr) {
		return fmt.Errorf("no route to %s on %s:\n%s", addr, iface, routes)
	}
	for _, m := range []string{"to-wl-map", "from-wl-map"} {
		out, err := linktest.Exec(host, "nft", "list", "map", "inet", "calico", m)
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"`+iface+`" : goto `) {
			return fmt.Errorf("%s has no entry for %s:\n%s", m, iface, out)
		}
	}
	return nil
}

// countTransactions follows the nftables transactions (generations) of namespace ns from now on; the
// function it returns stops and reports how many there were.
func countTransactions(t *testing.T, ns string) func() int {
	t.Helper()
	mon := exec.Command("ip", "netns", "exec", ns, "nft", "monitor")
	out, err := mon.StdoutPipe()
	linktest.Must(t, err)
	linktest.Must(t, mon.Start())
	t.Cleanup(func() { _ = mon.Process.Kill(); _ = mon.Wait() })
	lines := make(chan string)
	go func() {
		defer close(lines)
		for s := bufio.NewScanner(out); s.Scan(); {
			lines <- s.Text()
		}
	}()
	// A marker table, added and deleted, brackets the transactions counted; the monitor has subscribed
	// once it reports one, until then another is tried.
	var marker string
	for attempt := 0; marker == ""; attempt++ {
		if attempt == 50 {
			t.Fatal("nft monitor reports no transactions")
		}
		name := fmt.Sprintf("count-marker-%d", attempt)
		_, err := linktest.Exec(ns, "nft", "add", "table", "inet", name)
		linktest.Must(t, err)
		timeout := time.After(200 * time.Millisecond)
		for marker == "" {
			select {
			case line := <-lines:
				if line == "add table inet "+name {
					marker = name
				}
				continue
			case <-timeout:
			}
			break
		}
		if marker == "" {
			_, err := linktest.Exec(ns, "nft", "delete", "table", "inet", name)
			linktest.Must(t, err)
		}
	}
	counted := make(chan int, 1)
	go func() {
		n := 0
		for line := range lines {
			if line == "delete table inet "+marker {
				break
			}
			if strings.HasPrefix(line, "# new generation") {
				n++
			}
		}
		counted <- n - 1 // the marker's own addition
	}()
	return func() int {
		_, err := linktest.Exec(ns, "nft", "delete", "table", "inet", marker)
		linktest.Must(t, err)
		return <-counted
	}
}

// vethEndpoints makes n endpoints, each with its veth in the rig's host namespace: names name<i>,
// addresses net<i+1> (net a /24's first three bytes and a dot).
func (r *rig) vethEndpoints(n int, name, net string) []*api.WorkloadEndpoint {
	weps := make([]*api.WorkloadEndpoint, n)
	linktest.MustDo(r.t, r.host, func() {
		for i := range weps {
			weps[i] = vethEndpoint(r.t, endpointID(fmt.Sprint(name, i)), fmt.Sprint(net, i+1))
		}
	})
	return weps
}
