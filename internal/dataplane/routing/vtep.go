package routing

import (
	"crypto/sha1"
	"net"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// vtepMAC is a node's VTEP MAC: vxlanTunnelMACAddr when set, else derived from the node name as Felix
// derives it ('f' then the first five bytes of the name's SHA-1), so every host computes the same MAC
// for a node without asking it.
func vtepMAC(n *api.Node) net.HardwareAddr {
	if mac, err := net.ParseMAC(n.Spec.VXLANTunnelMACAddr); err == nil && len(mac) == 6 {
		return mac
	}
	return derivedMAC(n.Name)
}

func derivedMAC(nodeName string) net.HardwareAddr {
	sum := sha1.Sum([]byte(nodeName))
	return net.HardwareAddr{'f', sum[0], sum[1], sum[2], sum[3], sum[4]}
}
