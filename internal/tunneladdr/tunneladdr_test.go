package tunneladdr

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

func TestTunnelAddress(t *testing.T) {
	ctx := context.Background()
	store := datastoretest.Start(t).Store
	node := &api.Node{Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: "198.18.0.11/24"}}}
	node.Name, node.Labels = "a", map[string]string{"zone": "east"}
	pool := &api.IPPool{Spec: api.IPPoolSpec{CIDR: "198.19.0.0/16", VXLANMode: api.EncapNever}}
	pool.Name = "lab"
	api.Default(pool)
	for _, o := range []api.Object{node, pool} {
		if err := store.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	addrs := ipam.New(store, ipam.Options{Node: "a"})
	tun := New("a", store, addrs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sync := func() *api.Node {
		t.Helper()
		if err := tun.sync(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := datastore.Get[*api.Node](ctx, store, "", "a")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	setMode := func(mode, selector string) {
		t.Helper()
		p, err := datastore.Get[*api.IPPool](ctx, store, "", pool.Name)
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.VXLANMode, p.Spec.NodeSelector = mode, selector
		if err := store.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	if n := sync(); n.Spec.IPv4VXLANTunnelAddr != "" {
		t.Fatalf("tunnel address %q without a VXLAN pool", n.Spec.IPv4VXLANTunnelAddr)
	}
	setMode(api.EncapAlways, "zone == 'west'")
	if n := sync(); n.Spec.IPv4VXLANTunnelAddr != "" {
		t.Fatalf("tunnel address %q from a pool that does not select the node", n.Spec.IPv4VXLANTunnelAddr)
	}

	setMode(api.EncapCrossSubnet, "zone == 'east'")
	n := sync()
	addr, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
	if err != nil || !netip.MustParsePrefix("198.19.0.0/16").Contains(addr) || n.Spec.VXLANTunnelMACAddr != DerivedMAC("a").String() {
		t.Fatalf("node after allocation: %+v", n.Spec)
	}
	if n.Spec.BGP.IPv4Address != "198.18.0.11/24" {
		t.Errorf("allocation changed the node's address: %+v", n.Spec.BGP)
	}
	info, err := addrs.Allocation(ctx, addr)
	if err != nil || info.Handle != "vxlan-tunnel-addr-a" || info.Attrs["type"] != "vxlanTunnelAddress" || info.Attrs["node"] != "a" {
		t.Fatalf("allocation of %s: %+v, %v", addr, info, err)
	}
	if again := sync(); again.Spec.IPv4VXLANTunnelAddr != addr.String() || again.ResourceVersion != n.ResourceVersion {
		t.Errorf("second pass changed the node: %+v", again.Spec)
	}

	// An address someone else released (calicoctl ipam release) is replaced.
	if _, err := addrs.ReleaseIP(ctx, addr); err != nil {
		t.Fatal(err)
	}
	tun.verified = map[string]netip.Addr{} // as after a restart
	if n := sync(); n.Spec.IPv4VXLANTunnelAddr == "" {
		t.Fatal("no new tunnel address after the old one was released")
	} else if info, err := addrs.Allocation(ctx, netip.MustParseAddr(n.Spec.IPv4VXLANTunnelAddr)); err != nil || info.Handle != "vxlan-tunnel-addr-a" {
		t.Fatalf("new tunnel address not allocated to the handle: %+v %v", info, err)
	}

	// An IPIP pool instead: the VXLAN address and MAC go, an IPIP address comes, as calico/node gives it.
	p, err := datastore.Get[*api.IPPool](ctx, store, "", pool.Name)
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.VXLANMode, p.Spec.IPIPMode, p.Spec.NodeSelector = api.EncapNever, api.EncapAlways, "all()"
	if err := store.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	n = sync()
	ipip, err := netip.ParseAddr(n.Spec.BGP.IPv4IPIPTunnelAddr)
	if err != nil || n.Spec.IPv4VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddr != "" || n.Spec.BGP.IPv4Address != "198.18.0.11/24" {
		t.Fatalf("node with an IPIP pool: %+v %+v", n.Spec, n.Spec.BGP)
	}
	if info, err := addrs.Allocation(ctx, ipip); err != nil || info.Handle != "ipip-tunnel-addr-a" || info.Attrs["type"] != "ipipTunnelAddress" {
		t.Fatalf("allocation of %s: %+v, %v", ipip, info, err)
	}

	p.Spec.IPIPMode = api.EncapNever
	if err := store.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n := sync(); n.Spec.IPv4VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddr != "" || n.Spec.BGP.IPv4IPIPTunnelAddr != "" {
		t.Fatalf("tunnel address kept without a tunnel pool: %+v %+v", n.Spec, n.Spec.BGP)
	}
	usage, err := addrs.Usage(ctx)
	if err != nil || len(usage) != 1 || usage[0].InUse != 0 {
		t.Errorf("addresses still in use: %+v %v", usage, err)
	}
}

func TestDerivedMAC(t *testing.T) {
	// SHA-1("node1") = f937c37e94...; the MAC is 'f' followed by its first five bytes.
	if got := DerivedMAC("node1").String(); got != "66:f9:37:c3:7e:94" {
		t.Errorf("DerivedMAC(node1) = %s", got)
	}
}
