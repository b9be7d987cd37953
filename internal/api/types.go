package api

// IPPool is a range of addresses Calico IPAM hands out, in blocks of BlockSize.
type IPPool struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       IPPoolSpec `json:"spec"`
}

// IPPoolSpec mirrors Calico's field names; omitted fields take Calico's defaults (see Default).
type IPPoolSpec struct {
	CIDR             string   `json:"cidr"`
	VXLANMode        string   `json:"vxlanMode,omitempty"`
	IPIPMode         string   `json:"ipipMode,omitempty"`
	NATOutgoing      bool     `json:"natOutgoing,omitempty"`
	Disabled         bool     `json:"disabled,omitempty"`
	DisableBGPExport bool     `json:"disableBGPExport,omitempty"`
	BlockSize        int      `json:"blockSize,omitempty"`
	NodeSelector     string   `json:"nodeSelector,omitempty"`
	AllowedUses      []string `json:"allowedUses,omitempty"`
	AssignmentMode   string   `json:"assignmentMode,omitempty"`
	// StrictAffinity is our extension of the pool (Calico keeps it in IPAM config): never borrow from
	// another node's block.
	StrictAffinity bool `json:"strictAffinity,omitempty"`
}

// Encapsulation and assignment modes.
const (
	EncapNever       = "Never"
	EncapAlways      = "Always"
	EncapCrossSubnet = "CrossSubnet"
	AssignAutomatic  = "Automatic"
	AssignManual     = "Manual"
)

// Profile is a set of rules and inherited labels applied to endpoints after policies.
type Profile struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       ProfileSpec `json:"spec"`
}

// ProfileSpec holds the profile's rules and the labels its endpoints inherit.
type ProfileSpec struct {
	Ingress       []Rule            `json:"ingress,omitempty"`
	Egress        []Rule            `json:"egress,omitempty"`
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

// WorkloadEndpoint is one container interface.
type WorkloadEndpoint struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       WorkloadEndpointSpec `json:"spec"`
}

// WorkloadEndpointSpec mirrors Calico's field names.
type WorkloadEndpointSpec struct {
	Orchestrator       string         `json:"orchestrator,omitempty"`
	Workload           string         `json:"workload,omitempty"`
	Node               string         `json:"node,omitempty"`
	ContainerID        string         `json:"containerID,omitempty"`
	Pod                string         `json:"pod,omitempty"`
	Endpoint           string         `json:"endpoint,omitempty"`
	ServiceAccountName string         `json:"serviceAccountName,omitempty"`
	IPNetworks         []string       `json:"ipNetworks,omitempty"`
	IPNATs             []IPNAT        `json:"ipNATs,omitempty"`
	IPv4Gateway        string         `json:"ipv4Gateway,omitempty"`
	IPv6Gateway        string         `json:"ipv6Gateway,omitempty"`
	Profiles           []string       `json:"profiles,omitempty"`
	InterfaceName      string         `json:"interfaceName,omitempty"`
	MAC                string         `json:"mac,omitempty"`
	Ports              []EndpointPort `json:"ports,omitempty"`
}

// IPNAT is a 1:1 NAT mapping of a workload address.
type IPNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

// EndpointPort is a named port of a workload.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	HostPort uint16   `json:"hostPort"` // always written, as upstream writes them
	HostIP   string   `json:"hostIP"`
}

// NetworkPolicy is a namespaced, ordered set of rules selecting endpoints.
type NetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       PolicySpec `json:"spec"`
}

// GlobalNetworkPolicy is a cluster-wide NetworkPolicy.
type GlobalNetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       PolicySpec `json:"spec"`
}

// PolicySpec is shared by NetworkPolicy and GlobalNetworkPolicy (the global-only fields are simply unused
// on namespaced policies).
type PolicySpec struct {
	Tier                   string   `json:"tier,omitempty"`
	Order                  *float64 `json:"order,omitempty"`
	Selector               string   `json:"selector,omitempty"`
	Types                  []string `json:"types,omitempty"`
	Ingress                []Rule   `json:"ingress,omitempty"`
	Egress                 []Rule   `json:"egress,omitempty"`
	ServiceAccountSelector string   `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string   `json:"namespaceSelector,omitempty"`
	DoNotTrack             bool     `json:"doNotTrack,omitempty"`
	PreDNAT                bool     `json:"preDNAT,omitempty"`
	ApplyOnForward         bool     `json:"applyOnForward,omitempty"`
}

// Policy types.
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

// Node is a Calico host.
type Node struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       NodeSpec `json:"spec"`
}

// NodeSpec mirrors Calico's field names.
type NodeSpec struct {
	BGP                  *NodeBGPSpec  `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr  string        `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   string        `json:"vxlanTunnelMACAddr,omitempty"`
	IPv6VXLANTunnelAddr  string        `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 string        `json:"vxlanTunnelMACAddrV6,omitempty"`
	OrchRefs             []OrchRef     `json:"orchRefs,omitempty"`
	Addresses            []NodeAddress `json:"addresses,omitempty"`
}

// NodeBGPSpec holds the node's addresses with prefix length ("10.0.0.1/24"), which routing relies on.
type NodeBGPSpec struct {
	ASNumber                *ASNumber `json:"asNumber,omitempty"`
	IPv4Address             string    `json:"ipv4Address,omitempty"`
	IPv6Address             string    `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr      string    `json:"ipv4IPIPTunnelAddr,omitempty"`
	RouteReflectorClusterID string    `json:"routeReflectorClusterID,omitempty"`
}

// OrchRef names the node in an orchestrator.
type OrchRef struct {
	NodeName     string `json:"nodeName,omitempty"`
	Orchestrator string `json:"orchestrator"`
}

// NodeAddress is one address of a node.
type NodeAddress struct {
	Address string `json:"address"`
	Type    string `json:"type,omitempty"`
}

// ClusterInformation is the singleton "default" describing the cluster.
type ClusterInformation struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       ClusterInformationSpec `json:"spec"`
}

// ClusterInformationSpec mirrors Calico's field names.
type ClusterInformationSpec struct {
	ClusterGUID    string `json:"clusterGUID,omitempty"`
	ClusterType    string `json:"clusterType,omitempty"`
	CalicoVersion  string `json:"calicoVersion,omitempty"`
	DatastoreReady *bool  `json:"datastoreReady,omitempty"`
}

// Tier groups policies; only "default" is used by this project.
type Tier struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       TierSpec `json:"spec"`
}

// TierSpec mirrors Calico's field names.
type TierSpec struct {
	Order         *float64 `json:"order,omitempty"`
	DefaultAction string   `json:"defaultAction,omitempty"`
}

// FelixConfiguration configures Felix: "default" applies to every host, "node.<hostname>" to one host.
// Only the fields that matter next to this plugin are modelled; the others are kept by the codec.
type FelixConfiguration struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       FelixConfigurationSpec `json:"spec"`
}

// FelixConfigurationSpec mirrors Calico's field names. Nil and empty values mean Felix's default.
type FelixConfigurationSpec struct {
	LogSeverityScreen              string `json:"logSeverityScreen,omitempty"`
	ReportingInterval              string `json:"reportingInterval,omitempty"`
	InterfacePrefix                string `json:"interfacePrefix,omitempty"`
	DefaultEndpointToHostAction    string `json:"defaultEndpointToHostAction,omitempty"`
	ChainInsertMode                string `json:"chainInsertMode,omitempty"`
	IptablesBackend                string `json:"iptablesBackend,omitempty"`
	NFTablesMode                   string `json:"nftablesMode,omitempty"`
	RouteSource                    string `json:"routeSource,omitempty"`
	DeviceRouteProtocol            *int   `json:"deviceRouteProtocol,omitempty"`
	VXLANEnabled                   *bool  `json:"vxlanEnabled,omitempty"`
	VXLANPort                      *int   `json:"vxlanPort,omitempty"`
	VXLANVNI                       *int   `json:"vxlanVNI,omitempty"`
	VXLANMTU                       *int   `json:"vxlanMTU,omitempty"`
	VXLANMTUV6                     *int   `json:"vxlanMTUV6,omitempty"`
	IPIPEnabled                    *bool  `json:"ipipEnabled,omitempty"`
	IPIPMTU                        *int   `json:"ipipMTU,omitempty"`
	NATOutgoingAddress             string `json:"natOutgoingAddress,omitempty"`
	AllowVXLANPacketsFromWorkloads *bool  `json:"allowVXLANPacketsFromWorkloads,omitempty"`
	AllowIPIPPacketsFromWorkloads  *bool  `json:"allowIPIPPacketsFromWorkloads,omitempty"`
	BPFEnabled                     *bool  `json:"bpfEnabled,omitempty"`
	WireguardEnabled               *bool  `json:"wireguardEnabled,omitempty"`
}
