package multihost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const etcdBinary = "/usr/bin/etcd"

// etcdCluster is a three-member cluster of Debian's etcd, each member on its own address.
type etcdCluster struct {
	members []*etcdMember
}

type etcdMember struct {
	proc
	clientURL string
}

// memberAddr is where one member listens: host:port for clients and for peers.
type memberAddr struct{ client, peer string }

// startEtcd starts one member per address in network namespace netns ("" for this one), with data under
// dir. It returns once a write succeeds.
func startEtcd(t testing.TB, netns, dir string, addrs []memberAddr) *etcdCluster {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("skipping: needs %s (apt-get install etcd-server)", etcdBinary)
	}
	var initial []string
	for i, a := range addrs {
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, a.peer))
	}
	c := &etcdCluster{}
	for i, a := range addrs {
		m := &etcdMember{clientURL: "http://" + a.client}
		m.name = fmt.Sprintf("etcd m%d", i)
		peer := "http://" + a.peer
		m.args = []string{etcdBinary, "--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "calico-multihost", "--log-level", "warn"}
		if netns != "" {
			m.args = append([]string{"nsenter", "--net=/var/run/netns/" + netns}, m.args...)
		}
		c.members = append(c.members, m)
	}
	c.run(t, netns)
	return c
}

// run starts the members, killed at cleanup, and returns once the cluster takes writes.
func (c *etcdCluster) run(t testing.TB, netns string) {
	t.Helper()
	t.Cleanup(func() {
		for _, m := range c.members {
			m.stop(syscall.SIGKILL, 5*time.Second)
			if t.Failed() {
				t.Logf("%s output:\n%s", m.name, m.logs.String())
			}
		}
	})
	c.startAll(t)
	c.waitHealthy(t, netns, 30*time.Second)
}

func (c *etcdCluster) startAll(t testing.TB) {
	t.Helper()
	for _, m := range c.members {
		if !m.running() {
			if err := m.start(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitHealthy waits until a quorum write succeeds through etcdctl.
func (c *etcdCluster) waitHealthy(t testing.TB, netns string, timeout time.Duration) {
	t.Helper()
	args := []string{"etcdctl", "--endpoints", c.endpoints(), "--command-timeout=2s", "put", "/calico-multihost/ready", "1"}
	if netns != "" {
		args = append([]string{"nsenter", "--net=/var/run/netns/" + netns}, args...)
	}
	deadline := time.Now().Add(timeout)
	for {
		_, err := run(5*time.Second, args...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd cluster not healthy after %v: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// endpoints is the ETCD_ENDPOINTS value for the cluster.
func (c *etcdCluster) endpoints() string {
	urls := make([]string, len(c.members))
	for i, m := range c.members {
		urls[i] = m.clientURL
	}
	return strings.Join(urls, ",")
}
