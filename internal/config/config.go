// Package config reads every environment variable the daemon and calicoctl understand into one typed,
// validated struct. Nothing else in the project reads the environment.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Lookup reads one variable (os.LookupEnv in production, a map in tests).
type Lookup func(name string) (string, bool)

// Datastore says where the etcd datastore is.
type Datastore struct {
	// Endpoints of an external etcd cluster; empty means the embedded etcd under DataDir.
	Endpoints                     []string
	CACertFile, CertFile, KeyFile string
	DataDir                       string
}

// Config is the daemon's whole configuration.
type Config struct {
	Datastore

	NodeName string
	// IPv4 / IPv6 are the node's addresses with prefix length; empty means autodetect.
	IPv4, IPv6      string
	AutodetectIPv4  string // IP_AUTODETECTION_METHOD
	DefaultIPv4Pool string // CIDR; empty when NoDefaultPools
	DefaultIPv6Pool string
	NoDefaultPools  bool
	IPv4BlockSize   int
	IPv6BlockSize   int
	IPv4PoolNAT     bool

	PluginDir string
	// PluginSocket, when set, is the one socket (a file name in PluginDir) serving both the network and the
	// IPAM driver, as a managed (v2) plugin needs; empty means the two sockets calico.sock and
	// calico-ipam.sock.
	PluginSocket string
	// HostRoot is where the host's root directory appears to the daemon, for the namespace paths Docker
	// sends: an absolute path, or HostRootParent; empty means the daemon's own root.
	HostRoot         string
	IfPrefix         string
	VethMTU          int
	CreateProfiles   bool
	LabelEndpoints   bool
	LabelPollTimeout time.Duration
	Debug            bool
	Dataplane        string // "linux" or "none"
	EndpointToHost   string // ACCEPT, DROP or RETURN
	IPAMGCGrace      time.Duration
	DockerHost       string // unix:///path or tcp://host:port
	// DockerCertPath is the directory of ca.pem, cert.pem and key.pem for TLS to the Docker API
	// (DOCKER_CERT_PATH with DOCKER_TLS_VERIFY); empty means no TLS.
	DockerCertPath string
	// Backend is CALICO_NETWORKING_BACKEND: BackendVXLAN, BackendBird or BackendNone.
	Backend string
	// MetricsAddr is the host:port serving /metrics and /healthz; empty means no such server.
	MetricsAddr string
	// NotifySocket is where systemd waits to hear that the daemon is ready (Type=notify); empty when
	// not started by systemd.
	NotifySocket string
}

// HostRootParent as HostRoot means the root directory of the daemon's parent process, which for a managed
// plugin that shares the host's PIDs is its containerd shim, in the host's mount namespace.
const HostRootParent = "parent"

// Dataplane modes.
const (
	DataplaneLinux = "linux"
	DataplaneNone  = "none"
)

// Networking backends (CALICO_NETWORKING_BACKEND, named as calico/node names them): how routes between
// hosts arise with the dataplane on.
const (
	BackendVXLAN = "vxlan" // from the datastore: direct for unencapsulated pools, VXLAN, IP-in-IP
	BackendBird  = "bird"  // BGP: unencapsulated IPv4 pools' routes come from BGP peers
	BackendNone  = "none"  // no routes between hosts: something else routes (policy only)
)

var (
	ifPrefixRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,7}$`)
	hostNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$`)
	// Node names become Calico Node resource names: lower-case DNS subdomains.
	nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

	// A socket name is a plain file name in the plugin directory, as Docker's plugin config gives it.
	socketNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-][a-zA-Z0-9._-]*\.sock$`)
)

// FromEnv reads the process environment.
func FromEnv() (*Config, error) { return Load(os.LookupEnv) }

// Load reads and validates the configuration; errors name the variable at fault.
func Load(env Lookup) (*Config, error) {
	r := reader{env: env}
	c := &Config{
		Datastore:        r.datastore(),
		NodeName:         r.nodeName(),
		IPv4:             r.str("IP", ""),
		IPv6:             r.str("IP6", ""),
		AutodetectIPv4:   r.str("IP_AUTODETECTION_METHOD", "first-found"),
		NoDefaultPools:   r.boolean("NO_DEFAULT_POOLS", false),
		DefaultIPv4Pool:  r.cidr("CALICO_IPV4POOL_CIDR", "192.168.0.0/16", false),
		DefaultIPv6Pool:  r.cidr("CALICO_IPV6POOL_CIDR", "", true),
		IPv4BlockSize:    r.integer("CALICO_IPV4POOL_BLOCK_SIZE", 26, 20, 32),
		IPv6BlockSize:    r.integer("CALICO_IPV6POOL_BLOCK_SIZE", 122, 116, 128),
		IPv4PoolNAT:      r.boolean("CALICO_IPV4POOL_NAT_OUTGOING", true),
		PluginDir:        r.str("CALICO_LIBNETWORK_PLUGIN_DIR", "/run/docker/plugins"),
		PluginSocket:     r.str("CALICO_LIBNETWORK_PLUGIN_SOCKET", ""),
		HostRoot:         r.str("CALICO_LIBNETWORK_HOST_ROOT", ""),
		IfPrefix:         r.str("CALICO_LIBNETWORK_IFPREFIX", "cali"),
		VethMTU:          r.integer("CALICO_LIBNETWORK_VETH_MTU", 1500, 68, 65535),
		CreateProfiles:   r.boolean("CALICO_LIBNETWORK_CREATE_PROFILES", true),
		LabelEndpoints:   r.boolean("CALICO_LIBNETWORK_LABEL_ENDPOINTS", false),
		LabelPollTimeout: r.duration("CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT", 5*time.Second),
		Debug:            r.boolean("CALICO_DEBUG", false),
		Dataplane:        r.oneOf("CALICO_DATAPLANE", DataplaneLinux, DataplaneLinux, DataplaneNone),
		Backend:          r.oneOf("CALICO_NETWORKING_BACKEND", BackendVXLAN, BackendVXLAN, BackendBird, BackendNone),
		EndpointToHost:   strings.ToUpper(r.oneOf("CALICO_ENDPOINT_TO_HOST_ACTION", "ACCEPT", "ACCEPT", "DROP", "RETURN")),
		IPAMGCGrace:      r.duration("CALICO_IPAM_GC_GRACE", 10*time.Minute),
		DockerHost:       r.dockerHost(),
		DockerCertPath:   r.dockerCertPath(),
		MetricsAddr:      r.listenAddr("CALICO_METRICS_ADDR"),
		NotifySocket:     r.str("NOTIFY_SOCKET", ""),
	}
	if c.PluginSocket != "" && !socketNameRE.MatchString(c.PluginSocket) {
		r.fail("CALICO_LIBNETWORK_PLUGIN_SOCKET", c.PluginSocket, "must be a file name ending in .sock (letters, digits, '.', '_', '-'), such as calico.sock")
	}
	if c.HostRoot != "" && c.HostRoot != HostRootParent && !strings.HasPrefix(c.HostRoot, "/") {
		r.fail("CALICO_LIBNETWORK_HOST_ROOT", c.HostRoot, "must be an absolute path, such as /proc/1/root, or "+HostRootParent)
	}
	if !ifPrefixRE.MatchString(c.IfPrefix) {
		r.fail("CALICO_LIBNETWORK_IFPREFIX", c.IfPrefix, "must be a letter followed by up to 7 letters, digits or '_'")
	}
	for _, a := range []struct{ name, v string }{{"IP", c.IPv4}, {"IP6", c.IPv6}} {
		if a.v != "" && a.v != "autodetect" {
			if _, err := netip.ParsePrefix(a.v); err != nil {
				if _, err := netip.ParseAddr(a.v); err != nil {
					r.fail(a.name, a.v, "must be an address, optionally with prefix length (10.0.0.5/24)")
				}
			}
		}
	}
	if c.NoDefaultPools {
		c.DefaultIPv4Pool, c.DefaultIPv6Pool = "", ""
	}
	return c, r.err
}

// dockerHost is DOCKER_HOST: the schemes the Docker client speaks without the docker CLI's helpers
// (ssh:// needs them).
func (r *reader) dockerHost() string {
	host := r.str("DOCKER_HOST", "unix:///var/run/docker.sock")
	scheme, addr, _ := strings.Cut(host, "://")
	if (scheme != "unix" && scheme != "tcp") || addr == "" {
		r.fail("DOCKER_HOST", host, "must be unix:///path/to/docker.sock or tcp://host:port")
	}
	return host
}

// dockerCertPath is DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set (any value, as for the docker CLI).
// Either without the other is refused: the CLI would then look in ~/.docker or speak plain HTTP, and
// Docker's Go client would skip verifying the engine, whose container labels select policy.
func (r *reader) dockerCertPath() string {
	dir := r.str("DOCKER_CERT_PATH", "")
	verify := r.str("DOCKER_TLS_VERIFY", "")
	switch {
	case verify != "" && dir == "":
		r.fail("DOCKER_TLS_VERIFY", verify, "needs DOCKER_CERT_PATH, the directory holding ca.pem, cert.pem and key.pem")
	case dir != "" && verify == "":
		r.fail("DOCKER_CERT_PATH", dir, "needs DOCKER_TLS_VERIFY=1: the plugin does not use TLS without verifying the Docker engine's certificate")
	}
	return dir
}

// DatastoreFromEnv reads only the datastore settings (what calicoctl needs).
func DatastoreFromEnv(env Lookup) (Datastore, error) {
	r := reader{env: env}
	d := r.datastore()
	return d, r.err
}

type reader struct {
	env Lookup
	err error
}

func (r *reader) fail(name, value, reason string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s=%q: %s", name, value, reason)
	}
}

// first returns the first set variable among names (aliases, most specific first).
func (r *reader) first(names ...string) (string, string, bool) {
	for _, n := range names {
		if v, ok := r.env(n); ok && v != "" {
			return n, v, true
		}
	}
	return names[0], "", false
}

func (r *reader) str(name, def string) string {
	if _, v, ok := r.first(name); ok {
		return v
	}
	return def
}

func (r *reader) boolean(name string, def bool) bool {
	n, v, ok := r.first(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		r.fail(n, v, "must be true or false")
	}
	return b
}

func (r *reader) integer(name string, def, lo, hi int) int {
	n, v, ok := r.first(name)
	if !ok {
		return def
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < lo || i > hi {
		r.fail(n, v, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
	}
	return i
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	n, v, ok := r.first(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		// Plain numbers are seconds, as upstream's poll timeout was.
		secs, err2 := strconv.Atoi(v)
		if err2 != nil {
			secs = -1
		}
		d = time.Duration(secs) * time.Second
	}
	if d < 0 {
		r.fail(n, v, "must be a duration such as 5s or 10m")
	}
	return d
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	n, v, ok := r.first(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	r.fail(n, v, "must be one of "+strings.Join(allowed, ", "))
	return def
}

func (r *reader) cidr(name, def string, v6 bool) string {
	n, v, ok := r.first(name)
	if !ok {
		return def
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || p.Addr().Is6() != v6 || p != p.Masked() {
		family := "IPv4"
		if v6 {
			family = "IPv6"
		}
		r.fail(n, v, "must be a masked "+family+" CIDR such as "+map[bool]string{false: "192.168.0.0/16", true: "fd80:24e2:f998:72d6::/64"}[v6])
	}
	return p.String()
}

// listenAddr reads a host:port to listen on (the host may be empty for every interface, an address or a name);
// unset means "".
func (r *reader) listenAddr(name string) string {
	n, v, ok := r.first(name)
	if !ok {
		return ""
	}
	if path, ok := strings.CutPrefix(v, "unix:"); ok {
		if !filepath.IsAbs(path) {
			r.fail(n, v, "a unix socket must be an absolute path, such as unix:/run/calico/metrics.sock")
		}
		return v
	}
	host, port, err := net.SplitHostPort(v)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || p <= 0 || p > 65535 ||
		(host != "" && !hostNameRE.MatchString(host) && net.ParseIP(host) == nil) {
		r.fail(n, v, "must be host:port with a port from 1 to 65535, such as 127.0.0.1:9091, or unix:/absolute/path.sock (unset or empty: no metrics server)")
	}
	return v
}

func (r *reader) nodeName() string {
	n, v, ok := r.first("NODENAME", "CALICO_NODENAME")
	if !ok {
		h, err := os.Hostname()
		if err != nil {
			r.fail("NODENAME", "", "not set and the hostname cannot be read: "+err.Error())
			return ""
		}
		v = strings.ToLower(h)
		if !nodeNameRE.MatchString(v) {
			r.fail("NODENAME", "", fmt.Sprintf("not set, and the hostname %q is not a valid node name: set NODENAME", v))
		}
		return v
	}
	if !nodeNameRE.MatchString(v) {
		r.fail(n, v, "must be lower-case letters, digits, '.' or '-', starting and ending with a letter or digit (at most 253), as Calico node names are")
	}
	return v
}

func (r *reader) datastore() Datastore {
	d := Datastore{DataDir: r.str("CALICO_DATA_DIR", "/var/lib/calico")}
	if n, v, ok := r.first("ETCD_ENDPOINTS", "CALICO_ETCD_ENDPOINTS"); ok {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			u, err := url.Parse(e)
			switch {
			case strings.Contains(e, "@"):
				r.fail(n, hideCredentials(v), fmt.Sprintf("%q: %s", hideCredentials(e), noCredentials))
			case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				r.fail(n, v, fmt.Sprintf("%q is not an http:// or https:// URL", e))
			default:
				d.Endpoints = append(d.Endpoints, e)
			}
		}
	} else if n, v, ok := r.first("CALICO_ETCD_AUTHORITY", "ETCD_AUTHORITY"); ok {
		scheme := r.oneOf("ETCD_SCHEME", "http", "http", "https")
		if strings.Contains(v, "@") {
			r.fail(n, hideCredentials(v), noCredentials)
		} else if _, _, err := splitHostPort(v); err != nil {
			r.fail(n, v, "must be host:port")
		}
		d.Endpoints = []string{scheme + "://" + v}
	}
	for _, f := range []struct {
		dst   *string
		names []string
	}{
		{&d.CACertFile, []string{"ETCD_CA_CERT_FILE", "CALICO_ETCD_CA_CERT_FILE"}},
		{&d.CertFile, []string{"ETCD_CERT_FILE", "CALICO_ETCD_CERT_FILE"}},
		{&d.KeyFile, []string{"ETCD_KEY_FILE", "CALICO_ETCD_KEY_FILE"}},
	} {
		if n, v, ok := r.first(f.names...); ok {
			if _, err := os.Stat(v); err != nil {
				r.fail(n, v, "cannot read the file: "+err.Error())
			}
			*f.dst = v
		}
	}
	if (d.CertFile == "") != (d.KeyFile == "") {
		r.fail("ETCD_CERT_FILE", d.CertFile, "ETCD_CERT_FILE and ETCD_KEY_FILE must be set together")
	}
	return d
}

// noCredentials refuses user:password@ in etcd endpoints: the etcd client does not use them, and endpoints
// appear in logs and errors.
const noCredentials = "user names and passwords in etcd endpoints are not supported; authenticate with a client certificate (ETCD_CERT_FILE, ETCD_KEY_FILE)"

// hideCredentials replaces whatever precedes an '@' in each comma-separated endpoint (after its scheme), so
// that a refused value can be shown without the password in it.
func hideCredentials(v string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		start := 0
		if s := strings.Index(p, "://"); s >= 0 && s < at {
			start = s + len("://")
		}
		parts[i] = p[:start] + "***" + p[at:]
	}
	return strings.Join(parts, ",")
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 {
		return "", 0, fmt.Errorf("missing port")
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port")
	}
	return s[:i], p, nil
}
