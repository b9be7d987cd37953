package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	gobgp "github.com/osrg/gobgp/v3/api"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
)

// Two speakers in session on loopback addresses (no pools, so the kernel is not touched), one of them
// passive: what one advertises the other learns, with the advertiser as next hop, and a withdrawal takes it
// back. Each logs at its Plan's level, not at the daemon's (Info for both).
func TestSpeakersExchangeRoutes(t *testing.T) {
	ctx := context.Background()
	var logA, logB syncbuf.Buffer
	a, b := New(slog.New(slog.NewTextHandler(&logA, nil))), New(slog.New(slog.NewTextHandler(&logB, nil)))
	addrA, addrB := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	const port = 17900
	planA := Plan{ASN: 64512, RouterID: addrA, ListenPort: port, ListenAddrs: []netip.Addr{addrA}, LogLevel: slog.LevelDebug,
		Communities: []CommunityRule{{CIDR: netip.MustParsePrefix("198.19.0.0/16"), Standard: []uint32{64512<<16 | 100}},
			{CIDR: netip.MustParsePrefix("198.19.1.0/24"), Standard: []uint32{64512<<16 | 100}, Large: [][3]uint32{{4200000000, 1, 2}}}},
		Peers:     []Peer{{Addr: addrB, Port: port, ASN: 64512, Source: addrA, Type: "node-to-node mesh", Name: "b", RestartTime: 120, Passive: true}},
		Advertise: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/26"), netip.MustParsePrefix("198.19.1.7/32")}}
	planB := Plan{ASN: 64512, RouterID: addrB, ListenPort: port, ListenAddrs: []netip.Addr{addrB}, LogLevel: slog.LevelWarn,
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
	if got, want := communities(t, b), map[string]string{"198.19.0.0/26": "[64512:100]",
		"198.19.1.7/32": "[64512:100] [4200000000:1:2]"}; !maps.Equal(got, want) {
		t.Errorf("b received communities %v, want %v", got, want)
	}
	if !strings.Contains(logA.String(), "level=DEBUG") || !strings.Contains(logA.String(), `msg="Peer Up" component=bgp`) {
		t.Errorf("a's log at level Debug:\n%s", logA.String())
	}
	if strings.Contains(logB.String(), "level=INFO") || strings.Contains(logB.String(), "level=DEBUG") {
		t.Errorf("b's log at level Warning:\n%s", logB.String())
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
// other, its next hop unchanged; with next hop self towards that client, the reflector's. An eBGP peer of
// the reflector gets the reflector as next hop, and with next hop keep the client's.
func TestRouteReflector(t *testing.T) {
	ctx := context.Background()
	const port = 17901
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}) }
	plan := func(i int, asn uint32, peers ...Peer) Plan {
		return Plan{ASN: asn, RouterID: addr(i), ListenPort: port, ListenAddrs: []netip.Addr{addr(i)}, Peers: peers}
	}
	peer := func(from, to int, asn uint32, clusterID string, nextHop NextHopMode) Peer {
		return Peer{Addr: addr(to), Port: port, ASN: asn, Source: addr(from), Type: "node specific", RRClusterID: clusterID, NextHop: nextHop}
	}
	speakers := make([]*Speaker, 4)
	for i := range speakers {
		speakers[i] = New(slog.New(slog.DiscardHandler))
	}
	t.Cleanup(func() {
		// The reflector last: gobgp's StopBgp races with its own handling of an UPDATE still arriving.
		for _, s := range append(speakers[1:], speakers[0]) {
			linktest.Must(t, s.Apply(ctx, Plan{}))
		}
	})
	// The reflector waits for its peers to connect, as the lower address of two nodes does: two speakers
	// connecting at once collide, and gobgp's handling of the second OPEN races with its path listing.
	reflector := func(toClient3, toEBGP NextHopMode) Plan {
		p := plan(1, 64512, peer(1, 2, 64512, "224.0.0.1", ""), peer(1, 3, 64512, "224.0.0.1", toClient3), peer(1, 4, 65000, "", toEBGP))
		for i := range p.Peers {
			p.Peers[i].Passive = true
		}
		return p
	}
	linktest.Must(t, speakers[0].Apply(ctx, reflector("", "")))
	client := plan(2, 64512, peer(2, 1, 64512, "", ""))
	client.Advertise = []netip.Prefix{netip.MustParsePrefix("198.19.2.0/26")}
	linktest.Must(t, speakers[1].Apply(ctx, client))
	linktest.Must(t, speakers[2].Apply(ctx, plan(3, 64512, peer(3, 1, 64512, "", ""))))
	linktest.Must(t, speakers[3].Apply(ctx, plan(4, 65000, peer(4, 1, 64512, "", ""))))
	learns := func(s *Speaker, via netip.Addr, what string) {
		t.Helper()
		want := []link.LearnedRoute{{Dst: netip.MustParsePrefix("198.19.2.0/26"), Via: via}}
		linktest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
			got, err := s.Learnt(ctx)
			if err != nil || !slices.Equal(got, want) {
				return fmt.Errorf("%s learnt %v (%v), want %v", what, got, err, want)
			}
			return nil
		})
	}
	learns(speakers[2], addr(2), "the second client")
	learns(speakers[3], addr(1), "the eBGP peer")

	linktest.Must(t, speakers[0].Apply(ctx, reflector(NextHopSelf, NextHopKeep)))
	learns(speakers[2], addr(1), "the second client, with next hop self")
	learns(speakers[3], addr(2), "the eBGP peer, with next hop keep")
}

// A speaker just started keeps the learnt routes it finds while a peer's session is not up, then until the
// peer's End-of-RIB has come; then it prunes them again. A peer that never comes is waited for keepLearnt.
func TestRecoveringAfterStart(t *testing.T) {
	ctx := context.Background()
	const port = 17902
	addrA, addrB := netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("127.0.2.2")
	plan := func(self, peer netip.Addr) Plan {
		return Plan{ASN: 64512, RouterID: self, ListenPort: port, ListenAddrs: []netip.Addr{self},
			Peers: []Peer{{Addr: peer, Port: port, ASN: 64512, Source: self, Type: "node-to-node mesh", RestartTime: 120, Passive: self.Less(peer)}}}
	}
	a, b := New(slog.New(slog.DiscardHandler)), New(slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		for _, s := range []*Speaker{a, b} {
			linktest.Must(t, s.Apply(ctx, Plan{}))
		}
	})
	linktest.Must(t, a.Apply(ctx, plan(addrA, addrB)))
	a.mu.Lock()
	waiting := a.recovering(ctx)
	a.mu.Unlock()
	if !waiting {
		t.Fatal("a speaker whose peer is not up yet has stopped keeping the routes it found")
	}
	linktest.Must(t, b.Apply(ctx, plan(addrB, addrA)))
	linktest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.recovering(ctx) {
			return fmt.Errorf("a still waits for b's routes")
		}
		return nil
	})

	linktest.Must(t, b.Apply(ctx, Plan{}))
	linktest.Must(t, a.Apply(ctx, Plan{}))
	linktest.Must(t, a.Apply(ctx, plan(addrA, addrB)))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keepUntil = time.Now().Add(-time.Second)
	if a.recovering(ctx) {
		t.Error("a speaker still keeps the routes it found after keepLearnt")
	}
}

// communities are the standard and large communities of each IPv4 route s received.
func communities(t *testing.T, s *Speaker) map[string]string {
	out := map[string]string{}
	err := s.server.ListPath(context.Background(), &gobgp.ListPathRequest{TableType: gobgp.TableType_GLOBAL,
		Family: familyOf(netip.IPv4Unspecified())}, func(d *gobgp.Destination) {
		var got []string
		for _, a := range d.Paths[0].Pattrs {
			m, err := a.UnmarshalNew()
			linktest.Must(t, err)
			switch attr := m.(type) {
			case *gobgp.CommunitiesAttribute:
				for _, c := range attr.Communities {
					got = append(got, fmt.Sprintf("[%d:%d]", c>>16, c&0xffff))
				}
			case *gobgp.LargeCommunitiesAttribute:
				for _, c := range attr.Communities {
					got = append(got, fmt.Sprintf("[%d:%d:%d]", c.GlobalAdmin, c.LocalData1, c.LocalData2))
				}
			}
		}
		out[d.Prefix] = strings.Join(got, " ")
	})
	linktest.Must(t, err)
	return out
}
