package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env is a fake environment.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func hostnameNode(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(h)
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Datastore:        Datastore{DataDir: "/var/lib/calico"},
		NodeName:         hostnameNode(t),
		AutodetectIPv4:   "first-found",
		DefaultIPv4Pool:  "192.168.0.0/16",
		IPv4BlockSize:    26,
		IPv6BlockSize:    122,
		IPv4PoolNAT:      true,
		PluginDir:        "/run/docker/plugins",
		IfPrefix:         "cali",
		VethMTU:          1500,
		CreateProfiles:   true,
		LabelPollTimeout: 5 * time.Second,
		Dataplane:        DataplaneLinux,
		EndpointToHost:   "ACCEPT",
		IPAMGCGrace:      10 * time.Minute,
		DockerHost:       "unix:///var/run/docker.sock",
		Backend:          BackendVXLAN,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", c, want)
	}
	// Empty values count as unset.
	c2, err := Load(env{"CALICO_LIBNETWORK_IFPREFIX": "", "ETCD_ENDPOINTS": "", "CALICO_IPV4POOL_CIDR": ""}.lookup)
	if err != nil || c2.IfPrefix != "cali" || c2.Endpoints != nil || c2.DefaultIPv4Pool != "192.168.0.0/16" {
		t.Errorf("empty values: %+v %v", c2, err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("ETCD_ENDPOINTS", "http://10.0.0.1:2379")
	t.Setenv("NODENAME", "from-env")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "from-env" || !reflect.DeepEqual(c.Endpoints, []string{"http://10.0.0.1:2379"}) {
		t.Errorf("%+v", c)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	for _, f := range []string{certFile, keyFile, caFile} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name  string
		env   env
		check func(*Config) bool // on success
		err   []string           // substrings of the error; nil means success
	}{
		// Datastore endpoints.
		{name: "endpoints list", env: env{"ETCD_ENDPOINTS": "http://10.0.0.1:2379, https://etcd.example:2379"},
			check: func(c *Config) bool {
				return reflect.DeepEqual(c.Endpoints, []string{"http://10.0.0.1:2379", "https://etcd.example:2379"})
			}},
		{name: "endpoints alias", env: env{"CALICO_ETCD_ENDPOINTS": "http://10.0.0.2:2379"},
			check: func(c *Config) bool { return reflect.DeepEqual(c.Endpoints, []string{"http://10.0.0.2:2379"}) }},
		{name: "ETCD_ENDPOINTS wins over the alias", env: env{"ETCD_ENDPOINTS": "http://a:1", "CALICO_ETCD_ENDPOINTS": "http://b:2"},
			check: func(c *Config) bool { return reflect.DeepEqual(c.Endpoints, []string{"http://a:1"}) }},
		{name: "endpoint without scheme", env: env{"ETCD_ENDPOINTS": "10.0.0.1:2379"}, err: []string{"ETCD_ENDPOINTS", "10.0.0.1:2379"}},
		{name: "endpoint with other scheme", env: env{"ETCD_ENDPOINTS": "http://a:1,unix:///run/etcd.sock"}, err: []string{"ETCD_ENDPOINTS", `"unix:///run/etcd.sock"`}},
		{name: "endpoint without host", env: env{"ETCD_ENDPOINTS": "http://"}, err: []string{"ETCD_ENDPOINTS", "http://"}},
		{name: "endpoint garbage", env: env{"ETCD_ENDPOINTS": "http://[::1"}, err: []string{"ETCD_ENDPOINTS"}},
		{name: "bad alias names the alias", env: env{"CALICO_ETCD_ENDPOINTS": "nope"}, err: []string{"CALICO_ETCD_ENDPOINTS", "nope"}},
		{name: "authority", env: env{"CALICO_ETCD_AUTHORITY": "10.0.0.3:2379"},
			check: func(c *Config) bool { return reflect.DeepEqual(c.Endpoints, []string{"http://10.0.0.3:2379"}) }},
		{name: "old authority name", env: env{"ETCD_AUTHORITY": "etcd:4001"},
			check: func(c *Config) bool { return reflect.DeepEqual(c.Endpoints, []string{"http://etcd:4001"}) }},
		{name: "authority with https scheme", env: env{"CALICO_ETCD_AUTHORITY": "etcd:2379", "ETCD_SCHEME": "https"},
			check: func(c *Config) bool { return reflect.DeepEqual(c.Endpoints, []string{"https://etcd:2379"}) }},
		{name: "authority bad scheme", env: env{"CALICO_ETCD_AUTHORITY": "etcd:2379", "ETCD_SCHEME": "ftp"}, err: []string{"ETCD_SCHEME", "ftp"}},
		{name: "authority without port", env: env{"CALICO_ETCD_AUTHORITY": "etcd"}, err: []string{"CALICO_ETCD_AUTHORITY", `"etcd"`, "host:port"}},
		{name: "authority bad port", env: env{"CALICO_ETCD_AUTHORITY": "etcd:99999"}, err: []string{"CALICO_ETCD_AUTHORITY", "host:port"}},
		{name: "endpoints win over authority", env: env{"ETCD_ENDPOINTS": "http://a:1", "CALICO_ETCD_AUTHORITY": "b:2"},
			check: func(c *Config) bool { return reflect.DeepEqual(c.Endpoints, []string{"http://a:1"}) }},
		{name: "data dir", env: env{"CALICO_DATA_DIR": "/srv/calico"}, check: func(c *Config) bool { return c.DataDir == "/srv/calico" }},
		{name: "endpoint with credentials", env: env{"ETCD_ENDPOINTS": "http://a:1,https://root:s3cret@b:2"},
			err: []string{`ETCD_ENDPOINTS="http://a:1,https://***@b:2"`, `"https://***@b:2"`, "ETCD_CERT_FILE"}},
		{name: "authority with credentials", env: env{"CALICO_ETCD_AUTHORITY": "root:s3cret@etcd:2379"},
			err: []string{`CALICO_ETCD_AUTHORITY="***@etcd:2379"`, "ETCD_KEY_FILE"}},

		// TLS files.
		{name: "tls files", env: env{"ETCD_ENDPOINTS": "https://a:1", "ETCD_CA_CERT_FILE": caFile, "ETCD_CERT_FILE": certFile, "ETCD_KEY_FILE": keyFile},
			check: func(c *Config) bool { return c.CACertFile == caFile && c.CertFile == certFile && c.KeyFile == keyFile }},
		{name: "tls file aliases", env: env{"CALICO_ETCD_CA_CERT_FILE": caFile, "CALICO_ETCD_CERT_FILE": certFile, "CALICO_ETCD_KEY_FILE": keyFile},
			check: func(c *Config) bool { return c.CACertFile == caFile && c.CertFile == certFile && c.KeyFile == keyFile }},
		{name: "cert file missing", env: env{"ETCD_CERT_FILE": missing, "ETCD_KEY_FILE": keyFile}, err: []string{"ETCD_CERT_FILE", missing, "cannot read"}},
		{name: "key file missing", env: env{"ETCD_CERT_FILE": certFile, "ETCD_KEY_FILE": missing}, err: []string{"ETCD_KEY_FILE", missing}},
		{name: "CA file missing", env: env{"ETCD_CA_CERT_FILE": missing}, err: []string{"ETCD_CA_CERT_FILE", missing}},
		{name: "cert without key", env: env{"ETCD_CERT_FILE": certFile}, err: []string{"ETCD_CERT_FILE", "ETCD_KEY_FILE", "together"}},
		{name: "key without cert", env: env{"ETCD_KEY_FILE": keyFile}, err: []string{"ETCD_CERT_FILE", "ETCD_KEY_FILE", "together"}},

		// Node name.
		{name: "NODENAME", env: env{"NODENAME": "node-1.example"}, check: func(c *Config) bool { return c.NodeName == "node-1.example" }},
		{name: "CALICO_NODENAME", env: env{"CALICO_NODENAME": "node2"}, check: func(c *Config) bool { return c.NodeName == "node2" }},
		{name: "NODENAME wins", env: env{"NODENAME": "first", "CALICO_NODENAME": "second"}, check: func(c *Config) bool { return c.NodeName == "first" }},
		{name: "hostname when unset", env: env{}, check: func(c *Config) bool { return c.NodeName == hostnameNode(t) }},
		{name: "NODENAME with space", env: env{"NODENAME": "bad name"}, err: []string{"NODENAME", `"bad name"`}},
		{name: "NODENAME upper case", env: env{"NODENAME": "Node1"}, err: []string{"NODENAME", "Node1", "lower-case"}},
		{name: "NODENAME underscore", env: env{"NODENAME": "node_1"}, err: []string{"NODENAME", "node_1"}},
		{name: "NODENAME trailing dash", env: env{"NODENAME": "node-"}, err: []string{"NODENAME", "node-"}},
		{name: "CALICO_NODENAME bad", env: env{"CALICO_NODENAME": "-x"}, err: []string{"CALICO_NODENAME", "-x"}},

		// Booleans.
		{name: "bools", env: env{"CALICO_DEBUG": "TRUE", "CALICO_LIBNETWORK_CREATE_PROFILES": "false", "CALICO_LIBNETWORK_LABEL_ENDPOINTS": "1", "CALICO_IPV4POOL_NAT_OUTGOING": "0"},
			check: func(c *Config) bool { return c.Debug && !c.CreateProfiles && c.LabelEndpoints && !c.IPv4PoolNAT }},
		{name: "bad bool", env: env{"CALICO_LIBNETWORK_CREATE_PROFILES": "yes"}, err: []string{"CALICO_LIBNETWORK_CREATE_PROFILES", `"yes"`, "true or false"}},
		{name: "bad debug bool", env: env{"CALICO_DEBUG": "on"}, err: []string{"CALICO_DEBUG", "on"}},
		{name: "bad NO_DEFAULT_POOLS", env: env{"NO_DEFAULT_POOLS": "sure"}, err: []string{"NO_DEFAULT_POOLS", "sure"}},

		// Integers.
		{name: "ints", env: env{"CALICO_LIBNETWORK_VETH_MTU": "1450", "CALICO_IPV4POOL_BLOCK_SIZE": "24", "CALICO_IPV6POOL_BLOCK_SIZE": "120"},
			check: func(c *Config) bool { return c.VethMTU == 1450 && c.IPv4BlockSize == 24 && c.IPv6BlockSize == 120 }},
		{name: "mtu not a number", env: env{"CALICO_LIBNETWORK_VETH_MTU": "big"}, err: []string{"CALICO_LIBNETWORK_VETH_MTU", "big", "68", "65535"}},
		{name: "mtu too small", env: env{"CALICO_LIBNETWORK_VETH_MTU": "67"}, err: []string{"CALICO_LIBNETWORK_VETH_MTU", "67"}},
		{name: "v4 block size", env: env{"CALICO_IPV4POOL_BLOCK_SIZE": "33"}, err: []string{"CALICO_IPV4POOL_BLOCK_SIZE", "33", "20", "32"}},
		{name: "v6 block size", env: env{"CALICO_IPV6POOL_BLOCK_SIZE": "64"}, err: []string{"CALICO_IPV6POOL_BLOCK_SIZE", "64", "116", "128"}},
		{name: "int with spaces", env: env{"CALICO_LIBNETWORK_VETH_MTU": " 1500"}, err: []string{"CALICO_LIBNETWORK_VETH_MTU"}},

		// Durations.
		{name: "durations", env: env{"CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT": "750ms", "CALICO_IPAM_GC_GRACE": "1h"},
			check: func(c *Config) bool { return c.LabelPollTimeout == 750*time.Millisecond && c.IPAMGCGrace == time.Hour }},
		{name: "plain number is seconds", env: env{"CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT": "7"},
			check: func(c *Config) bool { return c.LabelPollTimeout == 7*time.Second }},
		{name: "zero duration", env: env{"CALICO_IPAM_GC_GRACE": "0"}, check: func(c *Config) bool { return c.IPAMGCGrace == 0 }},
		{name: "bad duration", env: env{"CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT": "soon"}, err: []string{"CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT", "soon", "duration"}},
		{name: "negative seconds", env: env{"CALICO_IPAM_GC_GRACE": "-3"}, err: []string{"CALICO_IPAM_GC_GRACE", "-3"}},
		{name: "negative duration", env: env{"CALICO_IPAM_GC_GRACE": "-5m"}, err: []string{"CALICO_IPAM_GC_GRACE", "-5m"}},

		// Interface prefix.
		{name: "ifprefix", env: env{"CALICO_LIBNETWORK_IFPREFIX": "eth"}, check: func(c *Config) bool { return c.IfPrefix == "eth" }},
		{name: "ifprefix 8 chars", env: env{"CALICO_LIBNETWORK_IFPREFIX": "abcd_123"}, check: func(c *Config) bool { return c.IfPrefix == "abcd_123" }},
		{name: "ifprefix too long", env: env{"CALICO_LIBNETWORK_IFPREFIX": "abcdefghi"}, err: []string{"CALICO_LIBNETWORK_IFPREFIX", "abcdefghi"}},
		{name: "ifprefix starts with digit", env: env{"CALICO_LIBNETWORK_IFPREFIX": "1eth"}, err: []string{"CALICO_LIBNETWORK_IFPREFIX", "1eth"}},
		{name: "ifprefix with dash", env: env{"CALICO_LIBNETWORK_IFPREFIX": "ve-th"}, err: []string{"CALICO_LIBNETWORK_IFPREFIX", "ve-th"}},
		{name: "ifprefix with slash", env: env{"CALICO_LIBNETWORK_IFPREFIX": "a/b"}, err: []string{"CALICO_LIBNETWORK_IFPREFIX"}},

		// Pools.
		{name: "pool cidrs", env: env{"CALICO_IPV4POOL_CIDR": "10.20.0.0/16", "CALICO_IPV6POOL_CIDR": "fd00:1::/64"},
			check: func(c *Config) bool { return c.DefaultIPv4Pool == "10.20.0.0/16" && c.DefaultIPv6Pool == "fd00:1::/64" }},
		{name: "NO_DEFAULT_POOLS", env: env{"NO_DEFAULT_POOLS": "true", "CALICO_IPV6POOL_CIDR": "fd00:1::/64"},
			check: func(c *Config) bool { return c.NoDefaultPools && c.DefaultIPv4Pool == "" && c.DefaultIPv6Pool == "" }},
		{name: "NO_DEFAULT_POOLS false", env: env{"NO_DEFAULT_POOLS": "false"},
			check: func(c *Config) bool { return !c.NoDefaultPools && c.DefaultIPv4Pool == "192.168.0.0/16" }},
		{name: "v4 pool not masked", env: env{"CALICO_IPV4POOL_CIDR": "10.20.1.0/16"}, err: []string{"CALICO_IPV4POOL_CIDR", "10.20.1.0/16", "masked IPv4"}},
		{name: "v4 pool is v6", env: env{"CALICO_IPV4POOL_CIDR": "fd00::/64"}, err: []string{"CALICO_IPV4POOL_CIDR", "fd00::/64", "IPv4"}},
		{name: "v4 pool garbage", env: env{"CALICO_IPV4POOL_CIDR": "192.168.0.0"}, err: []string{"CALICO_IPV4POOL_CIDR", "192.168.0.0"}},
		{name: "v6 pool is v4", env: env{"CALICO_IPV6POOL_CIDR": "10.0.0.0/8"}, err: []string{"CALICO_IPV6POOL_CIDR", "10.0.0.0/8", "IPv6"}},
		{name: "v6 pool not masked", env: env{"CALICO_IPV6POOL_CIDR": "fd00::1/64"}, err: []string{"CALICO_IPV6POOL_CIDR", "fd00::1/64"}},

		// Node addresses.
		{name: "node addresses", env: env{"IP": "10.0.0.5/24", "IP6": "fd00::5"},
			check: func(c *Config) bool { return c.IPv4 == "10.0.0.5/24" && c.IPv6 == "fd00::5" }},
		{name: "IP autodetect", env: env{"IP": "autodetect", "IP_AUTODETECTION_METHOD": "interface=eth0"},
			check: func(c *Config) bool { return c.IPv4 == "autodetect" && c.AutodetectIPv4 == "interface=eth0" }},
		{name: "bad IP", env: env{"IP": "10.0.0.300"}, err: []string{`IP="10.0.0.300"`}},
		{name: "bad IP6", env: env{"IP6": "fd00::g"}, err: []string{`IP6="fd00::g"`}},
		{name: "bad IP reported before bad IP6", env: env{"IP": "x", "IP6": "y"}, err: []string{`IP="x"`}},

		// Metrics server.
		{name: "metrics loopback", env: env{"CALICO_METRICS_ADDR": "127.0.0.1:9091"}, check: func(c *Config) bool { return c.MetricsAddr == "127.0.0.1:9091" }},
		{name: "metrics IPv6", env: env{"CALICO_METRICS_ADDR": "[::1]:9091"}, check: func(c *Config) bool { return c.MetricsAddr == "[::1]:9091" }},
		{name: "metrics host name", env: env{"CALICO_METRICS_ADDR": "localhost:9091"}, check: func(c *Config) bool { return c.MetricsAddr == "localhost:9091" }},
		{name: "metrics every interface", env: env{"CALICO_METRICS_ADDR": ":9091"}, check: func(c *Config) bool { return c.MetricsAddr == ":9091" }},
		{name: "metrics without port", env: env{"CALICO_METRICS_ADDR": "127.0.0.1"}, err: []string{`CALICO_METRICS_ADDR="127.0.0.1"`, "host:port", "127.0.0.1:9091"}},
		{name: "metrics port zero", env: env{"CALICO_METRICS_ADDR": "127.0.0.1:0"}, err: []string{"CALICO_METRICS_ADDR", "1 to 65535"}},
		{name: "metrics port too big", env: env{"CALICO_METRICS_ADDR": "127.0.0.1:70000"}, err: []string{"CALICO_METRICS_ADDR"}},
		{name: "metrics named port", env: env{"CALICO_METRICS_ADDR": "127.0.0.1:http"}, err: []string{"CALICO_METRICS_ADDR"}},
		{name: "metrics bad host", env: env{"CALICO_METRICS_ADDR": "my host:9091"}, err: []string{"CALICO_METRICS_ADDR", "my host:9091"}},
		{name: "metrics unix socket", env: env{"CALICO_METRICS_ADDR": "unix:/run/calico/metrics.sock"}, check: func(c *Config) bool { return c.MetricsAddr == "unix:/run/calico/metrics.sock" }},
		{name: "metrics relative unix socket", env: env{"CALICO_METRICS_ADDR": "unix:metrics.sock"}, err: []string{"CALICO_METRICS_ADDR", "absolute path"}},
		{name: "metrics URL", env: env{"CALICO_METRICS_ADDR": "http://127.0.0.1:9091"}, err: []string{"CALICO_METRICS_ADDR"}},

		// Enumerations and strings.
		{name: "dataplane none", env: env{"CALICO_DATAPLANE": "None"}, check: func(c *Config) bool { return c.Dataplane == DataplaneNone }},
		{name: "bad dataplane", env: env{"CALICO_DATAPLANE": "bpf"}, err: []string{"CALICO_DATAPLANE", "bpf", "linux, none"}},
		{name: "backend bird", env: env{"CALICO_NETWORKING_BACKEND": "bird"}, check: func(c *Config) bool { return c.Backend == BackendBird }},
		{name: "bad backend", env: env{"CALICO_NETWORKING_BACKEND": "gobgp"}, err: []string{"CALICO_NETWORKING_BACKEND", "gobgp", "vxlan, bird, none"}},
		{name: "endpoint to host", env: env{"CALICO_ENDPOINT_TO_HOST_ACTION": "drop"}, check: func(c *Config) bool { return c.EndpointToHost == "DROP" }},
		{name: "endpoint to host return", env: env{"CALICO_ENDPOINT_TO_HOST_ACTION": "RETURN"}, check: func(c *Config) bool { return c.EndpointToHost == "RETURN" }},
		{name: "bad endpoint to host", env: env{"CALICO_ENDPOINT_TO_HOST_ACTION": "REJECT"}, err: []string{"CALICO_ENDPOINT_TO_HOST_ACTION", "REJECT"}},
		{name: "one plugin socket", env: env{"CALICO_LIBNETWORK_PLUGIN_SOCKET": "calico.sock"}, check: func(c *Config) bool { return c.PluginSocket == "calico.sock" }},
		{name: "plugin socket with a path", env: env{"CALICO_LIBNETWORK_PLUGIN_SOCKET": "../calico.sock"}, err: []string{"CALICO_LIBNETWORK_PLUGIN_SOCKET", "../calico.sock", "file name"}},
		{name: "plugin socket without .sock", env: env{"CALICO_LIBNETWORK_PLUGIN_SOCKET": "calico"}, err: []string{"CALICO_LIBNETWORK_PLUGIN_SOCKET", ".sock"}},
		{name: "host root", env: env{"CALICO_LIBNETWORK_HOST_ROOT": "/proc/1/root"}, check: func(c *Config) bool { return c.HostRoot == "/proc/1/root" }},
		{name: "host root parent", env: env{"CALICO_LIBNETWORK_HOST_ROOT": "parent"}, check: func(c *Config) bool { return c.HostRoot == HostRootParent }},
		{name: "relative host root", env: env{"CALICO_LIBNETWORK_HOST_ROOT": "proc/1/root"}, err: []string{"CALICO_LIBNETWORK_HOST_ROOT", "absolute"}},
		{name: "docker tls", env: env{"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/etc/docker-client"},
			check: func(c *Config) bool {
				return c.DockerHost == "tcp://127.0.0.1:2376" && c.DockerCertPath == "/etc/docker-client"
			}},
		{name: "docker without tls", env: env{"DOCKER_HOST": "tcp://127.0.0.1:2375"}, check: func(c *Config) bool { return c.DockerCertPath == "" }},
		{name: "docker tls without certs", env: env{"DOCKER_TLS_VERIFY": "1"}, err: []string{"DOCKER_TLS_VERIFY", "needs DOCKER_CERT_PATH"}},
		{name: "docker certs without verify", env: env{"DOCKER_CERT_PATH": "/etc/docker-client"}, err: []string{"DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY=1"}},
		{name: "docker over ssh", env: env{"DOCKER_HOST": "ssh://me@host"}, err: []string{"DOCKER_HOST", "unix://", "tcp://"}},
		{name: "docker host without address", env: env{"DOCKER_HOST": "tcp://"}, err: []string{"DOCKER_HOST", "tcp://host:port"}},
		{name: "strings", env: env{"CALICO_LIBNETWORK_PLUGIN_DIR": "/etc/docker/plugins", "DOCKER_HOST": "tcp://1.2.3.4:2375"},
			check: func(c *Config) bool {
				return c.PluginDir == "/etc/docker/plugins" && c.DockerHost == "tcp://1.2.3.4:2375"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.env.lookup)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("accepted: %+v", c)
				}
				// Errors are printed and logged: a password must never be in one.
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the password", err)
				}
				for _, w := range tt.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Load(env{"CALICO_LIBNETWORK_VETH_MTU": "big"}.lookup)
	if err == nil || !strings.HasPrefix(err.Error(), `CALICO_LIBNETWORK_VETH_MTU="big": `) {
		t.Errorf("error %q should start with NAME=\"value\": ", err)
	}
	// The first problem is reported, whatever else is wrong.
	_, err = Load(env{"ETCD_ENDPOINTS": "bad", "CALICO_DEBUG": "maybe"}.lookup)
	if err == nil || !strings.HasPrefix(err.Error(), "ETCD_ENDPOINTS=") {
		t.Errorf("error %q", err)
	}
}

func TestDatastoreFromEnv(t *testing.T) {
	d, err := DatastoreFromEnv(env{"ETCD_ENDPOINTS": "http://a:1", "CALICO_DATA_DIR": "/x",
		// Not datastore settings: ignored, even when invalid.
		"CALICO_DEBUG": "maybe", "NODENAME": "Bad Name"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Datastore{Endpoints: []string{"http://a:1"}, DataDir: "/x"}) {
		t.Errorf("%+v", d)
	}
	d, err = DatastoreFromEnv(env{}.lookup)
	if err != nil || d.Endpoints != nil || d.DataDir != "/var/lib/calico" {
		t.Errorf("defaults %+v %v", d, err)
	}
	_, err = DatastoreFromEnv(env{"ETCD_CERT_FILE": "/nonexistent/cert.pem", "ETCD_KEY_FILE": "/nonexistent/key.pem"}.lookup)
	if err == nil || !strings.Contains(err.Error(), "ETCD_CERT_FILE") {
		t.Errorf("missing cert: %v", err)
	}
	_, err = DatastoreFromEnv(env{"CALICO_ETCD_AUTHORITY": "nohostport"}.lookup)
	if err == nil || !strings.Contains(err.Error(), "CALICO_ETCD_AUTHORITY") {
		t.Errorf("bad authority: %v", err)
	}
}
