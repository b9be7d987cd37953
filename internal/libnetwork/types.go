// Package libnetwork implements the wire side of Docker's remote network
// and IPAM driver plugin protocol: JSON request/response types, the
// interfaces a driver implements, and an HTTP server on a unix socket.
//
// It knows nothing about Calico; drivers plug in through NetworkDriver and
// IpamDriver. Field names follow Docker's Go structs, which carry no JSON
// tags, so the wire names are the capitalised Go names.
package libnetwork

// CapabilitiesResponse answers NetworkDriver.GetCapabilities. Scope must be
// "local" or "global" or Docker refuses to register the driver.
type CapabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
	// GwAllocChecker (Docker v28+) makes Docker call GwAllocCheck before
	// creating a network.
	GwAllocChecker bool `json:",omitempty"`
}

// CreateNetworkRequest is sent once per `docker network create`; Docker never
// replays it, so a driver must persist whatever it needs.
type CreateNetworkRequest struct {
	NetworkID string
	// Options decodes to bool for the enable_ipv4/enable_ipv6/internal flags
	// and to map[string]any for com.docker.network.generic.
	Options  map[string]any
	IPv4Data []IPAMData
	IPv6Data []IPAMData
}

// IPAMData is one pool the IPAM driver handed out; Pool, Gateway and the
// AuxAddresses values are CIDR strings.
type IPAMData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]any
}

// DeleteNetworkRequest arrives after Docker has already released the
// network's IPAM pools.
type DeleteNetworkRequest struct {
	NetworkID string
}

// AllocateNetworkRequest is sent only on swarm managers.
type AllocateNetworkRequest struct {
	NetworkID string
	Options   map[string]string
	IPv4Data  []IPAMData
	IPv6Data  []IPAMData
}

// AllocateNetworkResponse carries options that Docker passes on to
// CreateNetwork on every node.
type AllocateNetworkResponse struct {
	Options map[string]string
}

// FreeNetworkRequest undoes AllocateNetwork.
type FreeNetworkRequest struct {
	NetworkID string
}

// CreateEndpointRequest carries the addresses IPAM assigned. Interface is
// always present; its fields are empty when Docker has no value.
type CreateEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *EndpointInterface
	Options    map[string]any
}

// EndpointInterface holds CIDR addresses and a MAC. In a response, a driver
// may only fill fields that Docker sent empty.
type EndpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

// CreateEndpointResponse may be empty: Docker keeps its own values.
type CreateEndpointResponse struct {
	Interface *EndpointInterface `json:",omitempty"`
}

// DeleteEndpointRequest follows Leave.
type DeleteEndpointRequest struct {
	NetworkID  string
	EndpointID string
}

// EndpointInfoRequest is the body of NetworkDriver.EndpointOperInfo.
type EndpointInfoRequest struct {
	NetworkID  string
	EndpointID string
}

// EndpointInfoResponse is shown in `docker inspect`; Docker ignores errors.
type EndpointInfoResponse struct {
	Value map[string]any
}

// JoinRequest attaches an endpoint to a container. SandboxKey is the
// container's netns path, shared by all of that container's endpoints.
type JoinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

// JoinResponse tells Docker which host link to move into the sandbox and
// how to route. Gateways are plain IPs, not CIDRs.
type JoinResponse struct {
	InterfaceName         InterfaceName
	Gateway               string `json:",omitempty"`
	GatewayIPv6           string `json:",omitempty"`
	StaticRoutes          []StaticRoute
	DisableGatewayService bool
}

// InterfaceName names the link Docker moves into the sandbox (SrcName) and
// the prefix Docker numbers it with there. Released Docker versions ignore
// DstName.
type InterfaceName struct {
	SrcName   string
	DstPrefix string
	DstName   string `json:",omitempty"`
}

// StaticRoute is installed in the sandbox. Destination is a CIDR, NextHop a
// plain IP (unused for RouteConnected).
type StaticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

// Route types understood by Docker.
const (
	RouteNextHop   = 0 // via NextHop
	RouteConnected = 1 // on-link, through the endpoint's interface
)

// LeaveRequest detaches an endpoint from its container.
type LeaveRequest struct {
	NetworkID  string
	EndpointID string
}

// DiscoveryNotification is the body of DiscoverNew and DiscoverDelete
// (swarm node discovery).
type DiscoveryNotification struct {
	DiscoveryType int
	DiscoveryData any
}

// ProgramExternalConnectivityRequest is sent when an endpoint becomes the
// container's gateway endpoint.
type ProgramExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

// RevokeExternalConnectivityRequest undoes ProgramExternalConnectivity.
type RevokeExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
}

// GwAllocCheckRequest (Docker v28+) carries the CreateNetwork options.
type GwAllocCheckRequest struct {
	Options map[string]any
}

// GwAllocCheckResponse lets a driver stop Docker from reserving a gateway
// address through IPAM.
type GwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// IpamCapabilitiesResponse answers IpamDriver.GetCapabilities.
type IpamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

// AddressSpacesResponse names the default address spaces; Docker picks the
// global one for networks whose driver has global scope.
type AddressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

// RequestPoolRequest: Pool is --subnet, SubPool is --ip-range, Options are
// the --ipam-opt pairs; all may be empty.
type RequestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

// RequestPoolResponse: Pool must parse as a CIDR. Data may carry
// "com.docker.network.gateway" to spare Docker a gateway RequestAddress.
type RequestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

// ReleasePoolRequest releases one RequestPool lease.
type ReleasePoolRequest struct {
	PoolID string
}

// RequestAddressRequest: Address is the requested IP (--ip) or empty.
type RequestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

// RequestAddressResponse: Address is a CIDR whose prefix length Docker puts
// on the container interface verbatim.
type RequestAddressResponse struct {
	Address string
	Data    map[string]string
}

// ReleaseAddressRequest: Address is a plain IP and may be one the driver
// never handed out (e.g. a placeholder gateway).
type ReleaseAddressRequest struct {
	PoolID  string
	Address string
}
