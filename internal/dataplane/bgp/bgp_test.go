package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

// Two speakers in session on loopback addresses (no pools, so the kernel is not touched): what one
// advertises the other learns, with the advertiser as next hop, and a withdrawal takes it back.
func TestSpeakersExchangeRoutes(t *testing.T) {
	ctx := context.Background()
	a, b := New(slog.New(slog.DiscardHandler)), New(slog.New(slog.DiscardHandler))
	addrA, addrB := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	const port = 17900
	planA := Plan{ASN: 64512, RouterID: addrA, ListenPort: port, ListenAddrs: []netip.Addr{addrA},
		Peers:     []Peer{{Addr: addrB, Port: port, ASN: 64512, Source: addrA, Type: "node-to-node mesh", Name: "b", RestartTime: 120}},
		Advertise: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/26"), netip.MustParsePrefix("198.19.1.7/32")}}
	planB := Plan{ASN: 64512, RouterID: addrB, ListenPort: port, ListenAddrs: []netip.Addr{addrB},
		Peers: []Peer{{Addr: addrA, Port: port, ASN: 64512, Source: addrB, Type: "node-to-node mesh", Name: "a", RestartTime: 120}}}
	t.Cleanup(func() {
		for _, s := range []*Speaker{a, b} {
			linktest.Must(t, s.Apply(ctx, Plan{}))
		}
	})
	linktest.Must(t, a.Apply(ctx, planA))
	linktest.Must(t, b.Apply(ctx, planB))

	want := []link.LearnedRoute{{Dst: netip.MustParsePrefix("198.19.0.0/26"), Via: addrA}, {Dst: netip.MustParsePrefix("198.19.1.7/32"), Via: addrA}}
	linktest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		got, err := b.Learnt(ctx)
		if err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("b learnt %v (%v), want %v", got, err, want)
		}
		return nil
	})
	st, err := a.Status(ctx)
	linktest.Must(t, err)
	if len(st) != 1 || st[0].Peer != addrB.String() || st[0].State != "Established" || st[0].Type != "node-to-node mesh" || st[0].Since == "" {
		t.Errorf("a's sessions: %+v", st)
	}

	planA.Advertise = planA.Advertise[:1]
	linktest.Must(t, a.Apply(ctx, planA))
	linktest.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		got, err := b.Learnt(ctx)
		if err != nil || !slices.Equal(got, want[:1]) {
			return fmt.Errorf("after the withdrawal b learnt %v (%v)", got, err)
		}
		return nil
	})
}

// A speaker reflecting for two clients that do not peer with each other: one client's route reaches the
// other, its next hop unchanged.
func TestRouteReflector(t *testing.T) {
	ctx := context.Background()
	const port = 17901
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}) }
	plan := func(i int, peers ...Peer) Plan {
		return Plan{ASN: 64512, RouterID: addr(i), ListenPort: port, ListenAddrs: []netip.Addr{addr(i)}, Peers: peers}
	}
	peer := func(from, to int, clusterID string) Peer {
		return Peer{Addr: addr(to), Port: port, ASN: 64512, Source: addr(from), Type: "node specific", RRClusterID: clusterID}
	}
	speakers := make([]*Speaker, 3)
	for i := range speakers {
		speakers[i] = New(slog.New(slog.DiscardHandler))
	}
	t.Cleanup(func() {
		for _, s := range speakers {
			linktest.Must(t, s.Apply(ctx, Plan{}))
		}
	})
	linktest.Must(t, speakers[0].Apply(ctx, plan(1, peer(1, 2, "224.0.0.1"), peer(1, 3, "224.0.0.1"))))
	client := plan(2, peer(2, 1, ""))
	client.Advertise = []netip.Prefix{netip.MustParsePrefix("198.19.2.0/26")}
	linktest.Must(t, speakers[1].Apply(ctx, client))
	linktest.Must(t, speakers[2].Apply(ctx, plan(3, peer(3, 1, ""))))
	want := []link.LearnedRoute{{Dst: netip.MustParsePrefix("198.19.2.0/26"), Via: addr(2)}}
	linktest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		got, err := speakers[2].Learnt(ctx)
		if err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("the second client learnt %v (%v), want %v", got, err, want)
		}
		return nil
	})
}
