package datastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// embeddedServer restarts the package's shared embedded etcd and points the shared store at it.
type embeddedServer struct{}

func (embeddedServer) ClientConfig() ClientConfig { return embedded.ClientConfig() }

func (embeddedServer) Restart(t *testing.T) {
	t.Helper()
	embedded.Close()
	e, err := StartEmbedded(embeddedDir, quietLog())
	if err != nil {
		t.Fatalf("restarting embedded etcd: %v", err)
	}
	embedded = e
	store.Client().SetEndpoints(e.Endpoint)
	waitPing(t, store)
}

func waitPing(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Ping(ctxT(t))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not answering after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEmbeddedSuite(t *testing.T) {
	t.Parallel() // the suites use separate servers; overlapping them keeps the package quick
	runSuite(t, store, embeddedServer{})
}

func TestEmbeddedEndpointFile(t *testing.T) {
	got, err := ReadEndpointFile(embeddedDir)
	if err != nil {
		t.Fatal(err)
	}
	if got != embedded.Endpoint || !strings.HasPrefix(got, "https://127.0.0.1:") {
		t.Errorf("endpoint file says %q, server is at %q", got, embedded.Endpoint)
	}
	fi, err := os.Stat(filepath.Join(embeddedDir, EndpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("endpoint file mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := ReadEndpointFile(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no daemon running: %v", err)
	}
}

func TestEmbeddedPersistence(t *testing.T) {
	t.Parallel() // the suites use separate servers; overlapping them keeps the package quick
	dir := t.TempDir()
	e1, err := StartEmbedded(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	first := e1.Endpoint
	s1, err := Connect(e1.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	pool := newPool("persist-pool", "10.55.0.0/16")
	if err := s1.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	wep, _ := api.LibnetworkEndpoint("persist-host", strings.Repeat("c", 64))
	wep.Spec.IPNetworks, wep.Spec.InterfaceName = []string{"10.55.0.1/32"}, api.LibnetworkInterface(wep.Spec.Endpoint)
	if err := s1.Create(ctx, wep); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	e1.Close()
	caBefore, err := os.ReadFile(e1.ClientConfig().CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEndpointFile(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoint file left behind after Close: %v", err)
	}

	// Keep the old client port busy so that the restart has to move; the data must follow anyway.
	hold, err := listenOn(hostOf(t, first))
	if err == nil {
		defer hold.Close()
	}
	e2, err := StartEmbedded(dir, quietLog())
	if err != nil {
		t.Fatalf("restart on the same data directory: %v", err)
	}
	defer e2.Close()
	if e2.Endpoint == first {
		t.Errorf("restarted on the busy endpoint %s", first)
	}
	got, err := ReadEndpointFile(dir)
	if err != nil || got != e2.Endpoint {
		t.Errorf("endpoint file %q (%v), server at %s", got, err, e2.Endpoint)
	}
	// The certificates are reused: a client holding the old ones still gets in.
	if caAfter, err := os.ReadFile(e2.ClientConfig().CACertFile); err != nil || !bytes.Equal(caAfter, caBefore) {
		t.Errorf("CA certificate replaced on restart (%v)", err)
	}
	s2, err := Connect(e2.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	p2, err := Get[*api.IPPool](ctx, s2, "", "persist-pool")
	if err != nil {
		t.Fatalf("pool lost across restart: %v", err)
	}
	if p2.UID != pool.UID || p2.Spec.CIDR != "10.55.0.0/16" || p2.ResourceVersion != pool.ResourceVersion {
		t.Errorf("pool after restart %+v %+v (was rv %s)", p2.ObjectMeta, p2.Spec, pool.ResourceVersion)
	}
	w2, err := Get[*api.WorkloadEndpoint](ctx, s2, "libnetwork", wep.Name)
	if err != nil || w2.UID != wep.UID {
		t.Fatalf("endpoint after restart: %v %v", w2, err)
	}
	// Still writable, and revisions continue.
	p2.Spec.Disabled = true
	if err := s2.Update(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if rv(t, p2) <= rv(t, pool) {
		t.Errorf("revision went from %s to %s", pool.ResourceVersion, p2.ResourceVersion)
	}
}

func TestStartEmbeddedBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := StartEmbedded(filepath.Join(f, "sub"), quietLog())
	if err == nil || !strings.Contains(err.Error(), "CALICO_DATA_DIR") {
		t.Errorf("error %v does not name CALICO_DATA_DIR", err)
	}
}

// How much the process's heap grows over b.N writes of 2 KB values to the embedded etcd, with the raft log
// limits the daemon uses and with etcd's defaults: etcd keeps the log since its last snapshot in memory.
// go test -run '^$' -bench EmbeddedWriteMemory -benchtime 6000x ./internal/datastore
func BenchmarkEmbeddedWriteMemory(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits raftLogLimits
	}{
		{"daemon", raftLogLimits{singleMemberSnapshotCount, singleMemberCatchUpEntries}},
		{"etcd-defaults", raftLogLimits{etcdserver.DefaultSnapshotCount, etcdserver.DefaultSnapshotCatchUpEntries}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := startEmbedded(b.TempDir(), bc.limits, quietLog())
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			s, err := Connect(e.ClientConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			value := strings.Repeat("x", 2048)
			before := heapInUse()
			i := 0
			for b.Loop() {
				if _, err := s.Client().Put(context.Background(), fmt.Sprintf("/bench/%d", i%64), value); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(heapInUse()-before)/(1<<20), "heap-growth-MiB")
		})
	}
}

// heapInUse is the heap in use after a collection.
func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
