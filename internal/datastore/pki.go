package datastore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKIDir, under the data directory, holds the certificates that keep the embedded etcd to root.
const PKIDir = "etcd-pki"

const (
	pkiValidity = 10 * 365 * 24 * time.Hour
	// pkiRenewBefore: certificates this close to expiry are replaced at start, so that a daemon started
	// now does not see them expire under it for at least this long.
	pkiRenewBefore = 30 * 24 * time.Hour
)

// PKIFiles names a certificate authority's certificate, a server certificate for 127.0.0.1 and a client
// certificate it signed, with their keys (PEM). The CA's own key is not kept: the set is only ever
// replaced whole.
type PKIFiles struct {
	CACert, ServerCert, ServerKey, ClientCert, ClientKey string
}

func pkiFilesIn(dir string) PKIFiles {
	return PKIFiles{
		CACert:     filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
}

// ClientConfig is how a client with these files reaches endpoints served with them.
func (p PKIFiles) ClientConfig(endpoints ...string) ClientConfig {
	return ClientConfig{Endpoints: endpoints, CACertFile: p.CACert, CertFile: p.ClientCert, Key: p.ClientKey}
}

// LoadOrCreatePKI returns the certificates in dir (created 0700, files 0600), generating a new set when
// any is missing, does not verify against the CA, or expires within pkiRenewBefore.
func LoadOrCreatePKI(dir string, log *slog.Logger) (PKIFiles, error) {
	files := pkiFilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, fmt.Errorf("creating %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; the keys must not be readable by others.
	if err := os.Chmod(dir, 0o700); err != nil {
		return files, err
	}
	now := time.Now()
	problem := files.check(now.Add(pkiRenewBefore))
	if problem == nil {
		return files, nil
	}
	log.Info("generating certificates for the embedded etcd", "dir", dir, "reason", problem.Error())
	return files, files.generate(now)
}

// check verifies that every file is there and that the certificates are valid for their use at the time given.
func (p PKIFiles) check(at time.Time) error {
	caPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s holds no PEM certificate", p.CACert)
	}
	for _, c := range []struct {
		cert, key string
		usage     x509.ExtKeyUsage
		ip        string
	}{
		{p.ServerCert, p.ServerKey, x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		{p.ClientCert, p.ClientKey, x509.ExtKeyUsageClientAuth, ""},
	} {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return err
		}
		leaf := pair.Leaf
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			return fmt.Errorf("%s at %s: %w", c.cert, at.Format(time.RFC3339), err)
		}
		if c.ip != "" {
			if err := leaf.VerifyHostname(c.ip); err != nil {
				return fmt.Errorf("%s: %w", c.cert, err)
			}
		}
	}
	return nil
}

// generate writes a new set. Each file is written aside and renamed into place, so a reader never sees
// half a file; a set left mixed by a crash fails check and is replaced at the next start.
func (p PKIFiles) generate(now time.Time) error {
	notBefore, notAfter := now.Add(-time.Hour), now.Add(pkiValidity)
	ca, err := newAuthority("calico-libnetwork embedded etcd CA", notBefore, notAfter)
	if err != nil {
		return err
	}
	// The server certificate also authenticates the member to its peer listener.
	serverCert, serverKey, err := ca.issue("calico-libnetwork embedded etcd", notBefore, notAfter,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, net.IPv4(127, 0, 0, 1))
	if err != nil {
		return err
	}
	clientCert, clientKey, err := ca.issue("root", notBefore, notAfter, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return err
	}
	for file, data := range map[string][]byte{
		p.CACert: ca.certPEM(), p.ServerCert: serverCert, p.ServerKey: serverKey, p.ClientCert: clientCert, p.ClientKey: clientKey,
	} {
		if err := writeFileAtomic(file, data); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// authority is a certificate authority held in memory (ECDSA P-256).
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newAuthority(name string, notBefore, notAfter time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		MaxPathLenZero:        true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

func (a *authority) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})
}

// issue returns a new key and a certificate for it signed by the authority, both PEM.
func (a *authority) issue(name string, notBefore, notAfter time.Time, usages []x509.ExtKeyUsage, ips ...net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}
