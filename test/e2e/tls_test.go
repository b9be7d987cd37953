package e2e

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

// TestEtcdTLS runs the plugin against an etcd that serves clients over TLS and admits only certificates
// signed by its CA (--client-cert-auth), configured the documented way (https ETCD_ENDPOINTS,
// ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE): containers on a Calico network get addresses from the
// pool and reach each other, and calicoctl with the same settings sees their endpoints.
func TestEtcdTLS(t *testing.T) {
	harness.RequireRoot(t) // start checks these too, but only after etcd would have started for nothing
	harness.RequireDocker(t)
	pki, err := datastore.LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	etcd := harness.StartEtcdTLS(t, pki)
	e := start(t, map[string]string{
		"ETCD_ENDPOINTS":    etcd.Endpoint(),
		"ETCD_CA_CERT_FILE": pki.CACert,
		"ETCD_CERT_FILE":    pki.ClientCert,
		"ETCD_KEY_FILE":     pki.ClientKey,
	})
	net := e.network("net")
	a, b := e.run("a", "--net", net), e.run("b", "--net", net)
	e.mustPing(a, e.containerIP(b, net, false))
	e.mustPing(b, e.containerIP(a, net, false))
	if n := len(e.endpoints()); n != 2 {
		t.Errorf("%d workload endpoints in the TLS datastore, want 2", n)
	}
	// The plugin used the configured etcd, not an embedded one of its own.
	if _, err := os.Stat(filepath.Join(e.plugin.DataDir(), datastore.EndpointFile)); !os.IsNotExist(err) {
		t.Errorf("an embedded etcd ran beside the configured one: %v", err)
	}
}
