// Package bgp is the in-process BGP speaker that stands in for calico/node's BIRD: it holds the sessions a
// Plan names, advertises this host's blocks and borrowed addresses, and programs the routes its peers
// advertise into the kernel with BIRD's protocol number. It knows BGP (through github.com/osrg/gobgp) but
// not Calico's resources: package routing decides the Plan from the datastore.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	gobgp "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/projectcalico/calico-libnetwork/internal/bgpstatus"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/reconcile"
)

// LearntRoutesMark is the file in the data directory that says a speaker has programmed learnt routes on
// this host, for a later run without BGP to remove them.
const LearntRoutesMark = "bgp-learnt-routes"

// connectRetry is how long (seconds) after a failed connection the speaker tries a peer again.
const connectRetry = 5

// keepLearnt bounds how long a started speaker keeps the learnt routes it finds while its peers send
// theirs (see recovering): the graceful-restart time peers give a host by default.
const keepLearnt = 120 * time.Second

// Peer is one BGP session.
type Peer struct {
	Addr netip.Addr
	Port uint16 // the peer's BGP port; 0 means 179
	ASN  uint32
	// Source is the address sessions start from (sourceAddress UseNodeIP: this node's); invalid lets the
	// kernel choose.
	Source netip.Addr
	// Type is how the session arose, as calicoctl node status names it: "node-to-node mesh", "global" or
	// "node specific".
	Type string
	// Name is the peer's node, or the BGPPeer resource, for status.
	Name string
	// RestartTime is how long (seconds) the peer keeps our routes when we restart (graceful restart).
	RestartTime uint32
	// TTLSecurity, when not zero, is how many hops away the peer may be (GTSM).
	TTLSecurity uint8
	// RRClusterID, when set, makes this host the peer's route reflector, in that cluster.
	RRClusterID string
	// Passive waits for the peer to connect.
	Passive bool
	// NextHop is what becomes of the next hop of the routes advertised to the peer; "" is BGP's usual:
	// unchanged towards iBGP peers, this host towards eBGP ones.
	NextHop NextHopMode
}

// NextHopMode overrides the next hop of the routes advertised to a peer (BGPPeer nextHopMode).
type NextHopMode string

const (
	NextHopSelf NextHopMode = "self" // this host, also for routes reflected to iBGP peers
	NextHopKeep NextHopMode = "keep" // the route's own, also towards eBGP peers
)

// Plan is everything the speaker should do.
type Plan struct {
	ASN      uint32
	RouterID netip.Addr // this host's IPv4 address
	// NextHop6 is this host's IPv6 address, the next hop of its IPv6 advertisements; invalid: none.
	NextHop6   netip.Addr
	ListenPort int32
	// ListenAddrs are the addresses to accept sessions on (bindMode NodeIP); none means all.
	ListenAddrs []netip.Addr
	Peers       []Peer
	Advertise   []netip.Prefix // this host's blocks (aggregated) and the addresses it borrowed
	// Pools are where learnt routes may go into the kernel: a route outside every pool is not Calico's
	// and is left to the host's own routing.
	Pools []netip.Prefix
	// IgnoredInterfaces are patterns of interfaces no learnt route may go through.
	IgnoredInterfaces []string
	// Communities are added to the advertised routes each rule covers.
	Communities []CommunityRule
	// LogLevel is the least severe of the speaker's messages that are logged.
	LogLevel slog.Level
}

// CommunityRule adds communities to the advertised routes within CIDR (BIRD's `net ~ CIDR`).
type CommunityRule struct {
	CIDR     netip.Prefix
	Standard []uint32    // AS<<16 | value
	Large    [][3]uint32 // global administrator, local data 1, local data 2
}

func (p Plan) global() string {
	return fmt.Sprintf("%d %s %d %v", p.ASN, p.RouterID, p.ListenPort, p.ListenAddrs)
}

// Speaker runs one BGP server and converges it, and the learnt routes in the kernel, on Plans.
type Speaker struct {
	log     *slog.Logger // through levelHandler at level
	level   slog.LevelVar
	server  *server.BgpServer
	changed chan struct{}

	mu      sync.Mutex
	running string // Plan.global of the running server, "" when stopped
	peers   map[netip.Addr]Peer
	paths   map[netip.Prefix]*gobgp.Path
	pools   []netip.Prefix
	ignored []string
	// nextHops describes the next-hop policy in force ("" when none is), to notice a change.
	nextHops string
	// keepUntil, after a start, bounds how long learnt routes already in the kernel are kept while the
	// peers send theirs again (zero once they have).
	keepUntil time.Time
}

// New returns a stopped speaker; Apply starts it.
func New(log *slog.Logger) *Speaker {
	s := &Speaker{changed: make(chan struct{}, 1)}
	s.log = slog.New(levelHandler{log.Handler(), &s.level}).With("component", "bgp")
	s.server = server.NewBgpServer(server.LoggerOption(logAdapter{s.log}))
	go s.server.Serve()
	return s
}

// Changed signals when what peers advertise may have changed: time for another Apply.
func (s *Speaker) Changed() <-chan struct{} { return s.changed }

// Apply converges the sessions and advertisements on p, then the kernel's learnt routes on what the peers
// advertise now. A Plan without ASN stops the speaker (its routes stay until the pools' next sync).
func (s *Speaker) Apply(ctx context.Context, p Plan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.level.Set(p.LogLevel)
	if p.ASN == 0 || !p.RouterID.IsValid() {
		return s.stop(ctx)
	}
	if s.running != p.global() {
		if err := s.stop(ctx); err != nil {
			return err
		}
		global := &gobgp.Global{Asn: p.ASN, RouterId: p.RouterID.String(), ListenPort: p.ListenPort}
		for _, a := range p.ListenAddrs {
			global.ListenAddresses = append(global.ListenAddresses, a.String())
		}
		err := s.server.StartBgp(ctx, &gobgp.StartBgpRequest{Global: global})
		if err != nil {
			return fmt.Errorf("starting BGP (AS %d, router ID %s, port %d): %w", p.ASN, p.RouterID, p.ListenPort, err)
		}
		if err := s.server.WatchEvent(context.Background(), &gobgp.WatchEventRequest{Table: &gobgp.WatchEventRequest_Table{
			Filters: []*gobgp.WatchEventRequest_Table_Filter{{Type: gobgp.WatchEventRequest_Table_Filter_BEST}}}},
			func(*gobgp.WatchEventResponse) { reconcile.Kick(s.changed) }); err != nil {
			return fmt.Errorf("watching BGP routes: %w", err)
		}
		s.running, s.peers, s.paths = p.global(), map[netip.Addr]Peer{}, map[netip.Prefix]*gobgp.Path{}
		s.keepUntil = time.Now().Add(keepLearnt)
		s.log.Info("BGP speaker started", "as", p.ASN, "routerID", p.RouterID.String(), "port", p.ListenPort)
	}
	s.pools, s.ignored = p.Pools, p.IgnoredInterfaces
	errs := []error{s.syncNextHops(ctx, p.Peers), s.syncPeers(ctx, p.Peers), s.syncPaths(ctx, p)}
	errs = append(errs, s.syncKernel(ctx))
	return errors.Join(errs...)
}

// Stop ends every session with a Cease, so peers withdraw this host's routes at once: the daemon is being
// stopped, not restarted. (A daemon killed, or crashing, sends nothing: its peers keep its routes for the
// graceful-restart time.) The kernel's learnt routes stay until the next start reconciles them.
func (s *Speaker) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop(context.Background())
}

func (s *Speaker) stop(ctx context.Context) error {
	if s.running == "" {
		return nil
	}
	s.running, s.nextHops = "", ""
	if err := s.server.StopBgp(ctx, &gobgp.StopBgpRequest{}); err != nil {
		return fmt.Errorf("stopping BGP: %w", err)
	}
	s.log.Info("BGP speaker stopped")
	return nil
}

func (s *Speaker) syncPeers(ctx context.Context, want []Peer) error {
	var errs []error
	wanted := map[netip.Addr]Peer{}
	for _, p := range want {
		wanted[p.Addr] = p
	}
	for addr, have := range s.peers {
		if w, ok := wanted[addr]; ok && session(w) == session(have) {
			s.peers[addr] = w
			delete(wanted, addr)
			continue
		}
		if err := s.server.DeletePeer(ctx, &gobgp.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("removing BGP peer %s: %w", addr, err))
			continue
		}
		delete(s.peers, addr)
		s.log.Info("BGP peer removed", "peer", addr.String(), "name", have.Name)
	}
	for addr, p := range wanted {
		if err := s.server.AddPeer(ctx, &gobgp.AddPeerRequest{Peer: peerConfig(p)}); err != nil {
			errs = append(errs, fmt.Errorf("adding BGP peer %s (AS %d): %w", addr, p.ASN, err))
			continue
		}
		s.peers[addr] = p
		s.log.Info("BGP peer added", "peer", addr.String(), "as", p.ASN, "type", p.Type, "name", p.Name)
	}
	return errors.Join(errs...)
}

// nextHopPolicy is the export policy that carries the peers' next-hop modes.
const nextHopPolicy = "calico-next-hop"

// syncNextHops makes the export policy give each peer's routes the next hop its NextHop asks for: one
// statement per mode, matching the peers in a neighbor set of that mode. When the policy changes, routes
// already advertised are sent again under it.
func (s *Speaker) syncNextHops(ctx context.Context, peers []Peer) error {
	sets := map[NextHopMode][]string{}
	for _, p := range peers {
		if p.NextHop != "" {
			sets[p.NextHop] = append(sets[p.NextHop], netip.PrefixFrom(p.Addr, p.Addr.BitLen()).String())
		}
	}
	key := fmt.Sprint(sets)
	if key == s.nextHops {
		return nil
	}
	policy := &gobgp.Policy{Name: nextHopPolicy}
	req := &gobgp.SetPoliciesRequest{Policies: []*gobgp.Policy{policy}}
	for _, mode := range []NextHopMode{NextHopSelf, NextHopKeep} {
		if len(sets[mode]) == 0 {
			continue // an empty neighbor set would match every peer
		}
		name := "next-hop-" + string(mode)
		req.DefinedSets = append(req.DefinedSets, &gobgp.DefinedSet{DefinedType: gobgp.DefinedType_NEIGHBOR, Name: name, List: sets[mode]})
		policy.Statements = append(policy.Statements, &gobgp.Statement{Name: name,
			Conditions: &gobgp.Conditions{NeighborSet: &gobgp.MatchSet{Type: gobgp.MatchSet_ANY, Name: name}},
			Actions:    &gobgp.Actions{Nexthop: &gobgp.NexthopAction{Self: mode == NextHopSelf, Unchanged: mode == NextHopKeep}}})
	}
	if err := s.server.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("setting the next-hop policy: %w", err)
	}
	if err := s.server.SetPolicyAssignment(ctx, &gobgp.SetPolicyAssignmentRequest{Assignment: &gobgp.PolicyAssignment{
		Name: "global", Direction: gobgp.PolicyDirection_EXPORT, Policies: []*gobgp.Policy{{Name: nextHopPolicy}},
		DefaultAction: gobgp.RouteAction_ACCEPT}}); err != nil {
		return fmt.Errorf("assigning the next-hop policy: %w", err)
	}
	if len(s.peers) > 0 {
		if err := s.server.ResetPeer(ctx, &gobgp.ResetPeerRequest{Soft: true, Direction: gobgp.ResetPeerRequest_OUT}); err != nil {
			return fmt.Errorf("advertising again under the next-hop policy: %w", err)
		}
	}
	s.nextHops = key
	return nil
}

// session is what the session with p is configured from: a change to it restarts the session. (The next
// hop is the export policy's.)
func session(p Peer) Peer {
	p.NextHop = ""
	return p
}

func peerConfig(p Peer) *gobgp.Peer {
	family := familyOf(p.Addr)
	c := &gobgp.Peer{
		Conf:     &gobgp.PeerConf{NeighborAddress: p.Addr.String(), PeerAsn: p.ASN, Description: p.Type + " " + p.Name},
		AfiSafis: []*gobgp.AfiSafi{{Config: &gobgp.AfiSafiConfig{Family: family, Enabled: true}}},
		// Graceful restart, both ways: our peers keep our routes while we restart, we keep theirs.
		GracefulRestart: &gobgp.GracefulRestart{Enabled: true, RestartTime: max(p.RestartTime, 1)},
	}
	// A peer not listening yet (its host still starting) is tried again after 5 s, as BIRD's connect delay;
	// GoBGP's own default is 120 s.
	c.Timers = &gobgp.Timers{Config: &gobgp.TimersConfig{ConnectRetry: connectRetry}}
	c.Transport = &gobgp.Transport{RemotePort: uint32(p.Port), PassiveMode: p.Passive}
	if p.Source.IsValid() {
		c.Transport.LocalAddress = p.Source.String()
	}
	c.AfiSafis[0].MpGracefulRestart = &gobgp.MpGracefulRestart{Config: &gobgp.MpGracefulRestartConfig{Enabled: true}}
	if p.RRClusterID != "" {
		c.RouteReflector = &gobgp.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: p.RRClusterID}
	}
	if p.TTLSecurity > 0 {
		c.TtlSecurity = &gobgp.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(p.TTLSecurity))}
	}
	return c
}

func familyOf(a netip.Addr) *gobgp.Family {
	if a.Is4() {
		return &gobgp.Family{Afi: gobgp.Family_AFI_IP, Safi: gobgp.Family_SAFI_UNICAST}
	}
	return &gobgp.Family{Afi: gobgp.Family_AFI_IP6, Safi: gobgp.Family_SAFI_UNICAST}
}

func (s *Speaker) syncPaths(ctx context.Context, p Plan) error {
	var errs []error
	for dst, path := range s.paths {
		if slices.Contains(p.Advertise, dst) {
			continue
		}
		if err := s.server.DeletePath(ctx, &gobgp.DeletePathRequest{Family: path.Family, Path: path}); err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s: %w", dst, err))
			continue
		}
		delete(s.paths, dst)
	}
	for _, dst := range p.Advertise {
		nextHop := p.RouterID
		if dst.Addr().Is6() {
			nextHop = p.NextHop6
		}
		if !nextHop.IsValid() {
			continue
		}
		path, err := newPath(dst, nextHop, p.Communities)
		if err == nil && proto.Equal(path, s.paths[dst]) {
			continue
		}
		if err == nil {
			// A path for the same destination replaces the one advertised before.
			_, err = s.server.AddPath(ctx, &gobgp.AddPathRequest{Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertising %s: %w", dst, err))
			continue
		}
		s.paths[dst] = path
	}
	return errors.Join(errs...)
}

// newPath is the route to dst through nextHop, originated here (origin IGP, as BIRD's static routes), with
// the communities of every rule covering it. An IPv6 route carries its next hop in the multiprotocol
// attribute.
func newPath(dst netip.Prefix, nextHop netip.Addr, rules []CommunityRule) (*gobgp.Path, error) {
	family := familyOf(dst.Addr())
	nlri, err := anypb.New(&gobgp.IPAddressPrefix{Prefix: dst.Addr().String(), PrefixLen: uint32(dst.Bits())})
	if err != nil {
		return nil, err
	}
	attrs := []proto.Message{&gobgp.OriginAttribute{Origin: 0}}
	if dst.Addr().Is4() {
		attrs = append(attrs, &gobgp.NextHopAttribute{NextHop: nextHop.String()})
	} else {
		attrs = append(attrs, &gobgp.MpReachNLRIAttribute{Family: family, NextHops: []string{nextHop.String()}, Nlris: []*anypb.Any{nlri}})
	}
	var standard []uint32
	var large [][3]uint32
	for _, r := range rules {
		if r.CIDR.Bits() <= dst.Bits() && r.CIDR.Contains(dst.Addr()) {
			standard, large = append(standard, r.Standard...), append(large, r.Large...)
		}
	}
	// Communities are a set: each once, in order.
	slices.Sort(standard)
	slices.SortFunc(large, func(a, b [3]uint32) int { return slices.Compare(a[:], b[:]) })
	if standard = slices.Compact(standard); len(standard) > 0 {
		attrs = append(attrs, &gobgp.CommunitiesAttribute{Communities: standard})
	}
	if large = slices.Compact(large); len(large) > 0 {
		attr := &gobgp.LargeCommunitiesAttribute{}
		for _, l := range large {
			attr.Communities = append(attr.Communities, &gobgp.LargeCommunity{GlobalAdmin: l[0], LocalData1: l[1], LocalData2: l[2]})
		}
		attrs = append(attrs, attr)
	}
	path := &gobgp.Path{Family: family, Nlri: nlri}
	for _, a := range attrs {
		packed, err := anypb.New(a)
		if err != nil {
			return nil, err
		}
		path.Pattrs = append(path.Pattrs, packed)
	}
	return path, nil
}

// syncKernel programs the best routes peers advertise inside the pools.
func (s *Speaker) syncKernel(ctx context.Context) error {
	var inPools []link.LearnedRoute
	if s.running != "" {
		learnt, err := s.learnt(ctx)
		if err != nil {
			return err
		}
		s.log.Debug("BGP: best routes from peers", "routes", fmt.Sprint(learnt), "pools", fmt.Sprint(s.pools))
		for _, r := range learnt {
			if slices.ContainsFunc(s.pools, func(p netip.Prefix) bool { return p.Bits() <= r.Dst.Bits() && p.Contains(r.Dst.Addr()) }) {
				inPools = append(inPools, r)
			}
		}
		if s.recovering(ctx) {
			// Until then no event may say so: look again in a second.
			time.AfterFunc(time.Second, func() { reconcile.Kick(s.changed) })
			return link.AddLearnedRoutes(inPools, s.ignored)
		}
	}
	return link.SyncLearnedRoutes(inPools, s.pools, s.ignored)
}

// recovering says whether the speaker, started less than keepLearnt ago, still waits for a peer's routes:
// a session not up yet, or one whose End-of-RIB has not come. Meanwhile the routes learnt before the start
// stay in the kernel, as BIRD's kernel protocol keeps them with graceful restart (calico/node's
// configuration): a daemon restarted does not cut its containers off from other hosts.
func (s *Speaker) recovering(ctx context.Context) bool {
	if s.keepUntil.IsZero() {
		return false
	}
	waiting := false
	err := s.server.ListPeer(ctx, &gobgp.ListPeerRequest{}, func(p *gobgp.Peer) {
		if p.GetState().GetSessionState() != gobgp.PeerState_ESTABLISHED {
			waiting = true
		}
		for _, a := range p.GetAfiSafis() {
			if gr := a.GetMpGracefulRestart().GetState(); gr.GetReceived() && !gr.GetEndOfRibReceived() {
				waiting = true
			}
		}
	})
	if (err != nil || waiting) && time.Now().Before(s.keepUntil) {
		return true
	}
	s.keepUntil = time.Time{}
	return false
}

// Learnt lists the best routes peers advertise, in destination order.
func (s *Speaker) Learnt(ctx context.Context) ([]link.LearnedRoute, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == "" {
		return nil, nil
	}
	return s.learnt(ctx)
}

func (s *Speaker) learnt(ctx context.Context) ([]link.LearnedRoute, error) {
	var out []link.LearnedRoute
	for _, unspecified := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		err := s.server.ListPath(ctx, &gobgp.ListPathRequest{TableType: gobgp.TableType_GLOBAL, Family: familyOf(unspecified)},
			func(d *gobgp.Destination) {
				for _, p := range d.Paths {
					if r, ok := learntRoute(p); ok {
						out = append(out, r)
					}
				}
			})
		if err != nil {
			return nil, fmt.Errorf("reading BGP routes: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b link.LearnedRoute) int { return a.Dst.Compare(b.Dst) })
	return out, nil
}

// learntRoute is p as a kernel route, when it is a best path a peer advertised.
func learntRoute(p *gobgp.Path) (link.LearnedRoute, bool) {
	if !p.Best || p.IsWithdraw || p.NeighborIp == "" || p.NeighborIp == "<nil>" {
		return link.LearnedRoute{}, false
	}
	var prefix gobgp.IPAddressPrefix
	if err := p.Nlri.UnmarshalTo(&prefix); err != nil {
		return link.LearnedRoute{}, false
	}
	dst, err := netip.ParsePrefix(prefix.Prefix + "/" + strconv.Itoa(int(prefix.PrefixLen)))
	if err != nil {
		return link.LearnedRoute{}, false
	}
	for _, a := range p.Pattrs {
		var nextHop string
		var nh gobgp.NextHopAttribute
		var mp gobgp.MpReachNLRIAttribute
		switch {
		case a.UnmarshalTo(&nh) == nil:
			nextHop = nh.NextHop
		case a.UnmarshalTo(&mp) == nil && len(mp.NextHops) > 0:
			nextHop = mp.NextHops[0] // the global address; a second one would be link-local
		}
		if via, err := netip.ParseAddr(nextHop); err == nil {
			return link.LearnedRoute{Dst: dst, Via: via.Unmap()}, true
		}
	}
	return link.LearnedRoute{}, false
}

// Status lists the sessions, in peer address order.
func (s *Speaker) Status(ctx context.Context) ([]bgpstatus.Session, error) {
	s.mu.Lock()
	peers := maps.Clone(s.peers)
	s.mu.Unlock()
	var out []bgpstatus.Session
	err := s.server.ListPeer(ctx, &gobgp.ListPeerRequest{}, func(p *gobgp.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		st := bgpstatus.Session{Peer: addr.String(), Type: peers[addr].Type, State: stateName(p.GetState().GetSessionState())}
		if up := p.GetTimers().GetState().GetUptime(); up != nil && st.State == "Established" {
			st.Since = up.AsTime().UTC().Format("15:04:05")
		}
		out = append(out, st)
	})
	slices.SortFunc(out, func(a, b bgpstatus.Session) int {
		return netip.MustParseAddr(a.Peer).Compare(netip.MustParseAddr(b.Peer))
	})
	return out, err
}

// Report writes the sessions into dir every bgpstatus.Interval for `calicoctl node status`, until ctx ends;
// then the report goes.
func (s *Speaker) Report(ctx context.Context, dir string) {
	defer bgpstatus.Remove(dir)
	t := time.NewTicker(bgpstatus.Interval)
	defer t.Stop()
	failing := false
	for {
		sessions, err := s.Status(ctx)
		if err == nil {
			err = bgpstatus.Write(dir, bgpstatus.Report{Written: time.Now(), Sessions: sessions})
		}
		if (err != nil) != failing && ctx.Err() == nil {
			failing = err != nil
			if failing {
				s.log.Warn("cannot report the BGP sessions for calicoctl node status", "error", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func stateName(s gobgp.PeerState_SessionState) string {
	switch s {
	case gobgp.PeerState_IDLE:
		return "Idle"
	case gobgp.PeerState_CONNECT:
		return "Connect"
	case gobgp.PeerState_ACTIVE:
		return "Active"
	case gobgp.PeerState_OPENSENT:
		return "OpenSent"
	case gobgp.PeerState_OPENCONFIRM:
		return "OpenConfirm"
	case gobgp.PeerState_ESTABLISHED:
		return "Established"
	}
	return "Unknown"
}
