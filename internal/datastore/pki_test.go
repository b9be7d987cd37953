package datastore

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The embedded etcd admits only clients holding the client certificate under its data directory.
func TestEmbeddedRequiresClientCertificate(t *testing.T) {
	own := embedded.ClientConfig()
	dir := t.TempDir()
	stranger := newTestCA(t, dir, "stranger-ca")
	strangerCert, strangerKey := stranger.issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth)
	for name, cfg := range map[string]ClientConfig{
		"NoTLSSettings":         {},
		"NoClientCert":          {CACertFile: own.CACertFile},
		"ClientCertFromOtherCA": {CACertFile: own.CACertFile, CertFile: strangerCert, Key: strangerKey},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Endpoints = own.Endpoints
			expectCertificateRefusal(t, cfg)
		})
	}
	t.Run("OwnClientCert", func(t *testing.T) {
		s, err := Connect(own)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.WaitReady(ctxT(t), testLog(t)); err != nil {
			t.Fatal(err)
		}
	})
	// Raft messages through the peer listener could write to the store as well.
	t.Run("PeerListener", func(t *testing.T) {
		peer := embedded.etcd.Config().ListenPeerUrls[0]
		if peer.Scheme != "https" {
			t.Fatalf("peer listener %s is not TLS", peer.String())
		}
		get := func(withClientCert bool) error {
			tc, err := tlsConfig(own)
			if err != nil {
				t.Fatal(err)
			}
			if !withClientCert {
				tc.Certificates = nil
			}
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
			resp, err := c.Get(peer.String() + "/members")
			if err == nil {
				resp.Body.Close()
			}
			return err
		}
		if err := get(false); err == nil {
			t.Error("peer listener answered a client without a certificate")
		}
		if err := get(true); err != nil {
			t.Errorf("peer listener refused the member's own certificate: %v", err)
		}
	})
}

// EmbeddedClientConfig is what calicoctl uses to find the daemon's etcd.
func TestEmbeddedClientConfig(t *testing.T) {
	got, err := EmbeddedClientConfig(embeddedDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := embedded.ClientConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("EmbeddedClientConfig = %+v, want %+v", got, want)
	}
	checkModes(t, filepath.Join(embeddedDir, PKIDir), pkiFilesIn(filepath.Join(embeddedDir, PKIDir)))
	if _, err := EmbeddedClientConfig(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no daemon running: %v", err)
	}
}

func TestLoadOrCreatePKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), PKIDir)
	// An existing directory others can read is closed.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := LoadOrCreatePKI(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	checkModes(t, dir, files)
	first := readPKI(t, files)

	t.Run("Reused", func(t *testing.T) {
		if _, err := LoadOrCreatePKI(dir, testLog(t)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(readPKI(t, files), first) {
			t.Error("a valid set was replaced")
		}
	})
	t.Run("RegeneratedWhenAFileIsMissing", func(t *testing.T) {
		if err := os.Remove(files.ClientKey); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreatePKI(dir, testLog(t)); err != nil {
			t.Fatal(err)
		}
		now := readPKI(t, files)
		if bytes.Equal(now[files.CACert], first[files.CACert]) {
			t.Error("CA kept although the set was incomplete")
		}
		if err := files.check(time.Now()); err != nil {
			t.Errorf("regenerated set does not verify: %v", err)
		}
		checkModes(t, dir, files)
	})
	t.Run("RegeneratedBeforeExpiry", func(t *testing.T) {
		// A set issued long ago that runs out within pkiRenewBefore.
		if err := files.generate(time.Now().Add(-pkiValidity + pkiRenewBefore/2)); err != nil {
			t.Fatal(err)
		}
		old := readPKI(t, files)
		if _, err := LoadOrCreatePKI(dir, testLog(t)); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(readPKI(t, files)[files.ServerCert], old[files.ServerCert]) {
			t.Error("server certificate close to expiry was kept")
		}
		if err := files.check(time.Now().Add(pkiRenewBefore)); err != nil {
			t.Errorf("renewed set: %v", err)
		}
	})
}

func readPKI(t *testing.T, files PKIFiles) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{files.CACert, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// checkModes checks that only the owner can read the directory and every file in it (no temporary files left).
func checkModes(t *testing.T, dir string, files PKIFiles) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("%s mode %v, want 0700", dir, fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(readPKI(t, files)) {
		t.Errorf("%d files in %s, want 5", len(entries), dir)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
}
