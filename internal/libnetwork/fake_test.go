package libnetwork

import (
	"context"
	"sync"
)

// recorder backs the fake drivers: it remembers each call and can make the
// next calls fail, panic or block. NetworkDriver and IpamDriver both have a
// GetCapabilities method with different results, so one type cannot
// implement both; fakeNetwork and fakeIpam share a recorder instead.
type recorder struct {
	mu    sync.Mutex
	calls []recordedCall
	err   error
	panic any
	hook  func(ctx context.Context)
}

type recordedCall struct {
	method string
	req    any // the decoded request pointer, nil for calls without one
}

// record notes a call and applies the configured behaviour.
func (r *recorder) record(ctx context.Context, method string, req any) error {
	r.mu.Lock()
	r.calls = append(r.calls, recordedCall{method, req})
	err, p, hook := r.err, r.panic, r.hook
	r.panic = nil // panic once, so the next call shows the server survived
	r.mu.Unlock()
	if p != nil {
		panic(p)
	}
	if hook != nil {
		hook(ctx)
	}
	return err
}

func (r *recorder) failWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *recorder) panicOnce(v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.panic = v
}

func (r *recorder) onCall(hook func(ctx context.Context)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = hook
}

// last returns the most recent call, or a zero value if there was none.
func (r *recorder) last() recordedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return recordedCall{}
	}
	return r.calls[len(r.calls)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// Canned answers, shaped like Calico's (research notes section 10).
var (
	cannedCapabilities   = &CapabilitiesResponse{Scope: "global", ConnectivityScope: "global"}
	cannedCreateEndpoint = &CreateEndpointResponse{Interface: &EndpointInterface{}}
	cannedEndpointInfo   = &EndpointInfoResponse{Value: map[string]any{}}
	cannedJoin           = &JoinResponse{
		InterfaceName: InterfaceName{SrcName: "tmp" + testEID[:11], DstPrefix: "cali"},
		Gateway:       "169.254.1.1",
		StaticRoutes:  []StaticRoute{{Destination: "169.254.1.1/32", RouteType: RouteConnected}},
	}
	cannedAllocate      = &AllocateNetworkResponse{Options: map[string]string{"k": "v"}}
	cannedGwAllocCheck  = &GwAllocCheckResponse{SkipIPv4: true}
	cannedIpamCaps      = &IpamCapabilitiesResponse{RequiresRequestReplay: true}
	cannedAddressSpaces = &AddressSpacesResponse{
		LocalDefaultAddressSpace:  "CalicoLocalAddressSpace",
		GlobalDefaultAddressSpace: "CalicoGlobalAddressSpace",
	}
	cannedRequestPool = &RequestPoolResponse{
		PoolID: "CalicoPoolIPv4",
		Pool:   "0.0.0.0/0",
		Data:   map[string]string{"com.docker.network.gateway": "0.0.0.0/0"},
	}
	cannedRequestAddress = &RequestAddressResponse{Address: "10.65.0.2/32"}
)

// answer returns resp unless the recorder says to fail.
func answer[T any](r *recorder, ctx context.Context, method string, req any, resp *T) (*T, error) {
	if err := r.record(ctx, method, req); err != nil {
		return nil, err
	}
	return resp, nil
}

type fakeNetwork struct{ *recorder }

func (f fakeNetwork) GetCapabilities(ctx context.Context) (*CapabilitiesResponse, error) {
	return answer(f.recorder, ctx, "GetCapabilities", nil, cannedCapabilities)
}

func (f fakeNetwork) CreateNetwork(ctx context.Context, r *CreateNetworkRequest) error {
	return f.record(ctx, "CreateNetwork", r)
}

func (f fakeNetwork) DeleteNetwork(ctx context.Context, r *DeleteNetworkRequest) error {
	return f.record(ctx, "DeleteNetwork", r)
}

func (f fakeNetwork) CreateEndpoint(ctx context.Context, r *CreateEndpointRequest) (*CreateEndpointResponse, error) {
	return answer(f.recorder, ctx, "CreateEndpoint", r, cannedCreateEndpoint)
}

func (f fakeNetwork) DeleteEndpoint(ctx context.Context, r *DeleteEndpointRequest) error {
	return f.record(ctx, "DeleteEndpoint", r)
}

func (f fakeNetwork) EndpointInfo(ctx context.Context, r *EndpointInfoRequest) (*EndpointInfoResponse, error) {
	return answer(f.recorder, ctx, "EndpointInfo", r, cannedEndpointInfo)
}

func (f fakeNetwork) Join(ctx context.Context, r *JoinRequest) (*JoinResponse, error) {
	return answer(f.recorder, ctx, "Join", r, cannedJoin)
}

func (f fakeNetwork) Leave(ctx context.Context, r *LeaveRequest) error {
	return f.record(ctx, "Leave", r)
}

// fullNetwork also implements every optional interface.
type fullNetwork struct{ fakeNetwork }

func (f fullNetwork) AllocateNetwork(ctx context.Context, r *AllocateNetworkRequest) (*AllocateNetworkResponse, error) {
	return answer(f.recorder, ctx, "AllocateNetwork", r, cannedAllocate)
}

func (f fullNetwork) FreeNetwork(ctx context.Context, r *FreeNetworkRequest) error {
	return f.record(ctx, "FreeNetwork", r)
}

func (f fullNetwork) GwAllocCheck(ctx context.Context, r *GwAllocCheckRequest) (*GwAllocCheckResponse, error) {
	return answer(f.recorder, ctx, "GwAllocCheck", r, cannedGwAllocCheck)
}

type fakeIpam struct{ *recorder }

func (f fakeIpam) GetCapabilities(ctx context.Context) (*IpamCapabilitiesResponse, error) {
	return answer(f.recorder, ctx, "GetCapabilities", nil, cannedIpamCaps)
}

func (f fakeIpam) GetDefaultAddressSpaces(ctx context.Context) (*AddressSpacesResponse, error) {
	return answer(f.recorder, ctx, "GetDefaultAddressSpaces", nil, cannedAddressSpaces)
}

func (f fakeIpam) RequestPool(ctx context.Context, r *RequestPoolRequest) (*RequestPoolResponse, error) {
	return answer(f.recorder, ctx, "RequestPool", r, cannedRequestPool)
}

func (f fakeIpam) ReleasePool(ctx context.Context, r *ReleasePoolRequest) error {
	return f.record(ctx, "ReleasePool", r)
}

func (f fakeIpam) RequestAddress(ctx context.Context, r *RequestAddressRequest) (*RequestAddressResponse, error) {
	return answer(f.recorder, ctx, "RequestAddress", r, cannedRequestAddress)
}

func (f fakeIpam) ReleaseAddress(ctx context.Context, r *ReleaseAddressRequest) error {
	return f.record(ctx, "ReleaseAddress", r)
}
