package multihost

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// host is one Docker host of the lab: a network namespace with an uplink on its segment, and a private
// mount namespace (held by an anchor process) in which /run/docker/plugins is the host's own plugin
// folder, so its dockerd finds only its own plugin. dockerd and calico-libnetwork both run in both
// namespaces; `ip netns exec` is avoided because it remounts /sys and hides the cgroups from dockerd.
type host struct {
	lab          *lab
	name, netns  string
	dir          string // this host's folder under the lab's
	addr4, addr6 netip.Prefix
	felix        bool   // upstream Felix programs this host (see hostSpec)
	backend      string // CALICO_NETWORKING_BACKEND, when set
	anchor       proc
	dockerd      proc
	felixd       proc
	plugin       *harness.Plugin
}

// newHost creates the host's namespace and wires it to its segment.
func (l *lab) newHost(s hostSpec) *host {
	seg := segments[s.segment]
	h := &host{lab: l, name: s.name, netns: "mh" + l.id + "-" + s.name, dir: filepath.Join(l.dir, s.name), felix: s.felix,
		backend: s.backend,
		addr4:   netip.PrefixFrom(nthAddr(seg.v4.Addr(), s.number), seg.v4.Bits()),
		addr6:   netip.PrefixFrom(nthAddr(seg.v6.Addr(), s.number), seg.v6.Bits())}
	for _, d := range []string{"plugins", "exec"} {
		must(l.t, os.MkdirAll(filepath.Join(h.dir, d), 0o755))
	}
	port := "mh" + l.id + s.name // the router's end
	l.ip("netns", "add", h.netns)
	l.ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
	l.ip("link", "set", port, "netns", l.router)
	l.ip("-n", l.router, "link", "set", port, "master", seg.bridge, "up")
	l.ip("-n", h.netns, "link", "set", "lo", "up")
	l.ip("-n", h.netns, "addr", "add", h.addr4.String(), "dev", "eth0")
	l.ip("-n", h.netns, "addr", "add", h.addr6.String(), "dev", "eth0", "nodad")
	l.ip("-n", h.netns, "link", "set", "eth0", "up")
	l.ip("-n", h.netns, "route", "add", "default", "via", seg.gateway(false).String())
	l.ip("-n", h.netns, "-6", "route", "add", "default", "via", seg.gateway(true).String())
	return h
}

// addr is the host's address on its segment in one family.
func (h *host) addr(v6 bool) netip.Addr {
	if v6 {
		return h.addr6.Addr()
	}
	return h.addr4.Addr()
}

func nthAddr(base netip.Addr, n int) netip.Addr {
	for range n {
		base = base.Next()
	}
	return base
}

func (h *host) socket() string { return "unix://" + filepath.Join(h.dir, "docker.sock") }

// startDocker starts the anchor and dockerd and loads the test image. It runs in its own goroutine, so it
// returns errors instead of failing the test.
func (h *host) startDocker() error {
	h.anchor.name = h.name + " anchor"
	h.anchor.args = []string{"nsenter", "--net=/var/run/netns/" + h.netns, "unshare", "-m", "--propagation", "private",
		"sh", "-c", fmt.Sprintf("mount --bind %s %s && exec sleep infinity", filepath.Join(h.dir, "plugins"), harness.DefaultPluginDir)}
	if err := h.anchor.start(); err != nil {
		return err
	}
	if err := waitFor(10*time.Second, func() error {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.anchor.pid()))
		if strings.TrimSpace(string(comm)) != "sleep" {
			return fmt.Errorf("anchor not ready: %s", h.anchor.logs.String())
		}
		return nil
	}); err != nil {
		return err
	}
	cfg := filepath.Join(h.dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o644); err != nil {
		return err
	}
	h.dockerd.name = h.name + " dockerd"
	// No registry is reachable: swarm's nodes run a service's image as they have it, without trying to
	// pull it first.
	h.dockerd.args = append(append(h.enter(), "env", "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"), harness.DockerdCommand("--config-file", cfg,
		"--data-root", filepath.Join(h.lab.data, h.name), "--exec-root", filepath.Join(h.dir, "exec"),
		"-H", h.socket(), "--pidfile", filepath.Join(h.dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip-masq=false")...)
	if err := h.dockerd.start(); err != nil {
		return err
	}
	if err := waitFor(60*time.Second, func() error {
		if !h.dockerd.running() {
			return errors.New("dockerd exited")
		}
		_, err := h.docker("info")
		return err
	}); err != nil {
		return err
	}
	_, err := h.docker("load", "-i", filepath.Join(h.lab.dir, imageFile))
	return err
}

// enter is the command prefix that runs a program in the host's network and mount namespaces.
func (h *host) enter() []string {
	return []string{"nsenter", "-t", fmt.Sprint(h.anchor.pid()), "-m", "-n"}
}

// startPlugin runs calico-libnetwork in the host's namespaces through harness.StartPlugin: the
// binaries it is given are scripts entering the namespaces first.
func (h *host) startPlugin() {
	t := h.lab.t
	plugin := filepath.Join(h.dir, "calico-libnetwork")
	ctl := filepath.Join(h.dir, "calicoctl")
	must(t, os.WriteFile(plugin, []byte("#!/bin/sh\nexec "+strings.Join(h.enter(), " ")+" "+bins.Plugin+"\n"), 0o755))
	must(t, os.WriteFile(ctl, []byte("#!/bin/sh\nexec nsenter --net=/var/run/netns/"+h.netns+" "+bins.Calicoctl+" \"$@\"\n"), 0o755))
	env := map[string]string{
		"NODENAME":                     h.name,
		"ETCD_ENDPOINTS":               h.lab.etcd.endpoints(),
		"CALICO_LIBNETWORK_PLUGIN_DIR": filepath.Join(h.dir, "plugins"),
		"DOCKER_HOST":                  h.socket(),
		"NO_DEFAULT_POOLS":             "true",
	}
	if h.felix {
		env["CALICO_DATAPLANE"] = "none"
	}
	if h.backend != "" {
		env["CALICO_NETWORKING_BACKEND"] = h.backend
	}
	h.plugin = harness.StartPlugin(t, harness.Binaries{Plugin: plugin, Calicoctl: ctl}, env)
	// Containers go while the plugin still answers (cleanups run last-registered first); Docker would
	// otherwise wait for a missing plugin on each removal.
	t.Cleanup(h.removeContainers)
}

func (h *host) removeContainers() {
	if ids, err := h.docker("ps", "-aq"); err == nil && ids != "" {
		_, _ = h.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
}

// docker runs the client of the engine under test against this host's dockerd.
func (h *host) docker(args ...string) (string, error) {
	out, err := run(90*time.Second, append([]string{harness.DockerBin, "-H", h.socket()}, args...)...)
	return strings.TrimSpace(out), err
}

func (h *host) mustDocker(args ...string) string {
	h.lab.t.Helper()
	out, err := h.docker(args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return out
}

// sh runs a shell command line in the host's network namespace.
func (h *host) sh(cmdline string) (string, error) {
	return run(30*time.Second, "nsenter", "--net=/var/run/netns/"+h.netns, "sh", "-c", cmdline)
}

// container is a running container and its addresses.
type container struct {
	host     *host
	name     string
	ip4, ip6 string
}

// run starts a long-running container on network and returns it with its addresses.
func (h *host) run(name, network string, flags ...string) *container {
	h.lab.t.Helper()
	args := append(append([]string{"run", "-d", "--name", name, "--net", network}, flags...), harness.TestImage, "sleep", "3600")
	h.mustDocker(args...)
	c := &container{host: h, name: name}
	c.ip4 = h.mustDocker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), name)
	c.ip6 = h.mustDocker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}", network), name)
	return c
}

// addr is the container's address in one family.
func (c *container) addr(v6 bool) string {
	if v6 {
		return c.ip6
	}
	return c.ip4
}

// do runs fn in the container's network namespace; sockets it opens stay there.
func (c *container) do(fn func()) error {
	pid, err := c.host.docker("inspect", "-f", "{{.State.Pid}}", c.name)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(pid)
	if err != nil {
		return fmt.Errorf("pid of %s: %w", c.name, err)
	}
	return linktest.DoPID(n, fn)
}

// ping sends one echo request from the container, waiting at most a second for the reply.
func (c *container) ping(ip string) error {
	_, err := c.host.docker("exec", c.name, "ping", "-c", "1", "-W", "1", ip)
	return err
}

func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopAll removes the host's containers and stops its plugin and dockerd: a host going away.
func (h *host) stopAll() {
	h.removeContainers()
	h.plugin.Stop()
	h.dockerd.stop(syscall.SIGTERM, 20*time.Second)
}
