package driver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/libnetwork"
)

// NetworkDriver serves the calico network driver.
type NetworkDriver struct{ d *Driver }

// Network IDs may also be swarm's (25 base-36 characters, e.g. r1omwlb831hppr5yrfq4vtfl1) for a
// --scope swarm network. They only ever name datastore keys, never interfaces.
var networkIDRE = regexp.MustCompile(`^[0-9a-z]{12,64}$`)

// checkIDs refuses a request whose network ID, or endpoint ID when given, is not a Docker ID.
func checkIDs(networkID string, endpointID ...string) error {
	if !networkIDRE.MatchString(networkID) {
		return malformedID("NetworkID", networkID, "lower-case letters and digits")
	}
	// Endpoint IDs name interfaces: anything but a Docker ID is refused before it reaches a key or a name.
	for _, id := range endpointID {
		if !api.IsDockerID(id) {
			return malformedID("EndpointID", id, "lower-case hexadecimal characters")
		}
	}
	return nil
}

func malformedID(field, id, alphabet string) error {
	return fmt.Errorf("malformed %s %q: Docker IDs are 12 to 64 %s", field, clip(id), alphabet)
}

// clipLimit bounds how much of a caller's value an error message repeats.
const clipLimit = 64

// clip cuts a value from a request short for an error message.
func clip(s string) string {
	if len(s) <= clipLimit {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:clipLimit], len(s))
}

// GetCapabilities: local scope, because global scope cannot create networks without swarm on the Docker
// versions people run; connectivity is global because addresses route across hosts.
func (n *NetworkDriver) GetCapabilities(context.Context) (*libnetwork.CapabilitiesResponse, error) {
	return &libnetwork.CapabilitiesResponse{Scope: "local", ConnectivityScope: "global"}, nil
}

// CreateNetwork checks every option at once and records the network's pools.
func (n *NetworkDriver) CreateNetwork(ctx context.Context, r *libnetwork.CreateNetworkRequest) error {
	if err := checkIDs(r.NetworkID); err != nil {
		return err
	}
	d := n.d
	ctx, cancel := d.bound(ctx)
	defer cancel()
	if problems := d.checkNetworkOptions(r); len(problems) > 0 {
		return refusal(problems)
	}
	rec := &networkRecord{ID: r.NetworkID, Node: d.cfg.Node, IPv4: len(r.IPv4Data) > 0, IPv6: len(r.IPv6Data) > 0}
	for _, data := range r.IPv4Data {
		rec.IPv4Pool = d.poolName(ctx, data.Pool, anyPoolV4)
	}
	for _, data := range r.IPv6Data {
		rec.IPv6Pool = d.poolName(ctx, data.Pool, anyPoolV6)
	}
	return d.networks.create(ctx, rec)
}

// poolName maps a pool CIDR from IPAM back to the IPPool name ("" for the any-pool placeholder).
func (d *Driver) poolName(ctx context.Context, cidr, anyPool string) string {
	if cidr == anyPool {
		return ""
	}
	if p, err := d.IPAM().poolByCIDR(ctx, cidr); err == nil {
		return p.Name
	}
	return ""
}

// DeleteNetwork forgets the network, and its profile when no other network (on any host) shares the name.
// Docker has already released the pools, so this never fails on missing state.
func (n *NetworkDriver) DeleteNetwork(ctx context.Context, r *libnetwork.DeleteNetworkRequest) error {
	if err := checkIDs(r.NetworkID); err != nil {
		return err
	}
	d := n.d
	ctx, cancel := d.bound(ctx)
	defer cancel()
	rec, err := d.networks.get(ctx, r.NetworkID)
	if err != nil {
		d.log.Debug("DeleteNetwork of an unknown network", "network", short(r.NetworkID), "error", err.Error())
		return nil
	}
	if err := d.networks.remove(ctx, r.NetworkID); err != nil {
		return fmt.Errorf("forgetting network %s: %w", short(r.NetworkID), err)
	}
	if rec.Name == "" || !d.cfg.CreateProfiles {
		return nil
	}
	if shared, err := d.networks.others(ctx, rec.Name, rec.ID); err != nil || shared {
		return err
	}
	return d.deleteProfile(ctx, rec.Name)
}

// CreateEndpoint writes the WorkloadEndpoint (and the network's profile). It chooses the container's MAC
// when Docker has none, so the endpoint's MAC is known before the interface exists.
func (n *NetworkDriver) CreateEndpoint(ctx context.Context, r *libnetwork.CreateEndpointRequest) (*libnetwork.CreateEndpointResponse, error) {
	if err := checkIDs(r.NetworkID, r.EndpointID); err != nil {
		return nil, err
	}
	d := n.d
	ctx, cancel := d.bound(ctx)
	defer cancel()
	iface := r.Interface
	if iface == nil {
		iface = &libnetwork.EndpointInterface{}
	}
	var resp libnetwork.CreateEndpointResponse
	mac := iface.MacAddress
	if mac == "" {
		mac = randomMAC().String()
		resp.Interface = &libnetwork.EndpointInterface{MacAddress: mac}
	} else if _, err := net.ParseMAC(mac); err != nil {
		return nil, fmt.Errorf("--mac-address %q is not a MAC address", clip(mac))
	}
	wep, err := api.LibnetworkEndpoint(d.cfg.Node, r.EndpointID)
	if err != nil {
		return nil, err
	}
	wep.Spec.InterfaceName = api.LibnetworkInterface(r.EndpointID)
	wep.Spec.MAC = mac
	var addrs []netip.Addr
	for _, a := range []string{iface.Address, iface.AddressIPv6} {
		if a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("endpoint address %q is not a CIDR", clip(a))
		}
		addrs = append(addrs, p.Addr())
		wep.Spec.IPNetworks = append(wep.Spec.IPNetworks, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()).String())
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("endpoint has no address: is the network using --ipam-driver %s?", d.cfg.IPAMDriver)
	}
	rec, err := d.networks.get(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	if d.cfg.CreateProfiles {
		name, err := d.networks.name(ctx, r.NetworkID, 3*time.Second)
		if err != nil {
			return nil, err
		}
		if err := d.ensureProfile(ctx, name); err != nil {
			return nil, err
		}
		wep.Spec.Profiles = []string{name}
	}
	// Apply, not Create: Docker resends a call whose connection broke (a plugin restart mid-call), and an
	// endpoint ID is never reused, so an endpoint already stored under this ID is this one.
	if err := d.store.Apply(ctx, wep); err != nil {
		return nil, fmt.Errorf("creating workload endpoint: %w", err)
	}
	for _, a := range addrs {
		attrs := map[string]string{attrEndpoint: r.EndpointID, attrNetwork: rec.ID}
		if err := d.addrs.SetAttributes(ctx, a, attrs); err != nil {
			d.log.Warn("could not label IPAM allocation with its endpoint", "ip", a.String(), "error", err.Error())
		}
	}
	if d.cfg.LabelEndpoints {
		d.labels.start(r.NetworkID, r.EndpointID)
	}
	return &resp, nil
}

// DeleteEndpoint removes the endpoint and anything Join left; absent state is fine.
func (n *NetworkDriver) DeleteEndpoint(ctx context.Context, r *libnetwork.DeleteEndpointRequest) error {
	if err := checkIDs(r.NetworkID, r.EndpointID); err != nil {
		return err
	}
	d := n.d
	d.labels.stop(r.EndpointID)
	d.sandboxes.release(r.EndpointID)
	if err := d.deleteVeth(r.EndpointID); err != nil {
		return err
	}
	wep, err := api.LibnetworkEndpoint(d.cfg.Node, r.EndpointID)
	if err != nil {
		return err
	}
	// Not bound (see callTimeout): EndpointDown waits its turn with the dataplane agent, which takes long
	// under load, not on etcd. An etcd that does not answer fails the read, and the call, in one request
	// timeout.
	current, err := datastore.Get[*api.WorkloadEndpoint](ctx, d.store, wep.Namespace, wep.Name)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if err := d.dataplane.EndpointDown(ctx, current); err != nil {
		d.log.Warn("could not remove endpoint routes", "endpoint", short(r.EndpointID), "error", err.Error())
	}
	err = d.store.DeleteResource(ctx, api.KindOf(wep), wep.Namespace, wep.Name, "")
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	return err
}

// EndpointInfo has nothing to add to docker inspect.
func (n *NetworkDriver) EndpointInfo(_ context.Context, r *libnetwork.EndpointInfoRequest) (*libnetwork.EndpointInfoResponse, error) {
	if err := checkIDs(r.NetworkID, r.EndpointID); err != nil {
		return nil, err
	}
	return &libnetwork.EndpointInfoResponse{Value: map[string]any{}}, nil
}

// Join creates the veth pair, programs the host side, and tells Docker how to route in the container:
// a per-endpoint link-local gateway, and routes to the network's pools through it so that a container
// on several networks reaches each network through its own interface.
func (n *NetworkDriver) Join(ctx context.Context, r *libnetwork.JoinRequest) (*libnetwork.JoinResponse, error) {
	if err := checkIDs(r.NetworkID, r.EndpointID); err != nil {
		return nil, err
	}
	d := n.d
	ident, err := api.LibnetworkEndpoint(d.cfg.Node, r.EndpointID)
	if err != nil {
		return nil, err
	}
	wep, err := datastore.Get[*api.WorkloadEndpoint](ctx, d.store, ident.Namespace, ident.Name)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("endpoint %s does not exist: Join must follow a successful CreateEndpoint", short(r.EndpointID))
	}
	if err != nil {
		return nil, fmt.Errorf("reading endpoint %s: %w", short(r.EndpointID), err)
	}
	rec, err := d.networks.get(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(wep.Spec.MAC)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s has no valid MAC: %w", short(r.EndpointID), err)
	}
	hasV4, hasV6 := families(wep.Spec.IPNetworks)
	hostName, peerName := api.LibnetworkInterface(r.EndpointID), "tmp"+r.EndpointID[:11]
	// A Join retried after a crash finds its own half-made pair: the endpoint ID is unique, so replace it.
	// Anything else of that name is not ours, and Join fails naming it.
	if err := d.links.DeleteVeth(hostName); err != nil {
		return nil, err
	}
	if _, err := d.links.CreateVeth(link.Veth{HostName: hostName, PeerName: peerName, MTU: d.cfg.MTU, IPv6: hasV6,
		HostMAC: hostMAC(r.EndpointID)}, mac); err != nil {
		return nil, err
	}
	resp, err := d.join(ctx, r, wep, rec, hasV4, hasV6)
	if err != nil {
		d.sandboxes.release(r.EndpointID)
		if delErr := d.links.DeleteVeth(hostName); delErr != nil {
			err = errors.Join(err, delErr)
		}
		return nil, err
	}
	return resp, nil
}

func (d *Driver) join(ctx context.Context, r *libnetwork.JoinRequest, wep *api.WorkloadEndpoint, rec *networkRecord, hasV4, hasV6 bool) (*libnetwork.JoinResponse, error) {
	hostName := api.LibnetworkInterface(r.EndpointID)
	resp := &libnetwork.JoinResponse{InterfaceName: libnetwork.InterfaceName{SrcName: "tmp" + r.EndpointID[:11], DstPrefix: d.cfg.IfPrefix}}
	var gw6 netip.Addr
	if hasV6 {
		ip, err := d.links.LinkLocalIPv6(hostName)
		if err != nil {
			return nil, err
		}
		gw6, _ = netip.AddrFromSlice(ip)
		resp.GatewayIPv6 = gw6.String()
	}
	pools, err := d.poolRoutes(ctx, rec, hasV4, hasV6)
	if err != nil {
		return nil, err
	}
	var inKernel []netip.Prefix
	if r.SandboxKey != "" {
		if inKernel, err = d.links.SandboxRoutes(r.SandboxKey); err != nil {
			d.log.Debug("cannot read container routes; assuming none", "sandbox", r.SandboxKey, "error", err.Error())
		}
	}
	var addrs []netip.Prefix
	for _, n := range wep.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			addrs = append(addrs, p)
		}
	}
	plan, err := d.sandboxes.plan(r.SandboxKey, r.EndpointID, inKernel, addrs, pools, hasV4, gw6)
	if err != nil {
		return nil, err
	}
	for _, dst := range plan.displace {
		if err := d.links.DeleteSandboxRoute(r.SandboxKey, dst); err != nil {
			d.sandboxes.release(r.EndpointID)
			return nil, fmt.Errorf("making room in the container for an address inside its route to %s: %w", dst, err)
		}
	}
	if plan.gw4.IsValid() {
		resp.Gateway = plan.gw4.String()
	}
	for _, rt := range plan.routes {
		sr := libnetwork.StaticRoute{Destination: rt.dst.String(), RouteType: libnetwork.RouteConnected}
		if rt.via.IsValid() {
			sr.RouteType, sr.NextHop = libnetwork.RouteNextHop, rt.via.String()
		}
		resp.StaticRoutes = append(resp.StaticRoutes, sr)
	}
	if err := d.dataplane.EndpointUp(ctx, wep); err != nil {
		return nil, fmt.Errorf("programming the host side of %s: %w", hostName, err)
	}
	return resp, nil
}

// poolRoutes are the CIDRs a container routes through this network's interface: the network's own pool
// of each family; none for a family in which it draws on every pool.
func (d *Driver) poolRoutes(ctx context.Context, rec *networkRecord, hasV4, hasV6 bool) ([]netip.Prefix, error) {
	if (!hasV4 || rec.IPv4Pool == "") && (!hasV6 || rec.IPv6Pool == "") {
		return nil, nil
	}
	pools, err := datastore.List[*api.IPPool](ctx, d.store, "")
	if err != nil {
		return nil, fmt.Errorf("reading IP pools: %w", err)
	}
	var out []netip.Prefix
	for _, p := range pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || p.Spec.Disabled {
			continue
		}
		is6 := cidr.Addr().Is6()
		wantName := rec.IPv4Pool
		if is6 {
			wantName = rec.IPv6Pool
		}
		if (is6 && hasV6 || !is6 && hasV4) && wantName == p.Name {
			out = append(out, cidr)
		}
	}
	return out, nil
}

// Leave releases the container's per-sandbox gateway address.
func (n *NetworkDriver) Leave(ctx context.Context, r *libnetwork.LeaveRequest) error {
	if err := checkIDs(r.NetworkID, r.EndpointID); err != nil {
		return err
	}
	// The veth stays until DeleteEndpoint: after Leave, Docker moves the container end back to the host,
	// and with the pair gone it would keep a stale interface (docker stats then reports no traffic).
	n.d.sandboxes.release(r.EndpointID)
	return nil
}

// deleteVeth deletes the host side of an endpoint. An interface of that name that is not a veth is not
// the plugin's: it stays, with a warning, and does not stop the endpoint's removal.
func (d *Driver) deleteVeth(endpointID string) error {
	err := d.links.DeleteVeth(api.LibnetworkInterface(endpointID))
	if errors.Is(err, link.ErrNotVeth) {
		d.log.Warn("endpoint removed without its interface", "endpoint", short(endpointID), "error", err.Error())
		return nil
	}
	return err
}

// hostMAC gives each host interface its own locally administered MAC, so each has its own IPv6
// link-local address to serve as that endpoint's gateway.
func hostMAC(endpointID string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(endpointID))
	return net.HardwareAddr{0xee, 0xee, sum[0], sum[1], sum[2], sum[3]}
}

// randomMAC is a locally administered unicast MAC for a container interface.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

func families(networks []string) (v4, v6 bool) {
	for _, n := range networks {
		if strings.Contains(n, ":") {
			v6 = true
		} else {
			v4 = true
		}
	}
	return
}
