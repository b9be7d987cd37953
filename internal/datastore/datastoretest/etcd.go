// Package datastoretest runs the embedded etcd for other packages' tests, so that they test against a
// real datastore without each repeating its set-up.
package datastoretest

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// Etcd is a running embedded etcd and a store connected to it.
type Etcd struct {
	Dir    string                 // its data directory (CALICO_DATA_DIR for calicoctl)
	Client datastore.ClientConfig // for clients of the test's own, and ETCD_* variables
	Store  *datastore.Store
}

// Env is the ETCD_* environment that points calicoctl (or the daemon) at this etcd.
func (e *Etcd) Env() map[string]string {
	return map[string]string{"ETCD_ENDPOINTS": e.Client.Endpoints[0], "ETCD_CA_CERT_FILE": e.Client.CACertFile,
		"ETCD_CERT_FILE": e.Client.CertFile, "ETCD_KEY_FILE": e.Client.Key}
}

// Main runs a package's tests with one etcd they share, handed to use before they start; it returns the
// exit code for os.Exit (1 when etcd cannot start). Call it from TestMain.
func Main(m *testing.M, use func(*Etcd)) int {
	dir, err := os.MkdirTemp("", "calico-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	e, stop, err := start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting embedded etcd:", err)
		return 1
	}
	defer stop()
	use(e)
	return m.Run()
}

// Start runs an etcd of the test's (or benchmark's) own, stopped when it ends.
func Start(tb testing.TB) *Etcd {
	tb.Helper()
	e, stop, err := start(tb.TempDir())
	if err != nil {
		tb.Fatal("starting embedded etcd: ", err)
	}
	tb.Cleanup(stop)
	return e
}

func start(dir string) (*Etcd, func(), error) {
	emb, err := datastore.StartEmbedded(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	store, err := datastore.Connect(emb.ClientConfig())
	if err != nil {
		emb.Close()
		return nil, nil, err
	}
	return &Etcd{Dir: dir, Client: emb.ClientConfig(), Store: store}, func() { store.Close(); emb.Close() }, nil
}
