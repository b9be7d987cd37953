package e2e

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// The flow's ports: A sends from flowSrcPort to flowDstPort on B's address, again and again.
const flowSrcPort, flowDstPort = 40000, 5000

// A UDP flow outlives its container: A keeps sending to B's address after B is removed, and a new
// container C gets that address. B's answers made the flow established, which the firewall accepts
// without asking policy; so a policy written meanwhile that denies the flow binds B's flow no more
// than an established one, but binds C's from its first packet: removing B deleted the flow's
// conntrack entry, and A's flow to C is new.
func TestReleasedAddressFlows(t *testing.T) {
	e := start(t, nil)
	netName := e.poolNetwork("e2e-flows", "flows", "10.231.0.0/16")
	const addr = "10.231.0.50"
	a := e.run("a", "--net", netName)
	b := e.run("b", "--net", netName, "--ip", addr)
	bGot := e.udpServer(b)
	answers := e.udpSender(a, addr)
	linktest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if answers.Load() == 0 {
			return fmt.Errorf("B has not answered A's UDP flow")
		}
		return nil
	})
	if n := flowsWith(t, addr); n == 0 {
		t.Fatalf("no conntrack entry of A's flow to %s", addr)
	}

	e.applyYAML(fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: e2e-no-udp-in}
spec:
  order: 1
  selector: has(%s)
  types: [Ingress]
  ingress:
  - {action: Deny, protocol: UDP, destination: {ports: [%d]}}
  - {action: Pass}
`, netName, flowDstPort))
	time.Sleep(time.Second) // the agent applies it in milliseconds
	before := bGot.Load()
	time.Sleep(time.Second)
	if bGot.Load() == before {
		t.Fatal("B's established flow stopped under the new policy; the test needs it to go on")
	}

	e.docker("rm", "-f", b)
	linktest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if n := flowsWith(t, addr); n > 0 {
			return fmt.Errorf("%d conntrack entries of %s after its container was removed", n, addr)
		}
		return nil
	})

	c := e.run("c", "--net", netName, "--ip", addr)
	cGot := e.udpServer(c)
	time.Sleep(2 * time.Second)
	if n := cGot.Load(); n > 0 {
		t.Errorf("A's old flow reached the container that got its address: %d datagrams past the policy", n)
	}
	if n := flowsWith(t, addr); n > 0 {
		t.Errorf("%d conntrack entries of %s while policy drops A's flow", n, addr)
	}

	// A was sending all along: without the policy its flow reaches C.
	e.calicoctl("delete", "globalnetworkpolicy", "e2e-no-udp-in")
	linktest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if cGot.Load() == 0 {
			return fmt.Errorf("A's flow does not reach C without the policy")
		}
		return nil
	})
}

// udpServer answers every datagram to flowDstPort in a container's network namespace and counts them.
func (e *env) udpServer(container string) *atomic.Int64 {
	e.t.Helper()
	var c net.PacketConn
	e.inContainer(container, func() (err error) {
		c, err = net.ListenPacket("udp4", ":"+strconv.Itoa(flowDstPort))
		return err
	})
	e.t.Cleanup(func() { c.Close() })
	var got atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Add(1)
			_, _ = c.WriteTo([]byte("pong"), from)
		}
	}()
	return &got
}

// udpSender sends a datagram from flowSrcPort in a container's network namespace to addr:flowDstPort
// every 100 ms until the test ends, and counts the answers.
func (e *env) udpSender(container, addr string) *atomic.Int64 {
	e.t.Helper()
	var c *net.UDPConn
	e.inContainer(container, func() (err error) {
		c, err = net.DialUDP("udp4", &net.UDPAddr{Port: flowSrcPort}, &net.UDPAddr{IP: net.ParseIP(addr), Port: flowDstPort})
		return err
	})
	e.t.Cleanup(func() { c.Close() })
	var answers atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err == nil {
				answers.Add(1)
			} else if !isRefused(err) {
				return
			}
		}
	}()
	go func() {
		for {
			// A refusal (B's port closed while it stops) is reported on the next send; the flow goes on.
			if _, err := c.Write([]byte("ping")); err != nil && !isRefused(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return &answers
}

func isRefused(err error) bool {
	var errno unix.Errno
	return errors.As(err, &errno) && errno == unix.ECONNREFUSED
}

// inContainer runs fn in a container's network namespace; sockets it opens stay there.
func (e *env) inContainer(container string, fn func() error) {
	e.t.Helper()
	pid, err := strconv.Atoi(e.docker("inspect", "-f", "{{.State.Pid}}", container))
	if err != nil {
		e.t.Fatalf("pid of %s: %v", container, err)
	}
	var fnErr error
	if err := linktest.DoPID(pid, func() { fnErr = fn() }); err != nil {
		e.t.Fatal(err)
	}
	if fnErr != nil {
		e.t.Fatalf("in %s: %v", container, fnErr)
	}
}

// flowsWith counts the host's IPv4 conntrack entries in which addr takes any part.
func flowsWith(t *testing.T, addr string) int {
	t.Helper()
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatalf("listing conntrack entries: %v", err)
	}
	ip := net.ParseIP(addr)
	n := 0
	for _, f := range flows {
		if f.Forward.SrcIP.Equal(ip) || f.Forward.DstIP.Equal(ip) || f.Reverse.SrcIP.Equal(ip) || f.Reverse.DstIP.Equal(ip) {
			n++
		}
	}
	return n
}
