package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// BGPConfiguration configures Calico's BGP: "default" for the cluster, "node.<name>" for one node (other
// names are accepted and used by nothing, as upstream). What is unset takes calico/node's defaults when
// used, never stored: node-to-node mesh on, AS DefaultASNumber, listen port 179 (BIRD's own).
type BGPConfiguration struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       BGPConfigurationSpec `json:"spec"`
}

// BGPConfigurationSpec mirrors Calico's field names and types. The mesh, AS number, service address
// and mesh password and restart time fields may only be set on "default".
type BGPConfigurationSpec struct {
	LogSeverityScreen              string                `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled          *bool                 `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber                       *ASNumber             `json:"asNumber,omitempty"`
	ServiceLoadBalancerIPs         []ServiceIPBlock      `json:"serviceLoadBalancerIPs,omitempty"`
	ServiceExternalIPs             []ServiceIPBlock      `json:"serviceExternalIPs,omitempty"`
	ServiceClusterIPs              []ServiceIPBlock      `json:"serviceClusterIPs,omitempty"`
	ServiceLoadBalancerAggregation string                `json:"serviceLoadBalancerAggregation,omitempty"`
	Communities                    []Community           `json:"communities,omitempty"`
	PrefixAdvertisements           []PrefixAdvertisement `json:"prefixAdvertisements,omitempty"`
	ListenPort                     uint16                `json:"listenPort,omitempty"`
	NodeMeshPassword               *BGPPassword          `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime         *Duration             `json:"nodeMeshMaxRestartTime,omitempty"`
	BindMode                       string                `json:"bindMode,omitempty"`
	IgnoredInterfaces              []string              `json:"ignoredInterfaces,omitempty"`
	LocalWorkloadPeeringIPV4       string                `json:"localWorkloadPeeringIPV4,omitempty"`
	LocalWorkloadPeeringIPV6       string                `json:"localWorkloadPeeringIPV6,omitempty"`
	ProgramClusterRoutes           string                `json:"programClusterRoutes,omitempty"`
	IPv4NormalRoutePriority        *int                  `json:"ipv4NormalRoutePriority,omitempty"`
	IPv6NormalRoutePriority        *int                  `json:"ipv6NormalRoutePriority,omitempty"`
}

// ServiceIPBlock is one CIDR of Kubernetes service addresses to advertise.
type ServiceIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// Community names a BGP community value: "aa:nn" (standard, 16-bit parts) or "aa:nn:mm" (large, 32-bit).
type Community struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// PrefixAdvertisement attaches communities (values, or names from the spec's Communities) to a CIDR's routes.
type PrefixAdvertisement struct {
	CIDR        string   `json:"cidr,omitempty"`
	Communities []string `json:"communities,omitempty"`
}

// BGPPeer is a BGP peering of the selected nodes with an address, or with other Calico nodes.
type BGPPeer struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       BGPPeerSpec `json:"spec"`
}

// BGPPeerSpec mirrors Calico's field names and types. Node and NodeSelector empty means every node;
// SourceAddress empty means SourceAddressUseNodeIP.
type BGPPeerSpec struct {
	Node                     string       `json:"node,omitempty"`
	NodeSelector             string       `json:"nodeSelector,omitempty"`
	PeerIP                   string       `json:"peerIP,omitempty"` // an IP, "<IPv4>:<port>" or "[<IPv6>]:<port>"
	ASNumber                 ASNumber     `json:"asNumber,omitempty"`
	LocalASNumber            *ASNumber    `json:"localASNumber,omitempty"`
	PeerSelector             string       `json:"peerSelector,omitempty"`
	KeepOriginalNextHop      bool         `json:"keepOriginalNextHop,omitempty"` // deprecated upstream for NextHopMode
	NextHopMode              string       `json:"nextHopMode,omitempty"`
	Password                 *BGPPassword `json:"password,omitempty"`
	SourceAddress            string       `json:"sourceAddress,omitempty"`
	MaxRestartTime           *Duration    `json:"maxRestartTime,omitempty"`
	KeepaliveTime            *Duration    `json:"keepaliveTime,omitempty"`
	NumAllowedLocalASNumbers *int32       `json:"numAllowedLocalASNumbers,omitempty"`
	TTLSecurity              *uint8       `json:"ttlSecurity,omitempty"`
	ReachableBy              string       `json:"reachableBy,omitempty"`
	Filters                  []string     `json:"filters,omitempty"` // BGPFilter names
	LocalWorkloadSelector    string       `json:"localWorkloadSelector,omitempty"`
	ReversePeering           string       `json:"reversePeering,omitempty"`
}

// Values of BGPPeerSpec.SourceAddress.
const (
	SourceAddressUseNodeIP = "UseNodeIP"
	SourceAddressNone      = "None"
)

// The forms of a peer address with a port, as upstream's validator recognises them.
var (
	ipv4PortRE = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+:\d+$`)
	ipv6PortRE = regexp.MustCompile(`^\[[0-9a-fA-F:.]+\]:\d+$`)
)

// ParsePeerIP reads BGPPeerSpec.PeerIP: an address alone (port 0: the peer's listen port or 179), or
// "<IPv4>:<port>" or "[<IPv6>]:<port>" with a port of 1-65535. An IPv4-mapped IPv6 address is IPv4.
func ParsePeerIP(s string) (netip.Addr, uint16, error) {
	host, port := s, uint64(0)
	if ipv4PortRE.MatchString(s) || ipv6PortRE.MatchString(s) {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return netip.Addr{}, 0, err
		}
		if port, err = strconv.ParseUint(p, 10, 16); err != nil || port == 0 {
			return netip.Addr{}, 0, fmt.Errorf("port %q is not 1-65535", p)
		}
		host = h
	}
	addr, ok := parseIP(host)
	if !ok {
		return netip.Addr{}, 0, errors.New("want an IP address, <IPv4>:<port> or [<IPv6>]:<port>")
	}
	return addr, uint16(port), nil
}

// BGPPassword says where a BGP session's password is: a key of a Kubernetes secret.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// SecretKeySelector is Kubernetes' reference to a key of a secret, with its field names.
type SecretKeySelector struct {
	Name     string `json:"name,omitempty"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// DefaultASNumber is the AS number calico/node uses when neither the node nor BGPConfiguration "default"
// sets one.
const DefaultASNumber ASNumber = 64512

// ASNumber is a BGP AS number, as upstream's numorstring.ASNumber: read from a JSON number or a string,
// plain ("64512") or dotted ("1.10", which is 1<<16 + 10), and written as a number.
type ASNumber uint32

// ParseASNumber parses the plain or dotted form.
func ParseASNumber(s string) (ASNumber, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return ASNumber(n), nil
	}
	high, low, dotted := strings.Cut(s, ".")
	h, err1 := strconv.ParseUint(high, 10, 16)
	l, err2 := strconv.ParseUint(low, 10, 16)
	if !dotted || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid AS number %q: want 0-4294967295 or dotted <0-65535>.<0-65535>", s)
	}
	return ASNumber(h<<16 + l), nil
}

// UnmarshalJSON accepts a number, or a string in either form.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		n, err := ParseASNumber(s)
		if err != nil {
			return err
		}
		*a = n
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("invalid AS number %s: want 0-4294967295 or a dotted string \"<0-65535>.<0-65535>\"", b)
	}
	*a = ASNumber(n)
	return nil
}

func (a ASNumber) String() string { return strconv.FormatUint(uint64(a), 10) }

// Duration is a Kubernetes duration: written as Go formats it ("1m30s"), read as time.ParseDuration does.
type Duration time.Duration

// MarshalJSON writes the duration in Go's canonical form, as upstream stores it.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string ("90s", "2m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"90s\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
