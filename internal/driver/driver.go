// Package driver gives each Docker libnetwork call its Calico meaning: networks become profiles, endpoints
// become WorkloadEndpoints with addresses from Calico IPAM, joins create the veth and routing Docker
// installs in the container. It builds no firewall rules and talks to the kernel only through Links.
package driver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// Config is the driver's share of the daemon configuration.
type Config struct {
	Node             string
	IfPrefix         string // container-side interface prefix (cali → cali0, cali1...)
	MTU              int
	CreateProfiles   bool
	LabelEndpoints   bool
	LabelPollTimeout time.Duration
	// GCGrace is how long Docker must not have had an endpoint of this host before it is deleted, and
	// GCInterval how often that is checked (0: never).
	GCGrace, GCInterval time.Duration
	// IPAMDriver says what users give --ipam-driver for this plugin, for error hints: "calico-ipam" (the
	// default) when the daemon serves the two sockets; a managed plugin's drivers take the plugin's name.
	IPAMDriver string
}

// DefaultIPAMDriver is the IPAM driver's name when the daemon serves the two sockets.
const DefaultIPAMDriver = "calico-ipam"

// Addresses is the IPAM the driver allocates from.
type Addresses interface {
	AutoAssign(ctx context.Context, r ipam.Request) (netip.Addr, *api.IPPool, error)
	AssignIP(ctx context.Context, ip netip.Addr, handle string, attrs map[string]string) (*api.IPPool, error)
	ReleaseIP(ctx context.Context, ip netip.Addr) (bool, error)
	SetAttributes(ctx context.Context, ip netip.Addr, attrs map[string]string) error
}

// Links creates and removes workload interfaces and reads container routing tables (link.Ops). DeleteVeth
// leaves an interface of another kind alone (link.ErrNotVeth): the plugin only ever makes veths.
type Links interface {
	CreateVeth(v link.Veth, peerMAC net.HardwareAddr) (net.HardwareAddr, error)
	LinkLocalIPv6(name string) (net.IP, error)
	DeleteVeth(name string) error
	SandboxRoutes(sandboxKey string) ([]netip.Prefix, error)
	DeleteSandboxRoute(sandboxKey string, dst netip.Prefix) error
}

// Dataplane programs the host side of local endpoints (routes, sysctls, firewall). Join calls it directly
// so a container is reachable the moment it starts; the agent also converges from the datastore.
type Dataplane interface {
	EndpointUp(ctx context.Context, wep *api.WorkloadEndpoint) error
	EndpointDown(ctx context.Context, wep *api.WorkloadEndpoint) error
}

// DockerAPI is the part of the Docker API used in the background (never inside a driver call).
type DockerAPI interface {
	Network(ctx context.Context, id string) (*docker.Network, error)
	Networks(ctx context.Context) ([]docker.Network, error)
	ContainerLabels(ctx context.Context, id string) (map[string]string, error)
	WatchNetworks(ctx context.Context, fn func(docker.NetworkEvent)) error
}

// Driver holds what both plugin interfaces share.
type Driver struct {
	cfg       Config
	store     *datastore.Store
	addrs     Addresses
	links     Links
	dataplane Dataplane
	docker    DockerAPI
	log       *slog.Logger

	networks  *networks
	sandboxes *sandboxes
	rejected  *rejections
	labels    *labeller
	live      liveAddresses
	// etcdSilent is why a bounded call gave up: etcd did not answer within callTimeout.
	etcdSilent error
}

// New wires a driver. docker may be nil (no label copying, names learnt only from the datastore).
func New(cfg Config, store *datastore.Store, addrs Addresses, links Links, dp Dataplane, dockerAPI DockerAPI, log *slog.Logger) *Driver {
	if cfg.IPAMDriver == "" {
		cfg.IPAMDriver = DefaultIPAMDriver
	}
	d := &Driver{cfg: cfg, store: store, addrs: addrs, links: links, dataplane: dp, docker: dockerAPI, log: log,
		sandboxes: newSandboxes(), rejected: newRejections(),
		etcdSilent: fmt.Errorf("no answer from etcd at %s within %s (%w)", strings.Join(store.Client().Endpoints(), ","),
			callTimeout, context.DeadlineExceeded)}
	d.networks = newNetworks(store, cfg.Node, dockerAPI, log)
	d.labels = newLabeller(d)
	return d
}

// Run does the background work (learning network names from Docker, deleting endpoints Docker no longer
// has) until ctx ends.
func (d *Driver) Run(ctx context.Context) {
	go d.runEndpointCollector(ctx)
	d.networks.run(ctx)
}

// callTimeout bounds the driver calls that wait only on etcd and IPAM. The store bounds each request by the
// same time, but a call may make several in turn, or queue for the IPAM writer, and Docker waits for it
// holding its own locks: with etcd down such a call must fail within this time, not one timeout per
// request. Join and DeleteEndpoint are not bound: they also wait for the dataplane agent, which may take
// longer under load, and they stop at their first failed etcd request anyway.
const callTimeout = 5 * time.Second

// bound gives a driver call its deadline. A call still waiting when it passes is waiting on etcd, so the
// deadline's cause (which the IPAM reports as its error) names etcd.
func (d *Driver) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, callTimeout, d.etcdSilent)
}

// Network returns the libnetwork NetworkDriver.
func (d *Driver) Network() *NetworkDriver { return &NetworkDriver{d} }

// IPAM returns the libnetwork IpamDriver.
func (d *Driver) IPAM() *IpamDriver { return &IpamDriver{d} }
