package libnetwork

import "context"

// NetworkDriver is what a remote network driver must implement. An error's
// Error() text is returned to Docker, which shows it to the user.
type NetworkDriver interface {
	GetCapabilities(ctx context.Context) (*CapabilitiesResponse, error)
	CreateNetwork(ctx context.Context, r *CreateNetworkRequest) error
	DeleteNetwork(ctx context.Context, r *DeleteNetworkRequest) error
	CreateEndpoint(ctx context.Context, r *CreateEndpointRequest) (*CreateEndpointResponse, error)
	DeleteEndpoint(ctx context.Context, r *DeleteEndpointRequest) error
	EndpointInfo(ctx context.Context, r *EndpointInfoRequest) (*EndpointInfoResponse, error)
	Join(ctx context.Context, r *JoinRequest) (*JoinResponse, error)
	Leave(ctx context.Context, r *LeaveRequest) error
}

// NetworkAllocator may be implemented by a NetworkDriver that needs the
// swarm-manager allocation calls; otherwise the server answers them with an
// empty success itself.
type NetworkAllocator interface {
	AllocateNetwork(ctx context.Context, r *AllocateNetworkRequest) (*AllocateNetworkResponse, error)
	FreeNetwork(ctx context.Context, r *FreeNetworkRequest) error
}

// GatewayAllocChecker may be implemented by a NetworkDriver that reports
// GwAllocChecker in its capabilities; otherwise the server answers
// GwAllocCheck with "skip nothing", which is Docker's default behaviour.
type GatewayAllocChecker interface {
	GwAllocCheck(ctx context.Context, r *GwAllocCheckRequest) (*GwAllocCheckResponse, error)
}

// IpamDriver is what a remote IPAM driver must implement.
type IpamDriver interface {
	GetCapabilities(ctx context.Context) (*IpamCapabilitiesResponse, error)
	GetDefaultAddressSpaces(ctx context.Context) (*AddressSpacesResponse, error)
	RequestPool(ctx context.Context, r *RequestPoolRequest) (*RequestPoolResponse, error)
	ReleasePool(ctx context.Context, r *ReleasePoolRequest) error
	RequestAddress(ctx context.Context, r *RequestAddressRequest) (*RequestAddressResponse, error)
	ReleaseAddress(ctx context.Context, r *ReleaseAddressRequest) error
}
