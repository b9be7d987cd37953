// Package multihost runs several Docker hosts on this machine, each a network namespace with its own
// dockerd and calico-libnetwork, on two L2 segments joined by a router, sharing a three-member etcd
// cluster: cross-host routing in each VXLAN mode, IPv6, isolation, host removal, etcd failures, and the
// three engines as one swarm.
// It needs root, Docker's packages and Debian's etcd, and skips without them.
package multihost

import (
	"fmt"
	"os"
	"testing"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

var bins harness.Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "calico-multihost-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Geteuid() == 0 {
		if bins, err = harness.BuildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
