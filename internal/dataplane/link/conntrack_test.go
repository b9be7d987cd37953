package link_test

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// udpFlow is a conntrack entry for UDP from src to dst, answered by replySrc to replyDst (a NAT
// shows as replies between other addresses than the original ones).
func udpFlow(src, dst, replySrc, replyDst string) *netlink.ConntrackFlow {
	family := uint8(unix.AF_INET6)
	ip := net.ParseIP
	if net.ParseIP(src).To4() != nil {
		// The kernel wants 4-byte IPv4 addresses.
		family, ip = unix.AF_INET, func(s string) net.IP { return net.ParseIP(s).To4() }
	}
	return &netlink.ConntrackFlow{FamilyType: family, TimeOut: 300,
		Forward: netlink.IPTuple{Protocol: unix.IPPROTO_UDP, SrcIP: ip(src), DstIP: ip(dst), SrcPort: 40000, DstPort: 53},
		Reverse: netlink.IPTuple{Protocol: unix.IPPROTO_UDP, SrcIP: ip(replySrc), DstIP: ip(replyDst), SrcPort: 53, DstPort: 40000}}
}

// flowKeys lists a family's entries as "src>dst" of the original direction.
func flowKeys(t *testing.T, family netlink.InetFamily) []string {
	t.Helper()
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, family)
	linktest.Must(t, err)
	var keys []string
	for _, f := range flows {
		keys = append(keys, f.Forward.SrcIP.String()+">"+f.Forward.DstIP.String())
	}
	slices.Sort(keys)
	return keys
}

// The entries an address takes part in go, in any of the four places; entries of other addresses,
// including ones that share its prefix or the other family, stay.
func TestDeleteFlows(t *testing.T) {
	inNewNS(t, func() {
		flows := []*netlink.ConntrackFlow{
			udpFlow("10.65.0.2", "10.65.0.9", "10.65.0.9", "10.65.0.2"),       // it sends
			udpFlow("10.65.0.9", "10.65.0.2", "10.65.0.2", "10.65.0.9"),       // it is sent to
			udpFlow("10.65.0.8", "192.0.2.1", "10.65.0.2", "10.65.0.8"),       // a service it answers for (DNAT)
			udpFlow("192.0.2.7", "198.51.100.1", "198.51.100.1", "10.65.0.2"), // its traffic leaving masqueraded
			udpFlow("10.65.0.20", "10.65.0.9", "10.65.0.9", "10.65.0.20"),
			udpFlow("10.65.0.9", "10.65.0.21", "10.65.0.21", "10.65.0.9"),
			udpFlow("fd00:65::2", "fd00:65::9", "fd00:65::9", "fd00:65::2"),
			udpFlow("fd00:65::9", "fd00:65::20", "fd00:65::20", "fd00:65::9"),
		}
		for _, f := range flows {
			linktest.Must(t, netlink.ConntrackCreate(netlink.ConntrackTable, netlink.InetFamily(f.FamilyType), f))
		}

		n, err := link.DeleteFlows(net.ParseIP("10.65.0.2"))
		linktest.Must(t, err)
		if n != 4 {
			t.Errorf("deleted %d entries of 10.65.0.2, want 4", n)
		}
		if got, want := flowKeys(t, unix.AF_INET), []string{"10.65.0.20>10.65.0.9", "10.65.0.9>10.65.0.21"}; !slices.Equal(got, want) {
			t.Errorf("IPv4 entries left: %v, want %v", got, want)
		}
		if got := flowKeys(t, unix.AF_INET6); len(got) != 2 {
			t.Errorf("IPv6 entries left: %v, want both", got)
		}

		n, err = link.DeleteFlows(net.ParseIP("fd00:65::2"))
		linktest.Must(t, err)
		if got, want := flowKeys(t, unix.AF_INET6), []string{"fd00:65::9>fd00:65::20"}; n != 1 || !slices.Equal(got, want) {
			t.Errorf("after deleting fd00:65::2's %d entries, IPv6 entries left: %v, want %v", n, got, want)
		}
		// Nothing left to delete is no error.
		if n, err := link.DeleteFlows(net.ParseIP("fd00:65::2")); n != 0 || err != nil {
			t.Errorf("second DeleteFlows: %d, %v", n, err)
		}
		if _, err := link.DeleteFlows(net.IP{1, 2}); err == nil {
			t.Error("an invalid IP accepted")
		}
	})
}
