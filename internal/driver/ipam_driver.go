package driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

// Docker's RequestAddress option marking the network gateway request (only sent for --gateway).
const requestAddressType = "RequestAddressType"

// maxOptionBytes bounds a RequestAddress option (key and value): Docker sends at most a container name.
const maxOptionBytes = 1024

// Attribute keys calico-ipam sets on allocations (node and timestamp are added by the IPAM itself).
const (
	attrEndpoint = "libnetwork-endpoint"
	attrNetwork  = "libnetwork-network"
	handlePrefix = "libnetwork."
)

// IpamDriver serves calico-ipam.
type IpamDriver struct{ d *Driver }

// GetCapabilities: Docker need not send MACs nor replay requests after a restart (our state is in etcd).
func (i *IpamDriver) GetCapabilities(context.Context) (*libnetwork.IpamCapabilitiesResponse, error) {
	return &libnetwork.IpamCapabilitiesResponse{}, nil
}

// GetDefaultAddressSpaces names one space for both scopes: Docker then skips its pool-overlap probing,
// which would loop forever on the ::/0 placeholder.
func (i *IpamDriver) GetDefaultAddressSpaces(context.Context) (*libnetwork.AddressSpacesResponse, error) {
	return &libnetwork.AddressSpacesResponse{LocalDefaultAddressSpace: addressSpace, GlobalDefaultAddressSpace: addressSpace}, nil
}

// RequestPool maps --subnet to the Calico pool with exactly that CIDR, or no --subnet to "any pool of the
// family". Refused flags do not fail here: they travel to CreateNetwork so one error names them all.
func (i *IpamDriver) RequestPool(ctx context.Context, r *libnetwork.RequestPoolRequest) (*libnetwork.RequestPoolResponse, error) {
	ctx, cancel := i.d.bound(ctx)
	defer cancel()
	poolID, pool, gateway := poolIDAnyIPv4, anyPoolV4, anyPoolV4
	if r.V6 {
		poolID, pool, gateway = poolIDAnyIPv6, anyPoolV6, anyPoolV6
	}
	var problems []flagProblem
	if r.Pool != "" {
		p, err := i.poolByCIDR(ctx, r.Pool)
		switch {
		case err != nil && !errors.Is(err, errNoSuchPool):
			return nil, err
		case err != nil:
			problems = append(problems, flagProblem{"--subnet " + clip(r.Pool), err.Error()})
		default:
			poolID, pool = p.Name, p.Spec.CIDR
		}
	}
	if r.SubPool != "" {
		problems = append(problems, flagProblem{"--ip-range", "addresses come from Calico IPAM blocks"})
	}
	if len(r.Options) > 0 {
		problems = append(problems, flagProblem{"--ipam-opt", "calico-ipam takes no options"})
	}
	if len(problems) > 0 {
		gateway = i.d.rejected.add(r.V6, problems)
	}
	return &libnetwork.RequestPoolResponse{PoolID: poolID, Pool: pool, Data: map[string]string{"com.docker.network.gateway": gateway}}, nil
}

var errNoSuchPool = errors.New("no Calico IP pool has exactly this CIDR")

func (i *IpamDriver) poolByCIDR(ctx context.Context, cidr string) (*api.IPPool, error) {
	want, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("%q is not a CIDR", clip(cidr))
	}
	pools, err := datastore.List[*api.IPPool](ctx, i.d.store, "")
	if err != nil {
		return nil, fmt.Errorf("reading IP pools: %w", err)
	}
	var names []string
	for _, p := range pools {
		if got, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && got == want.Masked() && want == want.Masked() {
			return p, nil
		}
		names = append(names, p.Spec.CIDR)
	}
	return nil, fmt.Errorf("%w (pools: %s); create one with calicoctl first", errNoSuchPool, strings.Join(names, ", "))
}

// ReleasePool has nothing to free: pools belong to Calico, not to one Docker network.
func (i *IpamDriver) ReleasePool(context.Context, *libnetwork.ReleasePoolRequest) error { return nil }

// RequestAddress assigns an address from the network's pool (or any enabled pool of the family), or the
// --ip/--ip6 address asked for.
func (i *IpamDriver) RequestAddress(ctx context.Context, r *libnetwork.RequestAddressRequest) (*libnetwork.RequestAddressResponse, error) {
	ctx, cancel := i.d.bound(ctx)
	defer cancel()
	for k, v := range r.Options {
		// Option values end up in IPAM attributes, which share one etcd value per block.
		if len(k)+len(v) > maxOptionBytes {
			return nil, fmt.Errorf("RequestAddress option %q is %d bytes long; at most %d are supported", clip(k), len(k)+len(v), maxOptionBytes)
		}
	}
	v6 := r.PoolID == poolIDAnyIPv6
	if r.Options[requestAddressType] != "" {
		// --gateway: hand it back unallocated so CreateNetwork can refuse it together with other flags.
		gw, err := netip.ParseAddr(r.Address)
		if err != nil {
			return nil, fmt.Errorf("--gateway %q is not an IP address", clip(r.Address))
		}
		return &libnetwork.RequestAddressResponse{Address: netip.PrefixFrom(gw, gw.BitLen()).String()}, nil
	}
	attrs := map[string]string{}
	if name := r.Options["com.docker.network.endpoint.name"]; name != "" {
		attrs["libnetwork-container"] = name
	}
	handle := handlePrefix + randomHex(8)
	var addr netip.Addr
	if r.Address != "" {
		ip, err := netip.ParseAddr(r.Address)
		if err != nil {
			return nil, fmt.Errorf("requested address %q is not an IP address", clip(r.Address))
		}
		pool, err := i.d.addrs.AssignIP(ctx, ip, handle, attrs)
		if err != nil {
			return nil, err
		}
		if r.PoolID != poolIDAnyIPv4 && r.PoolID != poolIDAnyIPv6 && pool.Name != r.PoolID {
			_, _ = i.d.addrs.ReleaseIP(context.WithoutCancel(ctx), ip)
			return nil, fmt.Errorf("address %s is in IP pool %q, not in this network's pool %q", ip, pool.Name, r.PoolID)
		}
		addr = ip
	} else {
		req := ipam.Request{Family: 4, Handle: handle, Attrs: attrs}
		if v6 {
			req.Family = 6
		}
		if r.PoolID != poolIDAnyIPv4 && r.PoolID != poolIDAnyIPv6 {
			req.Pools = []string{r.PoolID}
			if pool, err := datastore.Get[*api.IPPool](ctx, i.d.store, "", r.PoolID); err == nil && netip.MustParsePrefix(pool.Spec.CIDR).Addr().Is6() {
				req.Family = 6
			}
		}
		ip, _, err := i.d.addrs.AutoAssign(ctx, req)
		if err != nil {
			return nil, err
		}
		addr = ip
	}
	return &libnetwork.RequestAddressResponse{Address: netip.PrefixFrom(addr, addr.BitLen()).String()}, nil
}

// ReleaseAddress frees an address; unknown addresses (the 0.0.0.0 gateway placeholder, a repeated release)
// and none at all ("<nil>" is how Docker prints a missing one) are fine.
func (i *IpamDriver) ReleaseAddress(ctx context.Context, r *libnetwork.ReleaseAddressRequest) error {
	if r.Address == "" || r.Address == "<nil>" {
		return nil
	}
	ip, err := netip.ParseAddr(r.Address)
	if err != nil {
		return fmt.Errorf("ReleaseAddress of %q: not an IP address", clip(r.Address))
	}
	if ip.IsUnspecified() {
		return nil
	}
	ctx, cancel := i.d.bound(ctx)
	defer cancel()
	_, err = i.d.addrs.ReleaseIP(ctx, ip)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
