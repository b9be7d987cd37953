// Package linktest gives dataplane tests throwaway network namespaces, workloads plugged into a host
// namespace as Docker and the driver would, and TCP, UDP and ICMP probes between them, so they
// exercise the real kernel without touching the machine's own network. It is for _test files only
// and needs root.
package linktest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, interfaces and firewall rules")
	}
}

// NewNS creates a named network namespace ("test-<label>-<random>", usable with ip netns exec)
// and deletes it, with everything in it, when the test ends.
func NewNS(t testing.TB, label string) string {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "test-" + label + "-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// Do runs fn with the calling goroutine locked to a thread inside namespace ns; netlink calls
// and /proc/sys act on the calling thread's namespace. Safe to nest and to call concurrently.
// If fn exits through t.FailNow the namespace is still restored.
func Do(ns string, fn func()) error {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("opening netns %s: %w", ns, err)
	}
	return doIn(target, ns, fn)
}

// DoPID is Do in the network namespace of process pid, say a container's.
func DoPID(pid int, fn func()) error {
	target, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("opening the netns of pid %d: %w", pid, err)
	}
	return doIn(target, fmt.Sprintf("of pid %d", pid), fn)
}

// doIn runs fn in target, which ns names in errors, and closes target.
func doIn(target netns.NsHandle, ns string, fn func()) (err error) {
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering netns %s: %w", ns, err)
	}
	defer func() {
		if restoreErr := netns.Set(orig); restoreErr != nil {
			// Stay locked: the runtime then discards the thread with the goroutine instead of
			// reusing it in the wrong namespace.
			err = fmt.Errorf("leaving netns %s: %w", ns, restoreErr)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
	return nil
}

// MustDo is Do for the test goroutine.
func MustDo(t testing.TB, ns string, fn func()) {
	t.Helper()
	if err := Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// Exec runs a command inside ns with ip netns exec and returns its combined output.
func Exec(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %q: %w: %s", ns, args, err, out)
	}
	return string(out), nil
}

// ExecStdin is Exec with stdin.
func ExecStdin(ns, stdin string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %q: %w: %s", ns, args, err, out)
	}
	return string(out), nil
}

// ReportPercentiles reports the 50th and 99th percentile of a benchmark's per-operation times.
func ReportPercentiles(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	for _, p := range []int{50, 99} {
		b.ReportMetric(float64(took[(len(took)-1)*p/100].Microseconds())/1000, fmt.Sprintf("p%d-ms", p))
	}
}

// Ping sends one echo request from ns to ip and fails unless a reply comes within a second.
func Ping(ns string, ip net.IP) error {
	return PingWithin(ns, ip, time.Second)
}

// PingWithin is Ping with another timeout.
func PingWithin(ns string, ip net.IP, timeout time.Duration) error {
	_, err := Exec(ns, "ping", "-c1", "-W", strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64), ip.String())
	return err
}

// Workload is a namespace standing in for a container, attached to the host through
// HostIface.
type Workload struct {
	NS         string
	HostIface  string
	IPv4, IPv6 net.IP
}

// Do runs fn in the workload's namespace (see Do).
func (w Workload) Do(fn func()) error { return Do(w.NS, fn) }

// Routed builds what the driver and Docker build for two containers: a host namespace (see Host)
// and, per workload, a veth plugged in by Plug, with the workload routes Join installs. Host
// interfaces are prefix+"a" and prefix+"b".
func Routed(t testing.TB, prefix string) (host string, workloads []Workload) {
	t.Helper()
	host = Host(t)
	workloads = []Workload{
		{NS: NewNS(t, "wl"), HostIface: prefix + "a",
			IPv4: net.ParseIP("10.65.0.1"), IPv6: net.ParseIP("fd00:65::1")},
		{NS: NewNS(t, "wl"), HostIface: prefix + "b",
			IPv4: net.ParseIP("10.65.0.2"), IPv6: net.ParseIP("fd00:65::2")},
	}
	for _, w := range workloads {
		mac := Plug(t, host, w)
		MustDo(t, host, func() {
			Must(t, link.AddWorkloadRoute(w.HostIface, w.IPv4, mac))
			Must(t, link.AddWorkloadRoute(w.HostIface, w.IPv6, mac))
		})
	}
	return host, workloads
}

// Host returns a new namespace standing in for a Docker host: forwarding on, and a default route out
// of another interface (uplink0, whose peer uplink1 stays in the namespace), because the kernel
// proxy-ARPs for 169.254.1.1 only if it routes that address elsewhere (Calico issue 3270).
func Host(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("needs ping to check connectivity: apt-get install iputils-ping")
	}
	host := NewNS(t, "host")
	MustDo(t, host, func() {
		Must(t, link.EnableForwarding(true))
		addUplink(t)
	})
	return host
}

func addUplink(t testing.TB) {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "uplink0"
	uplink := netlink.NewVeth(attrs)
	uplink.PeerName = "uplink1"
	Must(t, netlink.LinkAdd(uplink))
	Must(t, netlink.LinkSetUp(uplink))
	peer, err := netlink.LinkByName("uplink1")
	Must(t, err)
	Must(t, netlink.LinkSetUp(peer))
	Must(t, netlink.RouteAdd(&netlink.Route{LinkIndex: uplink.Attrs().Index,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}))
}

// Plug does for workload w what the driver and Docker do for a container, short of the host routes:
// a veth from link.CreateVeth in host, its peer moved into w.NS and set up like Calico's CNI plugin
// does (address /32 and /128, default routes via 169.254.1.1 and via the host end's link-local). It
// returns the workload-side MAC.
func Plug(t testing.TB, host string, w Workload) net.HardwareAddr {
	t.Helper()
	peerName := ("p" + w.HostIface)[:min(len(w.HostIface)+1, 15)]
	var mac net.HardwareAddr
	var gw6 net.IP
	MustDo(t, host, func() {
		var err error
		mac, err = link.CreateVeth(link.Veth{HostName: w.HostIface, PeerName: peerName, IPv6: true}, nil)
		Must(t, err)
		gw6, err = link.LinkLocalIPv6(w.HostIface)
		Must(t, err)
		peer, err := netlink.LinkByName(peerName)
		Must(t, err)
		target, err := netns.GetFromName(w.NS)
		Must(t, err)
		defer target.Close()
		Must(t, netlink.LinkSetNsFd(peer, int(target)))
	})
	MustDo(t, w.NS, func() {
		peer, err := netlink.LinkByName(peerName)
		Must(t, err)
		idx := peer.Attrs().Index
		Must(t, netlink.AddrAdd(peer, &netlink.Addr{IPNet: hostNet(w.IPv4)}))
		Must(t, netlink.AddrAdd(peer, &netlink.Addr{IPNet: hostNet(w.IPv6), Flags: unix.IFA_F_NODAD}))
		Must(t, netlink.LinkSetUp(peer))
		gw4 := net.IPv4(169, 254, 1, 1)
		Must(t, netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: hostNet(gw4), Scope: netlink.SCOPE_LINK}))
		Must(t, netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Gw: gw4}))
		Must(t, netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Gw: gw6}))
	})
	return mac
}

func hostNet(ip net.IP) *net.IPNet {
	if ip4 := ip.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

// Must fails the test on a non-nil error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// AddLink creates a link that is not a veth, of kind "dummy", "bridge" or "ifb", in the calling thread's
// namespace: an interface the plugin did not make. A kernel built without the dummy driver gets an ifb
// (just as much a standalone device that is not a veth) and the test says so. It returns the kind made.
func AddLink(t testing.TB, name, kind string) string {
	t.Helper()
	attrs := netlink.LinkAttrs{Name: name}
	var l netlink.Link
	switch kind {
	case "dummy":
		l = &netlink.Dummy{LinkAttrs: attrs}
	case "bridge":
		l = &netlink.Bridge{LinkAttrs: attrs}
	case "ifb":
		l = &netlink.Ifb{LinkAttrs: attrs}
	default:
		t.Fatalf("AddLink: unknown kind %q", kind)
	}
	err := netlink.LinkAdd(l)
	if kind == "dummy" && errors.Is(err, unix.EOPNOTSUPP) {
		t.Logf("this kernel has no dummy driver: %s is an ifb instead", name)
		return AddLink(t, name, "ifb")
	}
	Must(t, err)
	return kind
}

// Eventually calls check every interval until it returns nil; it fails the test with check's last error
// after timeout.
func Eventually(t testing.TB, timeout, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
			return // a testing.TB that records rather than stops
		}
		time.Sleep(interval)
	}
}

// RouteAsFelix routes a workload's addresses to its host interface in namespace host the way Felix does
// for a workload it did not plug: link-scope routes of protocol boot, and permanent neighbour entries
// when mac is given.
func RouteAsFelix(t testing.TB, host string, w Workload, mac net.HardwareAddr) {
	t.Helper()
	MustDo(t, host, func() {
		l, err := netlink.LinkByName(w.HostIface)
		Must(t, err)
		for _, ip := range []net.IP{w.IPv4, w.IPv6} {
			if ip == nil {
				continue
			}
			family := netlink.FAMILY_V6
			if ip.To4() != nil {
				family = netlink.FAMILY_V4
			}
			Must(t, netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK,
				Dst: hostNet(ip), Protocol: unix.RTPROT_BOOT}))
			if mac != nil {
				Must(t, netlink.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family,
					State: netlink.NUD_PERMANENT, IP: ip, HardwareAddr: mac}))
			}
		}
	})
}
