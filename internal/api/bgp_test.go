package api

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func goodBGPConfig() *BGPConfiguration {
	yes, as := true, ASNumber(65546)
	restart := Duration(90 * time.Second)
	c := &BGPConfiguration{Spec: BGPConfigurationSpec{
		LogSeverityScreen: "Debug", NodeToNodeMeshEnabled: &yes, ASNumber: &as, ListenPort: 1790,
		ServiceClusterIPs: []ServiceIPBlock{{CIDR: "10.96.0.0/12"}}, ServiceLoadBalancerAggregation: "Disabled",
		Communities:            []Community{{Name: "internal", Value: "64512:100"}, {Name: "large", Value: "4200000000:1:2"}},
		PrefixAdvertisements:   []PrefixAdvertisement{{CIDR: "192.168.0.0/16", Communities: []string{"internal", "65000:200"}}},
		NodeMeshPassword:       &BGPPassword{SecretKeyRef: &SecretKeySelector{Name: "bgp-secrets", Key: "mesh"}},
		NodeMeshMaxRestartTime: &restart, BindMode: "NodeIP", IgnoredInterfaces: []string{"docker*", "kube-ipvs0"},
		LocalWorkloadPeeringIPV4: "169.254.0.179", LocalWorkloadPeeringIPV6: "fe80::179", ProgramClusterRoutes: "Disabled",
		IPv4NormalRoutePriority: intp(1024),
	}}
	c.Name = "default"
	return c
}

// nodeBGPConfig is a per-node configuration with every field a node's may have.
func nodeBGPConfig() *BGPConfiguration {
	c := &BGPConfiguration{Spec: BGPConfigurationSpec{LogSeverityScreen: "warning", ListenPort: 1791, BindMode: "None",
		IgnoredInterfaces: []string{"eth9"}, Communities: []Community{{Name: "edge", Value: "65001:7"}},
		PrefixAdvertisements: []PrefixAdvertisement{{CIDR: "10.10.0.0/16", Communities: []string{"edge"}}}}}
	c.Name = "node.my-host"
	return c
}

func goodBGPPeer() *BGPPeer {
	ttl := uint8(2)
	p := &BGPPeer{Spec: BGPPeerSpec{Node: "my-host", PeerIP: "192.0.2.1:1790", ASNumber: 64513, SourceAddress: SourceAddressNone,
		ReachableBy: "192.0.2.254", TTLSecurity: &ttl, NextHopMode: "Keep", Filters: []string{"export-v4"}}}
	p.Name = "tor-a"
	return p
}

// selectorPeer peers the nodes without route-reflector with those that have it.
func selectorPeer() *BGPPeer {
	p := &BGPPeer{Spec: BGPPeerSpec{NodeSelector: "!has(route-reflector)", PeerSelector: "has(route-reflector)", KeepOriginalNextHop: true}}
	p.Name = "to-rr"
	return p
}

func bgpConfig(c *BGPConfiguration, edit func(*BGPConfigurationSpec)) func() Object {
	return func() Object { edit(&c.Spec); return c }
}

func bgpPeer(p *BGPPeer, edit func(*BGPPeerSpec)) func() Object {
	return func() Object { edit(&p.Spec); return p }
}

// bgpValidationCases are TestValidate's BGP cases. Those marked "upstream" were refused by upstream
// calicoctl (87c15906f20c) on etcd with the same input, or accepted by it where the case is valid.
func bgpValidationCases() []struct {
	name  string
	obj   func() Object
	field string
} {
	c, p := goodBGPConfig, goodBGPPeer
	no := false
	as := func(n ASNumber) *ASNumber { return &n }
	return []struct {
		name  string
		obj   func() Object
		field string
	}{
		{"bgpconfig ok", func() Object { return goodBGPConfig() }, ""},
		{"bgpconfig node ok", func() Object { return nodeBGPConfig() }, ""},
		{"bgpconfig other name ok (upstream)", bgpConfig(nodeBGPConfig(), func(*BGPConfigurationSpec) {}), ""},
		{"bgpconfig trace any case ok (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.LogSeverityScreen = "trace" }), ""},
		{"bgpconfig bad log severity (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.LogSeverityScreen = "Loud" }), "spec.logSeverityScreen"},
		{"bgpconfig AS int32 max ok (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.ASNumber = as(2147483647) }), ""},
		{"bgpconfig AS past int32 (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.ASNumber = as(2147483648) }), "spec.asNumber"},
		{"bgpconfig service CIDR host bits", bgpConfig(c(), func(s *BGPConfigurationSpec) {
			s.ServiceExternalIPs = []ServiceIPBlock{{CIDR: "203.0.113.0/24"}, {CIDR: "203.0.113.1/24"}}
		}), "spec.serviceExternalIPs[1].cidr"},
		{"bgpconfig bad aggregation", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.ServiceLoadBalancerAggregation = "enabled" }), "spec.serviceLoadBalancerAggregation"},
		{"bgpconfig communities unused (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.PrefixAdvertisements = nil }), "spec.communities"},
		{"bgpconfig standard community past 16 bits (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.Communities[0].Value = "65536:100" }), "spec.communities[0].value"},
		{"bgpconfig large community past 32 bits (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.Communities[1].Value = "4294967296:1:1" }), "spec.communities[1].value"},
		{"bgpconfig community not a value (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.Communities[0].Value = "65000" }), "spec.communities[0].value"},
		{"bgpconfig community name (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.Communities[0].Name = "C_1" }), "spec.communities[0].name"},
		{"bgpconfig community without name (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.Communities[0].Name = "" }), "spec.communities[0].name"},
		{"bgpconfig advertisement of undefined community (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) {
			s.PrefixAdvertisements[0].Communities = []string{"nope"}
		}), "spec.prefixAdvertisements[0].communities"},
		{"bgpconfig advertisement of bad community value", bgpConfig(c(), func(s *BGPConfigurationSpec) {
			s.PrefixAdvertisements[0].Communities = []string{"1:70000"}
		}), "spec.prefixAdvertisements[0].communities"},
		{"bgpconfig advertisement without communities (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.PrefixAdvertisements[0].Communities = nil }), "spec.prefixAdvertisements[0].communities"},
		{"bgpconfig advertisement without CIDR (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.PrefixAdvertisements[0].CIDR = "" }), "spec.prefixAdvertisements[0].cidr"},
		{"bgpconfig advertisement host bits (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.PrefixAdvertisements[0].CIDR = "10.0.0.1/8" }), "spec.prefixAdvertisements[0].cidr"},
		{"bgpconfig advertisement bare address (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.PrefixAdvertisements[0].CIDR = "10.0.0.1" }), "spec.prefixAdvertisements[0].cidr"},
		{"bgpconfig mesh password with mesh off", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.NodeToNodeMeshEnabled = &no }), "spec.nodeMeshPassword"},
		{"bgpconfig mesh restart time with mesh off (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) {
			s.NodeToNodeMeshEnabled, s.NodeMeshPassword = &no, nil
		}), "spec.nodeMeshMaxRestartTime"},
		{"bgpconfig mesh off ok (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) {
			s.NodeToNodeMeshEnabled, s.NodeMeshPassword, s.NodeMeshMaxRestartTime = &no, nil, nil
		}), ""},
		{"bgpconfig bad bindMode (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.BindMode = "All" }), "spec.bindMode"},
		{"bgpconfig ignored interface * (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.IgnoredInterfaces = []string{"eth0", "*"} }), "spec.ignoredInterfaces[1]"},
		{"bgpconfig ignored interface slash (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.IgnoredInterfaces = []string{"a/b"} }), "spec.ignoredInterfaces[0]"},
		{"bgpconfig ignored interface too long (upstream)", bgpConfig(c(), func(s *BGPConfigurationSpec) {
			s.IgnoredInterfaces = []string{"abcdefghijklmnop"}
		}), "spec.ignoredInterfaces[0]"},
		{"bgpconfig peering IPv4 is v6", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.LocalWorkloadPeeringIPV4 = "fe80::1" }), "spec.localWorkloadPeeringIPV4"},
		{"bgpconfig peering IPv6 is v4", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.LocalWorkloadPeeringIPV6 = "169.254.0.1" }), "spec.localWorkloadPeeringIPV6"},
		{"bgpconfig bad programClusterRoutes", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.ProgramClusterRoutes = "Always" }), "spec.programClusterRoutes"},
		{"bgpconfig route priority 0", bgpConfig(c(), func(s *BGPConfigurationSpec) { s.IPv6NormalRoutePriority = intp(0) }), "spec.ipv6NormalRoutePriority"},
		{"bgpconfig node with AS (upstream)", bgpConfig(nodeBGPConfig(), func(s *BGPConfigurationSpec) { s.ASNumber = as(65000) }), "spec.asNumber"},
		{"bgpconfig node with mesh (upstream)", bgpConfig(nodeBGPConfig(), func(s *BGPConfigurationSpec) { s.NodeToNodeMeshEnabled = &no }), "spec.nodeToNodeMeshEnabled"},
		{"bgpconfig node with restart time (upstream)", bgpConfig(nodeBGPConfig(), func(s *BGPConfigurationSpec) {
			d := Duration(time.Second)
			s.NodeMeshMaxRestartTime = &d
		}), "spec.nodeMeshMaxRestartTime"},
		{"bgpconfig node with mesh password", bgpConfig(nodeBGPConfig(), func(s *BGPConfigurationSpec) { s.NodeMeshPassword = &BGPPassword{} }), "spec.nodeMeshPassword"},
		{"bgpconfig node with service IPs", bgpConfig(nodeBGPConfig(), func(s *BGPConfigurationSpec) {
			s.ServiceClusterIPs = []ServiceIPBlock{{CIDR: "10.96.0.0/12"}}
		}), "spec.serviceClusterIPs"},
		{"bgpconfig name upper case (upstream)", func() Object { b := nodeBGPConfig(); b.Name = "node.My_Host"; return b }, "metadata.name"},
		{"bgpconfig with namespace", func() Object { b := goodBGPConfig(); b.Namespace = "x"; return b }, "metadata.namespace"},

		{"bgppeer ok", func() Object { return goodBGPPeer() }, ""},
		{"bgppeer selectors ok", func() Object { return selectorPeer() }, ""},
		{"bgppeer empty ok (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { *s = BGPPeerSpec{} }), ""},
		{"bgppeer peerIP without asNumber ok (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.ASNumber = 0 }), ""},
		{"bgppeer IPv6 with port ok (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP, s.ReachableBy = "[2001:db8::1]:1790", "" }), ""},
		{"bgppeer bracketed IPv4 with port ok (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "[10.0.0.1]:179" }), ""},
		{"bgppeer IPv4-mapped ok (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "::ffff:10.0.0.1" }), ""},
		{"bgppeer port 0 (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "10.0.0.1:0" }), "spec.peerIP"},
		{"bgppeer host name (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "host.example" }), "spec.peerIP"},
		{"bgppeer CIDR (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "10.0.0.1/32" }), "spec.peerIP"},
		{"bgppeer leading space (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = " 10.0.0.1" }), "spec.peerIP"},
		{"bgppeer leading zero (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "010.0.0.1" }), "spec.peerIP"},
		{"bgppeer zone (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "[fe80::1%eth0]:179" }), "spec.peerIP"},
		{"bgppeer empty port (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP = "10.0.0.1:" }), "spec.peerIP"},
		{"bgppeer peerIP and peerSelector (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerSelector, s.ASNumber = "all()", 0 }), "spec.peerSelector"},
		{"bgppeer node and nodeSelector (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.NodeSelector = "all()" }), "spec.nodeSelector"},
		{"bgppeer asNumber with peerSelector (upstream)", bgpPeer(selectorPeer(), func(s *BGPPeerSpec) { s.ASNumber = 5 }), "spec.asNumber"},
		{"bgppeer bad peerSelector (upstream)", bgpPeer(selectorPeer(), func(s *BGPPeerSpec) { s.PeerSelector = "has(" }), "spec.peerSelector"},
		{"bgppeer bad nodeSelector (upstream)", bgpPeer(selectorPeer(), func(s *BGPPeerSpec) { s.NodeSelector = "has(" }), "spec.nodeSelector"},
		{"bgppeer selector too long", bgpPeer(selectorPeer(), func(s *BGPPeerSpec) { s.NodeSelector = strings.Repeat("a == 'b' && ", 100) + "all()" }), "spec.nodeSelector"},
		{"bgppeer bad node (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.Node = "N_1" }), "spec.node"},
		{"bgppeer AS past int32 (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.ASNumber = 4294967295 }), "spec.asNumber"},
		{"bgppeer local AS past int32", bgpPeer(p(), func(s *BGPPeerSpec) { s.LocalASNumber = as(2147483648) }), "spec.localASNumber"},
		{"bgppeer bad sourceAddress (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.SourceAddress = "Foo" }), "spec.sourceAddress"},
		{"bgppeer reachableBy family (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.ReachableBy = "2001:db8::1" }), "spec.reachableBy"},
		{"bgppeer reachableBy without peerIP (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.PeerIP, s.ASNumber = "", 0 }), "spec.reachableBy"},
		{"bgppeer reachableBy not an address (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.ReachableBy = "x" }), "spec.reachableBy"},
		{"bgppeer keepOriginalNextHop and nextHopMode (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.KeepOriginalNextHop = true }), "spec.nextHopMode"},
		{"bgppeer bad nextHopMode (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) { s.NextHopMode = "Weird" }), "spec.nextHopMode"},
		{"bgppeer bad reversePeering (upstream)", bgpPeer(selectorPeer(), func(s *BGPPeerSpec) { s.ReversePeering = "Foo" }), "spec.reversePeering"},
		{"bgppeer bad filter name", bgpPeer(p(), func(s *BGPPeerSpec) { s.Filters = []string{"ok", "Bad_Name"} }), "spec.filters[1]"},
		{"bgppeer local workloads ok (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) {
			*s = BGPPeerSpec{NodeSelector: "all()", LocalWorkloadSelector: "app == 'router'", ASNumber: 65001}
		}), ""},
		{"bgppeer local workloads with peerIP (upstream)", bgpPeer(p(), func(s *BGPPeerSpec) {
			s.LocalWorkloadSelector, s.ReachableBy = "all()", ""
		}), "spec.peerIP"},
		{"bgppeer local workloads with peerSelector", bgpPeer(selectorPeer(), func(s *BGPPeerSpec) { s.LocalWorkloadSelector = "all()" }), "spec.peerSelector"},
		{"bgppeer local workloads without asNumber", bgpPeer(p(), func(s *BGPPeerSpec) {
			*s = BGPPeerSpec{LocalWorkloadSelector: "all()"}
		}), "spec.asNumber"},
		{"bgppeer name upper case (upstream)", func() Object { b := goodBGPPeer(); b.Name = "B_17"; return b }, "metadata.name"},
		{"bgppeer with namespace", func() Object { b := goodBGPPeer(); b.Namespace = "x"; return b }, "metadata.namespace"},
	}
}

// Upstream calicoctl writes the CRD schema's two BGPConfiguration defaults and nothing of calico/node's
// (mesh, AS number, port), and defaults nothing on a BGPPeer.
func TestDefaultBGP(t *testing.T) {
	c := &BGPConfiguration{}
	c.Name = "default"
	Default(c)
	if !reflect.DeepEqual(c.Spec, BGPConfigurationSpec{LogSeverityScreen: "Info", ServiceLoadBalancerAggregation: "Enabled"}) {
		t.Errorf("defaulted to %+v", c.Spec)
	}
	set := goodBGPConfig()
	want := set.Spec
	Default(set)
	if !reflect.DeepEqual(set.Spec, want) {
		t.Errorf("explicit values changed: %+v", set.Spec)
	}
	p := &BGPPeer{Spec: BGPPeerSpec{PeerIP: "10.0.0.1"}}
	Default(p)
	if !reflect.DeepEqual(p.Spec, BGPPeerSpec{PeerIP: "10.0.0.1"}) {
		t.Errorf("peer defaulted to %+v", p.Spec)
	}
}

func TestASNumber(t *testing.T) {
	for _, tc := range []struct {
		json string
		want ASNumber
	}{
		{`64512`, 64512}, {`"64512"`, 64512}, {`"1.10"`, 1<<16 + 10}, {`"0.5"`, 5}, {`"65535.65535"`, 4294967295},
		{`4294967295`, 4294967295}, {`0`, 0},
	} {
		var a ASNumber
		if err := json.Unmarshal([]byte(tc.json), &a); err != nil || a != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.json, a, err, tc.want)
		}
		if out, _ := json.Marshal(a); string(out) != tc.want.String() {
			t.Errorf("%s written as %s, want the number %s", tc.json, out, tc.want)
		}
	}
	// As upstream's numorstring.ASNumber: a string with a space or too many dots, a dotted part past 16
	// bits, a number past 32 bits, a negative or fractional one.
	for _, bad := range []string{`"65536.1"`, `"1.65536"`, `" 5"`, `"1.2.3"`, `"x"`, `""`, `4294967296`, `-1`, `5.5`, `"-1"`, `true`} {
		var a ASNumber
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("%s accepted as %d", bad, a)
		}
	}
	var peer BGPPeer
	if err := UnmarshalStrict([]byte(`{"metadata":{"name":"p"},"spec":{"asNumber":"1.20","localASNumber":null}}`), &peer); err != nil ||
		peer.Spec.ASNumber != 65556 || peer.Spec.LocalASNumber != nil {
		t.Errorf("peer %+v, %v", peer.Spec, err)
	}
}

func TestParsePeerIP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
	}{
		{"192.0.2.1", "192.0.2.1", 0}, {"192.0.2.1:1790", "192.0.2.1", 1790}, {"2001:db8::1", "2001:db8::1", 0},
		{"[2001:db8::1]:179", "2001:db8::1", 179}, {"[10.0.0.1]:179", "10.0.0.1", 179}, {"::ffff:10.0.0.1", "10.0.0.1", 0},
		{"10.0.0.1:065535", "10.0.0.1", 65535},
	} {
		addr, port, err := ParsePeerIP(tc.in)
		if err != nil || addr != netip.MustParseAddr(tc.addr) || port != tc.port {
			t.Errorf("%q: %v %d %v; want %s %d", tc.in, addr, port, err, tc.addr, tc.port)
		}
	}
	for _, bad := range []string{"", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:", "[2001:db8::1]", "2001:db8::1:179x",
		"host:179", "fe80::1%eth0", "010.0.0.1", "10.0.0.1/32"} {
		if addr, port, err := ParsePeerIP(bad); err == nil {
			t.Errorf("%q accepted as %v port %d", bad, addr, port)
		}
	}
}

// Durations are read as Go parses them and written as upstream stores them.
func TestDurationJSON(t *testing.T) {
	var p BGPPeer
	if err := UnmarshalStrict([]byte(`{"metadata":{"name":"p"},"spec":{"maxRestartTime":"90s","keepaliveTime":"1m"}}`), &p); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(p.Spec)
	if err != nil || string(out) != `{"maxRestartTime":"1m30s","keepaliveTime":"1m0s"}` {
		t.Errorf("%s, %v", out, err)
	}
	for _, bad := range []string{`{"spec":{"maxRestartTime":"5x"}}`, `{"spec":{"maxRestartTime":5}}`} {
		if err := UnmarshalStrict([]byte(bad), &BGPPeer{}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := UnmarshalStrict([]byte(`{"spec":{"ttlSecurity":256}}`), &BGPPeer{}); err == nil {
		t.Error("ttlSecurity 256 accepted")
	}
}

// What the recorded documents hold, typed.
func TestUnmarshalBGPFixtures(t *testing.T) {
	var c BGPConfiguration
	if err := Unmarshal(readFixture(t, "upstream/bgpconfiguration-default.json"), &c); err != nil {
		t.Fatal(err)
	}
	s := c.Spec
	if *s.ASNumber != 65546 || !*s.NodeToNodeMeshEnabled || s.ListenPort != 1790 || time.Duration(*s.NodeMeshMaxRestartTime) != 90*time.Second ||
		s.NodeMeshPassword.SecretKeyRef.Key != "mesh" || s.PrefixAdvertisements[0].Communities[1] != "65000:200" || s.BindMode != "NodeIP" {
		t.Errorf("decoded %+v", s)
	}
	var p BGPPeer
	if err := Unmarshal(readFixture(t, "upstream/bgppeer-selector.json"), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Spec.KeepOriginalNextHop || *p.Spec.TTLSecurity != 2 || time.Duration(*p.Spec.MaxRestartTime) != 90*time.Second ||
		p.Spec.PeerSelector != "route-reflector == 'true'" {
		t.Errorf("decoded %+v", p.Spec)
	}
}
