package dataplane

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link/linktest"
)

func TestClaimIsOnePerNetworkNamespace(t *testing.T) {
	linktest.RequireRoot(t)
	claimIn := func(ns string) (c io.Closer, err error) {
		linktest.MustDo(t, ns, func() { c, err = Claim() })
		return c, err
	}
	hostA, hostB := linktest.NewNS(t, "claim-a"), linktest.NewNS(t, "claim-b")
	first, err := claimIn(hostA)
	linktest.Must(t, err)
	other, err := claimIn(hostB)
	linktest.Must(t, err)
	defer other.Close()

	_, err = claimIn(hostA)
	if err == nil {
		t.Fatal("a second claim in the same namespace succeeded")
	}
	t.Logf("second claim: %v", err)
	for _, want := range []string{fmt.Sprintf("pid %d", os.Getpid()), "already programs this host's dataplane", "CALICO_DATAPLANE=none"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	linktest.Must(t, first.Close())
	again, err := claimIn(hostA)
	linktest.Must(t, err)
	again.Close()
}
