// Package dockertest holds what tests of the Docker API client share.
package dockertest

import (
	"os"
	"path/filepath"
	"testing"
)

// CertDir returns a new directory laid out as DOCKER_CERT_PATH wants it: the CA certificate that verifies
// the engine as ca.pem, the client certificate and key as cert.pem and key.pem (files copied).
func CertDir(t testing.TB, caCert, clientCert, clientKey string) string {
	t.Helper()
	dir := t.TempDir()
	for name, from := range map[string]string{"ca.pem": caCert, "cert.pem": clientCert, "key.pem": clientKey} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
