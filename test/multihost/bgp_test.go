package multihost

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// routerAS is the AS of the lab's router and hosts when they speak BGP: the router is the hosts' route
// reflector, as a top-of-rack switch often is in Calico deployments.
const routerAS = 64512

// startRouterBIRD runs BIRD in the router's namespace as a route reflector for the given hosts, each an
// iBGP client in AS routerAS, with the README's router configuration ("BGP"): its own protocols, then its
// protocol for host1 once for each client, with the client's name and address; the lab adds the same in
// IPv6. Reflected routes get the router as next hop (next hop self), so hosts on the other segment reach
// them through it; the router installs what it learns in its own table.
func (l *lab) startRouterBIRD(clients ...*host) *proc {
	l.t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		l.t.Skip("skipping: needs BIRD as the lab's router (bash scripts/install-deps.sh installs bird2)")
	}
	block := readmeBlock(l.t, "BGP", "protocol bgp host1")
	own, perHost, ok := strings.Cut(block.Text, "protocol bgp host1")
	if !ok || !strings.Contains(perHost, "10.0.1.21") {
		l.t.Fatalf("README.md line %d: no protocol for host1 at 10.0.1.21", block.Line)
	}
	perHost = "protocol bgp host1" + perHost
	v6 := strings.NewReplacer("ipv4", "ipv6")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "router id %s;\n%s", segments[0].gateway(false), own)
	for _, line := range strings.SplitAfter(own, "\n") {
		if strings.Contains(line, "ipv4") {
			cfg.WriteString(v6.Replace(line))
		}
	}
	for _, h := range clients {
		cfg.WriteString(strings.NewReplacer("host1", h.name, "10.0.1.21", h.addr4.Addr().String()).Replace(perHost))
		cfg.WriteString(strings.NewReplacer("host1", h.name+"_6", "10.0.1.21", h.addr6.Addr().String(), "ipv4", "ipv6").Replace(perHost))
	}
	conf := filepath.Join(l.dir, "bird.conf")
	must(l.t, os.WriteFile(conf, []byte(cfg.String()), 0o644))
	if out, err := run(10*time.Second, "bird", "-p", "-c", conf); err != nil {
		l.t.Fatalf("BIRD refuses the router's configuration: %v\n%s\n%s", err, out, cfg.String())
	}
	p := &proc{name: "router BIRD", args: []string{"nsenter", "--net=/var/run/netns/" + l.router, "bird", "-f",
		"-c", conf, "-s", filepath.Join(l.dir, "bird.ctl")}}
	must(l.t, p.start())
	l.t.Cleanup(func() {
		if l.t.Failed() {
			out, _ := l.birdc("show protocols all")
			l.t.Logf("router BIRD:\n%s\n%s", p.logs.String(), out)
		}
		p.stop(15, 5*time.Second)
	})
	return p
}

// birdc asks the router's BIRD.
func (l *lab) birdc(cmd string) (string, error) {
	return run(10*time.Second, append([]string{"birdc", "-s", filepath.Join(l.dir, "bird.ctl")}, strings.Fields(cmd)...)...)
}

// TestBGP runs the hosts with CALICO_NETWORKING_BACKEND=bird on an unencapsulated pool: h1 and h2 share
// segment A, h3 is behind the router on segment B. Routes between hosts come from BGP only.
func TestBGP(t *testing.T) {
	l := newLab(t, []hostSpec{{name: "h1", segment: 0, number: 11, backend: "bird"},
		{name: "h2", segment: 0, number: 12, backend: "bird"}, {name: "h3", segment: 1, number: 13, backend: "bird"}})
	h1, h2, h3 := l.host("h1"), l.host("h2"), l.host("h3")
	l.setPools("Never")
	for _, h := range l.hosts {
		h.mustDocker("network", "create", "-d", "calico", "--ipam-driver", "calico-ipam", "--ipv6", "bgpnet")
	}
	c1, c2, c3 := h1.run("wl1", "bgpnet"), h2.run("wl2", "bgpnet"), h3.run("wl3", "bgpnet")
	var router *proc

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Mesh", func(t *testing.T) {
			// h1 and h2 learn each other's blocks over their mesh session, next hop the other host. The hosts
			// started one after another, so a first connection may have found no listener yet: wait for the
			// sessions first.
			waitHost(t, h1, 60*time.Second, func() error {
				out, err := h1.plugin.Calicoctl("node", "status")
				if err != nil || strings.Count(out, "| node-to-node mesh | up ") != 4 {
					return fmt.Errorf("h1's mesh sessions: %v\n%s", err, out)
				}
				return nil
			})
			expectRoute(t, h1, blockOf(c2.ip4), "via "+h2.addr4.Addr().String()+" dev eth0 proto bird")
			expectRoute(t, h2, blockOf(c1.ip4), "via "+h1.addr4.Addr().String()+" dev eth0 proto bird")
			expectMatrix(t, []*container{c1, c2}, false)
			expectRoute(t, h1, blockOf6(c2.ip6), "via "+h2.addr6.Addr().String()+" dev eth0 proto bird")
			expectMatrix(t, []*container{c1, c2}, true)
			for _, h := range l.hosts {
				if out, _ := h.sh("ip route show proto 80"); strings.Contains(out, " via ") {
					t.Errorf("%s has datastore routes besides its blackholes with BGP on:\n%s", h.name, out)
				}
				expectNoDevice(t, h)
			}
		}},
		{"Router", func(t *testing.T) {
			// The router reflects every host's routes to the others, itself as next hop; the hosts peer
			// with it through node-specific BGPPeers: containers behind it are reachable too.
			router = l.startRouterBIRD(h1, h2, h3)
			var peers strings.Builder
			for _, h := range l.hosts {
				seg := segments[0]
				if h == h3 {
					seg = segments[1]
				}
				for _, gw := range []netip.Addr{seg.gateway(false), seg.gateway(true)} {
					fmt.Fprintf(&peers, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: %s}\n"+
						"spec: {node: %s, peerIP: '%s', asNumber: %d}\n---\n", routerPeer(h, gw), h.name, gw, routerAS)
				}
			}
			l.calicoctl(peers.String(), "apply", "-f", "-")
			expectRoute(t, h1, blockOf(c3.ip4), "via "+segments[0].gateway(false).String()+" dev eth0 proto bird")
			expectRoute(t, h3, blockOf(c1.ip4), "via "+segments[1].gateway(false).String()+" dev eth0 proto bird")
			expectMatrix(t, []*container{c1, c2, c3}, false)
			expectRoute(t, h1, blockOf6(c3.ip6), "via "+segments[0].gateway(true).String()+" dev eth0 proto bird")
			expectMatrix(t, []*container{c1, c2, c3}, true)
			// calicoctl node status on h3: its session to the router and its mesh sessions, all up.
			waitHost(t, h3, converge, func() error {
				out, err := h3.plugin.Calicoctl("node", "status")
				gw := segments[1].gateway(false).String()
				if err != nil || !strings.Contains(out, "Calico process is running.") ||
					!regexp.MustCompile(`\| `+regexp.QuoteMeta(gw)+` +\| node specific +\| up +\| \d\d:\d\d:\d\d \| Established \|`).MatchString(out) ||
					strings.Count(out, "| node-to-node mesh | up ") != 4 || !strings.Contains(out, "IPv6 BGP status\n+") {
					return fmt.Errorf("calicoctl node status on h3: %v\n%s", err, out)
				}
				return nil
			})
			routes := l.inNS(l.router, "ip", "route", "show", "proto", "bird")
			for _, c := range []*container{c1, c2, c3} {
				if !strings.Contains(routes, blockOf(c.ip4)+" via "+c.host.addr4.Addr().String()) {
					t.Errorf("the router's table lacks %s via %s:\n%s", blockOf(c.ip4), c.host.name, routes)
				}
			}
			// Communities from BGPConfiguration default reach the router on the pool's routes.
			l.calicoctl("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n"+
				"  communities: [{name: lab, value: '64512:100'}]\n"+
				"  prefixAdvertisements: [{cidr: "+pool4+", communities: [lab, '4200000000:1:2']}]\n", "apply", "-f", "-")
			waitHost(t, h1, converge, func() error {
				out, err := l.birdc("show route all " + blockOf(c1.ip4))
				if err != nil || !strings.Contains(out, "BGP.community: (64512,100)") ||
					!strings.Contains(out, "BGP.large_community: (4200000000, 1, 2)") {
					return fmt.Errorf("the router's route to h1's block: %v\n%s", err, out)
				}
				return nil
			})
		}},
		{"KillRestart", func(t *testing.T) {
			// h3's daemon killed and restarted under a continuous ping from h1: graceful restart keeps the
			// routes everywhere, so no reply is lost.
			done := make(chan string, 1)
			go func() {
				out, _ := h1.docker("exec", c1.name, "ping", "-c", "60", "-i", "0.2", c3.ip4)
				done <- out
			}()
			time.Sleep(2 * time.Second)
			h3.plugin.Kill()
			time.Sleep(3 * time.Second)
			h3.plugin.Restart()
			out := <-done
			if !strings.Contains(out, "60 packets transmitted, 60 packets received") {
				t.Errorf("pings lost across h3's daemon restart:\n%s", out)
			}
			expectRoute(t, h1, blockOf(c3.ip4), "proto bird")
			expectMatrix(t, []*container{c1, c2, c3}, false)
		}},
		{"RouterRestart", func(t *testing.T) {
			// The router going down and up again: sessions come back and so does reachability.
			routerSession := func(up bool) func() error {
				return func() error {
					out, err := h3.plugin.Calicoctl("node", "status")
					if err != nil || strings.Contains(out, "| node specific     | up ") != up {
						return fmt.Errorf("h3's router session up: %v, want %v (%v)\n%s", !up, up, err, out)
					}
					return nil
				}
			}
			router.stop(15, 5*time.Second)
			waitHost(t, h3, 30*time.Second, routerSession(false))
			must(t, router.start())
			waitHost(t, h3, 60*time.Second, routerSession(true))
			waitHost(t, h3, 30*time.Second, func() error {
				routes := l.inNS(l.router, "ip", "route", "show", "proto", "bird")
				for _, c := range []*container{c1, c2, c3} {
					if !strings.Contains(routes, blockOf(c.ip4)) {
						return fmt.Errorf("the router has not relearnt %s:\n%s", blockOf(c.ip4), routes)
					}
				}
				return nil
			})
			expectMatrix(t, []*container{c1, c2, c3}, false)
		}},
		{"WrongAS", func(t *testing.T) {
			// A peer configured with the wrong AS: its session never comes up, the others stay up.
			l.calicoctl(fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: wrong-as}\n"+
				"spec: {node: h1, peerIP: %s, asNumber: 65099}\n", h3.addr4.Addr()), "apply", "-f", "-")
			time.Sleep(3 * time.Second)
			waitHost(t, h1, converge, func() error {
				out, err := h1.plugin.Calicoctl("node", "status")
				if err != nil || strings.Contains(out, "| "+h3.addr4.Addr().String()+"  | node specific     | up ") ||
					!strings.Contains(out, "| node specific     | up ") {
					return fmt.Errorf("h1's sessions with a wrong AS for h3: %v\n%s", err, out)
				}
				return nil
			})
			expectMatrix(t, []*container{c1, c2, c3}, false)
			if h1.plugin.Exited() {
				t.Error("h1's daemon exited")
			}
			l.calicoctl("", "delete", "bgppeer", "wrong-as")
		}},
		{"EtcdDown", func(t *testing.T) {
			// With the whole etcd cluster down, sessions and routes stay and containers keep talking. Every
			// session is up first: one the earlier steps reset may still be in GoBGP's idle hold time.
			allUp := func() error {
				out, err := h1.plugin.Calicoctl("node", "status")
				if err != nil || strings.Count(out, "| up ") != 6 {
					return fmt.Errorf("h1's sessions: %v\n%s", err, out)
				}
				return nil
			}
			waitHost(t, h1, 90*time.Second, allUp)
			for _, m := range l.etcd.members {
				m.stop(syscall.SIGKILL, 5*time.Second)
			}
			time.Sleep(5 * time.Second)
			expectMatrix(t, []*container{c1, c2, c3}, false)
			if err := allUp(); err != nil {
				t.Errorf("with etcd down: %v", err)
			}
			l.etcd.startAll(t)
			l.etcd.waitHealthy(t, l.router, 30*time.Second)
		}},
		{"Latency", func(t *testing.T) { measureLatency(t, l, h1, []*host{h2, h3}, "Never") }},
		{"RouteReflector", func(t *testing.T) {
			// The mesh off, h2 a route reflector and one BGPPeer with a nodeSelector peering every other
			// node with it; h1 without its router sessions: what h1 learns of h3 comes reflected by h2.
			l.calicoctl("", "delete", "bgppeer", routerPeer(h1, segments[0].gateway(false)), routerPeer(h1, segments[0].gateway(true)))
			// The README's route-reflector example, as written there, with h2 for its host2.
			l.runREADME(t, "BGP", "route-reflector", strings.NewReplacer("host2", "h2"))
			waitHost(t, h1, 60*time.Second, func() error {
				out, err := h1.plugin.Calicoctl("node", "status")
				if err != nil || strings.Count(out, "| node specific ") != 2 || strings.Count(out, "| up ") != 2 ||
					!strings.Contains(out, "| "+h2.addr4.Addr().String()+" ") || strings.Contains(out, h3.addr4.Addr().String()) {
					return fmt.Errorf("h1's sessions with the mesh off: %v\n%s", err, out)
				}
				return nil
			})
			expectRoute(t, h1, blockOf(c3.ip4), "proto bird")
			expectMatrix(t, []*container{c1, c2, c3}, false)
			expectMatrix(t, []*container{c1, c2, c3}, true)
		}},
		{"HostRemoval", func(t *testing.T) {
			// h3 stopped and deleted: the others end their sessions with it and drop its routes, which the
			// router withdraws too.
			h3.stopAll()
			start := time.Now()
			l.calicoctl("", "delete", "node", "h3")
			for _, h := range []*host{h1, h2} {
				waitHost(t, h, converge, func() error {
					if out, _ := h.sh("ip route show " + blockOf(c3.ip4) + "; ip -6 route show " + blockOf6(c3.ip6)); out != "" {
						return fmt.Errorf("%s still routes h3's block: %s", h.name, out)
					}
					return nil
				})
			}
			t.Logf("h3's routes gone from h1 and h2 %v after calicoctl delete node returned", time.Since(start).Round(time.Millisecond))
			expectMatrix(t, []*container{c1, c2}, false)
		}},
		{"BackToVXLAN", func(t *testing.T) {
			// h1 and h2 restarted with the default backend: the routes their speakers learnt go, also one to
			// a block that no longer exists (planted here), and the datastore routes take over; a route of
			// BIRD's protocol outside the pools (another BGP daemon's) stays.
			gw := h2.addr4.Addr().String()
			if out, err := h1.sh("ip route add 198.19.255.0/26 via " + gw + " proto bird && ip route add 10.99.0.0/24 via " + gw + " proto bird"); err != nil {
				t.Fatalf("planting routes: %v %s", err, out)
			}
			for _, h := range []*host{h1, h2} {
				h.plugin.RestartWith(map[string]string{"CALICO_NETWORKING_BACKEND": "vxlan"})
			}
			waitHost(t, h1, converge, func() error {
				if out, _ := h1.sh("ip route show proto bird"); strings.TrimSpace(out) != "10.99.0.0/24 via "+gw+" dev eth0" {
					return fmt.Errorf("h1's routes of BIRD's protocol after the switch:\n%s", out)
				}
				return nil
			})
			expectRoute(t, h1, blockOf(c2.ip4), "via "+gw+" dev eth0 proto 80 onlink")
			expectMatrix(t, []*container{c1, c2}, false)
			_, _ = h1.sh("ip route del 10.99.0.0/24")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return
		}
	}
}

// routerPeer names the BGPPeer of host h with the router's address gw.
func routerPeer(h *host, gw netip.Addr) string {
	return "tor-" + h.name + "-" + strings.ReplaceAll(gw.String(), ":", "-")
}

// blockOf6 is the /122 block holding a container address of the lab's IPv6 pool.
func blockOf6(ip string) string {
	return netip.PrefixFrom(netip.MustParseAddr(ip), 122).Masked().String()
}
